/** Builds tiny WebAssembly binaries byte by byte, for the cases a compiler will not produce. */

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
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

function limits(min: number, max?: number): number[] {
  return max === undefined ? [0x00, ...leb(min)] : [0x01, ...leb(min), ...leb(max)];
}

export interface TinyModule {
  /** Function imports `[module, name]`, all of type `() -> ()`. */
  functionImports?: Array<[string, string]>;
  importedMemory?: { min: number; max?: number };
  definedMemory?: { min: number; max?: number };
  /** Body of `_start` as raw instructions, without the final `end`. */
  start?: number[];
}

/** A WASI-command-shaped module: `_start` plus an optional memory, imported or defined and exported. */
export function tinyModule(spec: TinyModule): Uint8Array {
  const funcImports = spec.functionImports ?? [];
  const imports: number[][] = funcImports.map(([m, n]) => [...name(m), ...name(n), 0x00, 0x00]);
  if (spec.importedMemory) imports.push([...name('env'), ...name('memory'), 0x02, ...limits(spec.importedMemory.min, spec.importedMemory.max)]);
  const exports: number[][] = [[...name('_start'), 0x00, ...leb(funcImports.length)]];
  if (spec.importedMemory || spec.definedMemory) exports.push([...name('memory'), 0x02, 0x00]);
  const body = [0x00, ...(spec.start ?? []), 0x0b];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([[0x60, 0x00, 0x00]])),
    ...(imports.length ? section(2, vec(imports)) : []),
    ...section(3, vec([[0x00]])),
    ...(spec.definedMemory ? section(5, vec([limits(spec.definedMemory.min, spec.definedMemory.max)])) : []),
    ...section(7, vec(exports)),
    ...section(10, vec([[...leb(body.length), ...body]])),
  ];
  return new Uint8Array(bytes);
}
