/** Builds small WebAssembly binaries byte by byte, for the cases a compiler will not produce. */

export const I32 = 0x7f;
export const I64 = 0x7e;
export const V128 = 0x7b;
export const FUNCREF = 0x70;

export function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

/** Signed LEB128, for `i32.const`. */
export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) return [...out, byte];
    out.push(byte | 0x80);
  }
}

function name(s: string): number[] {
  const bytes = [...new TextEncoder().encode(s)];
  return [...leb(bytes.length), ...bytes];
}

function section(id: number, content: number[]): number[] {
  return [id, ...leb(content.length), ...content];
}

function vec(items: number[][]): number[] {
  return [...leb(items.length), ...items.flat()];
}

function limits(spec: Limits): number[] {
  return spec.max === undefined ? [0x00, ...leb(spec.min)] : [0x01, ...leb(spec.min), ...leb(spec.max)];
}

export interface Limits {
  min: number;
  max?: number;
}

export interface FunctionSpec {
  /** Index into `types`; default 0, `() -> ()`. */
  type?: number;
  /** Local declarations `[count, valueType]`. */
  locals?: Array<[number, number]>;
  /** Raw instructions, without the final `end`. */
  body: number[];
}

export interface ModuleSpec {
  /** Function types `[params, results]`. Default: one `() -> ()`. */
  types?: Array<[number[], number[]]>;
  /** Raw type-section entries after `types`, for forms a function type cannot express. */
  rawTypes?: number[][];
  /** Function imports `[module, name, typeIndex]`; the type defaults to 0. */
  functionImports?: Array<[string, string, number?]>;
  importedMemory?: Limits;
  definedMemory?: Limits;
  /** `funcref` tables defined by the module. */
  tables?: Limits[];
  /** Mutable i32 globals, each starting at 0. */
  globals?: number;
  /** Mutable funcref globals, each starting as `ref.null func`: V8 keeps these on the instance's heap. */
  refGlobals?: number;
  /** Defined functions; the first is exported as `_start`. Default: one empty function. */
  functions?: FunctionSpec[];
  /** Active data segments of one byte each, at offset 0 of the memory. */
  dataSegments?: number;
  /** Active data segments with their bytes, after `dataSegments`. */
  data?: Array<{ offset: number; bytes: number[] }>;
  /** Active element segments, each putting `_start` at index 0 of table 0. */
  elementSegments?: number;
}

/** A WASI-command-shaped module: `_start` plus whatever the spec adds. */
export function wasmModule(spec: ModuleSpec): Uint8Array {
  const types = spec.types ?? [[[], []]];
  const funcImports = spec.functionImports ?? [];
  const functions = spec.functions ?? [{ body: [] }];
  const imports: number[][] = funcImports.map(([m, n, type]) => [...name(m), ...name(n), 0x00, ...leb(type ?? 0)]);
  if (spec.importedMemory) imports.push([...name('env'), ...name('memory'), 0x02, ...limits(spec.importedMemory)]);
  const startIndex = funcImports.length;
  const exports: number[][] = [[...name('_start'), 0x00, ...leb(startIndex)]];
  if (spec.importedMemory || spec.definedMemory) exports.push([...name('memory'), 0x02, 0x00]);
  const typeEntries = [...types.map(([params, results]) => [0x60, ...vec(params.map((p) => [p])), ...vec(results.map((r) => [r]))]), ...(spec.rawTypes ?? [])];
  const bodies = functions.map((f) => {
    const body = [...vec((f.locals ?? []).map(([count, type]) => [...leb(count), type])), ...f.body, 0x0b];
    return [...leb(body.length), ...body];
  });
  const globals = [
    ...Array.from({ length: spec.globals ?? 0 }, () => [I32, 0x01, 0x41, 0x00, 0x0b]),
    ...Array.from({ length: spec.refGlobals ?? 0 }, () => [FUNCREF, 0x01, 0xd0, FUNCREF, 0x0b]),
  ];
  const data = [
    ...Array.from({ length: spec.dataSegments ?? 0 }, () => [0x00, 0x41, 0x00, 0x0b, 0x01, 0x2a]),
    ...(spec.data ?? []).map((d) => [0x00, 0x41, ...sleb(d.offset), 0x0b, ...leb(d.bytes.length), ...d.bytes]),
  ];
  const elements = Array.from({ length: spec.elementSegments ?? 0 }, () => [0x00, 0x41, 0x00, 0x0b, ...vec([leb(startIndex)])]);
  const bytes = [
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, vec(typeEntries)),
    ...(imports.length ? section(2, vec(imports)) : []),
    ...section(3, vec(functions.map((f) => leb(f.type ?? 0)))),
    ...(spec.tables?.length ? section(4, vec(spec.tables.map((t) => [FUNCREF, ...limits(t)]))) : []),
    ...(spec.definedMemory ? section(5, vec([limits(spec.definedMemory)])) : []),
    ...(globals.length ? section(6, vec(globals)) : []),
    ...section(7, vec(exports)),
    ...(elements.length ? section(9, vec(elements)) : []),
    ...section(10, vec(bodies)),
    ...(data.length ? section(11, vec(data)) : []),
  ];
  return new Uint8Array(bytes);
}

export interface TinyModule {
  /** Function imports `[module, name]`, all of type `() -> ()`. */
  functionImports?: Array<[string, string]>;
  importedMemory?: Limits;
  definedMemory?: Limits;
  /** Body of `_start` as raw instructions, without the final `end`. */
  start?: number[];
}

/** A WASI-command-shaped module: `_start` plus an optional memory, imported or defined and exported. */
export function tinyModule(spec: TinyModule): Uint8Array {
  return wasmModule({
    functionImports: spec.functionImports,
    importedMemory: spec.importedMemory,
    definedMemory: spec.definedMemory,
    functions: [{ body: spec.start ?? [] }],
  });
}
