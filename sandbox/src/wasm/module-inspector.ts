import { createHash } from 'node:crypto';
import { SandboxError } from '../errors.js';

/** One WebAssembly page: 64 KiB. */
export const WASM_PAGE_BYTES = 65536;

export interface MemoryLimits {
  minimumPages: number;
  /** `null` when the module declares no maximum. */
  maximumPages: number | null;
  shared: boolean;
  memory64: boolean;
}

export interface ModuleMemory extends MemoryLimits {
  /** `imported` from `env.memory` (the sandbox supplies it, capped) or `defined` by the module itself. */
  source: 'imported' | 'defined';
  importModule?: string;
  importName?: string;
}

export interface ModuleTable {
  source: 'imported' | 'defined';
  minimumElements: number;
  /** `null` when the module declares no maximum. */
  maximumElements: number | null;
}

export type ExternalKind = 'function' | 'table' | 'memory' | 'global' | 'tag';

export interface ModuleImport {
  module: string;
  name: string;
  kind: ExternalKind;
}

export interface ModuleExport {
  name: string;
  kind: ExternalKind;
}

/** How much of each thing the module declares: what instantiating it costs the worker's heap. */
export interface ModuleCounts {
  /** Of every kind. */
  imports: number;
  /** Imported and defined. */
  functions: number;
  globals: number;
  dataSegments: number;
  elementSegments: number;
  /** Entries over all element segments. */
  elementEntries: number;
}

export interface ModuleInfo {
  /** sha256 of the bytes, lowercase hex: the module's identity in the engine's cache. */
  hash: string;
  sizeBytes: number;
  imports: ModuleImport[];
  exports: ModuleExport[];
  memories: ModuleMemory[];
  tables: ModuleTable[];
  counts: ModuleCounts;
}

/**
 * Caps on what a module may declare, checked before V8 compiles it. Tables, globals and the
 * instance's bookkeeping live on the worker's JS heap, where a single allocation larger than the
 * heap's headroom aborts the whole process instead of failing the worker.
 */
export interface ModuleLimits {
  maxModuleBytes: number;
  /** Each import costs the instance heap objects, and every unknown WASI name a host function. */
  maxImports: number;
  maxFunctions: number;
  maxGlobals: number;
  maxDataSegments: number;
  maxElementSegments: number;
  /** Entries over all element segments. */
  maxElementEntries: number;
  /** Every table needs a maximum; the sum of the maximums is capped. */
  maxTableElements: number;
}

export const DEFAULT_MODULE_LIMITS: Readonly<ModuleLimits> = {
  maxModuleBytes: 16 * 1024 * 1024,
  maxImports: 1_000,
  maxFunctions: 100_000,
  maxGlobals: 10_000,
  maxDataSegments: 10_000,
  maxElementSegments: 10_000,
  maxElementEntries: 65_536,
  maxTableElements: 65_536,
};

export interface ValidateOptions {
  /** The memory cap in 64 KiB pages; when given, a defined memory whose maximum exceeds it is refused. */
  memoryPages?: number;
  /** Caps on the module's structure; each defaults to `DEFAULT_MODULE_LIMITS`. */
  moduleLimits?: Partial<ModuleLimits>;
}

/** The imports a guest may declare besides any `wasi_snapshot_preview1` function. */
export const HOST_IMPORTS: Readonly<Record<string, readonly string[]>> = {
  aion: ['log', 'secret_get', 'http_fetch'],
  env: ['memory', 'abort'],
};

const KINDS: readonly ExternalKind[] = ['function', 'table', 'memory', 'global', 'tag'];

export function moduleHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * What no configuration may raise a limit past: V8's own limits, and for what lives on the worker
 * heap, sizes whose arrays stay well inside the 16 MiB the heap gets when it runs out, so that
 * running out fails the worker, never the process. (Near these, compiling alone takes hundreds of
 * MiB in the engine's process: raise the defaults with care.)
 */
export const MODULE_LIMIT_CEILINGS: Readonly<ModuleLimits> = {
  maxModuleBytes: 1024 * 1024 * 1024,
  maxImports: 100_000,
  maxFunctions: 1_000_000,
  maxGlobals: 100_000,
  maxDataSegments: 100_000,
  maxElementSegments: 100_000,
  maxElementEntries: 1_000_000,
  maxTableElements: 1_000_000,
};

export function moduleLimitsWith(overrides: Partial<ModuleLimits> = {}): ModuleLimits {
  const limits = { ...DEFAULT_MODULE_LIMITS, ...overrides };
  for (const key of Object.keys(DEFAULT_MODULE_LIMITS) as Array<keyof ModuleLimits>) {
    const value = limits[key];
    const ceiling = MODULE_LIMIT_CEILINGS[key];
    if (!Number.isInteger(value) || value < 0 || value > ceiling)
      throw new SandboxError('INVALID_REQUEST', `moduleLimits.${key} must be an integer from 0 to ${ceiling}.`);
  }
  return limits;
}

class Reader {
  pos: number;
  constructor(
    private readonly bytes: Uint8Array,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  byte(): number {
    if (this.pos >= this.end) throw new RangeError('unexpected end of section');
    return this.bytes[this.pos++]!;
  }

  /** Unsigned LEB128, up to 2^53. */
  u(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.byte();
      result += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return result;
      scale *= 128;
    }
    throw new RangeError('LEB128 too long');
  }

  /** Skips a signed LEB128 without decoding it. */
  skipLeb(): void {
    for (let i = 0; i < 10; i++) if ((this.byte() & 0x80) === 0) return;
    throw new RangeError('LEB128 too long');
  }

  skip(n: number): void {
    if (this.pos + n > this.end) throw new RangeError('unexpected end of section');
    this.pos += n;
  }

  name(): string {
    const len = this.u();
    const start = this.pos;
    this.skip(len);
    return new TextDecoder().decode(this.bytes.subarray(start, start + len));
  }

  limits(): MemoryLimits {
    const flags = this.byte();
    const minimumPages = this.u();
    const maximumPages = flags & 0x01 ? this.u() : null;
    if (flags & 0x08) this.u(); // custom page size exponent
    return { minimumPages, maximumPages, shared: (flags & 0x02) !== 0, memory64: (flags & 0x04) !== 0 };
  }

  valueType(): void {
    const t = this.byte();
    if (t === 0x63 || t === 0x64) this.skipLeb(); // (ref null? heaptype): heap type index or abstract type
  }

  table(source: ModuleTable['source']): ModuleTable {
    this.valueType();
    const { minimumPages, maximumPages } = this.limits();
    return { source, minimumElements: minimumPages, maximumElements: maximumPages };
  }

  /** Skips a constant expression (offsets, global initialisers, element items) up to its `end`. */
  constExpr(): void {
    for (;;) {
      const op = this.byte();
      if (op === 0x0b) return;
      if (op === 0x41 || op === 0x42)
        this.skipLeb(); // i32.const, i64.const
      else if (op === 0x43)
        this.skip(4); // f32.const
      else if (op === 0x44)
        this.skip(8); // f64.const
      else if (op === 0x23 || op === 0xd2)
        this.u(); // global.get, ref.func
      else if (op === 0xd0)
        this.skipLeb(); // ref.null heaptype
      else if ((op >= 0x6a && op <= 0x6c) || (op >= 0x7c && op <= 0x7e))
        continue; // extended constants: add, sub, mul
      else if (op === 0xfd && this.u() === 0x0c)
        this.skip(16); // v128.const
      else throw new RangeError(`unsupported instruction 0x${op.toString(16)} in a constant expression`);
    }
  }
}

type ModuleLayout = Omit<ModuleInfo, 'hash' | 'sizeBytes'>;

/** Reads what a module declares, without compiling it: imports, exports, memories, tables and how many of each thing. */
function readLayout(bytes: Uint8Array): ModuleLayout {
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new SandboxError('MODULE_INVALID', 'Not a WebAssembly module (bad magic number).');
  }
  if (bytes[4] !== 1 || bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) {
    throw new SandboxError('MODULE_INVALID', 'Only core WebAssembly modules (version 1) are supported, not components.');
  }
  const layout: ModuleLayout = {
    imports: [],
    exports: [],
    memories: [],
    tables: [],
    counts: { imports: 0, functions: 0, globals: 0, dataSegments: 0, elementSegments: 0, elementEntries: 0 },
  };
  const { counts } = layout;
  const top = new Reader(bytes, 8, bytes.length);
  while (top.pos < top.end) {
    const id = top.byte();
    const size = top.u();
    const section = new Reader(bytes, top.pos, top.pos + size);
    top.skip(size);
    if (id === 1) {
      // Anything but a plain function type (struct, array, recursion groups) is allocated on the worker's heap.
      for (let count = section.u(); count > 0; count--) {
        const form = section.byte();
        if (form !== 0x60)
          throw new SandboxError(
            'MODULE_INVALID',
            'The module declares WebAssembly GC types (structs, arrays or recursion groups), which the sandbox does not run.',
          );
        for (let params = section.u(); params > 0; params--) section.valueType();
        for (let results = section.u(); results > 0; results--) section.valueType();
      }
    } else if (id === 2) {
      for (let count = section.u(); count > 0; count--) {
        const importModule = section.name();
        const importName = section.name();
        const kindByte = section.byte();
        const kind = KINDS[kindByte];
        if (!kind) throw new RangeError(`unknown import kind ${kindByte}`);
        layout.imports.push({ module: importModule, name: importName, kind });
        counts.imports++;
        if (kind === 'function') {
          section.u();
          counts.functions++;
        } else if (kind === 'table') layout.tables.push(section.table('imported'));
        else if (kind === 'memory') layout.memories.push({ source: 'imported', importModule, importName, ...section.limits() });
        else if (kind === 'global') {
          section.valueType();
          section.byte();
          counts.globals++;
        } else {
          section.byte();
          section.u();
        }
      }
    } else if (id === 3) counts.functions += section.u();
    else if (id === 4) {
      for (let count = section.u(); count > 0; count--) {
        // 0x40 0x00: a table with an initialiser expression (function references).
        if (bytes[section.pos] === 0x40 && bytes[section.pos + 1] === 0x00) {
          section.skip(2);
          layout.tables.push(section.table('defined'));
          section.constExpr();
        } else layout.tables.push(section.table('defined'));
      }
    } else if (id === 5) {
      for (let count = section.u(); count > 0; count--) layout.memories.push({ source: 'defined', ...section.limits() });
    } else if (id === 6) counts.globals += section.u();
    else if (id === 7) {
      for (let count = section.u(); count > 0; count--) {
        const name = section.name();
        const kindByte = section.byte();
        const kind = KINDS[kindByte];
        if (!kind) throw new RangeError(`unknown export kind ${kindByte}`);
        section.u();
        layout.exports.push({ name, kind });
      }
    } else if (id === 9) {
      for (let count = section.u(); count > 0; count--) {
        counts.elementSegments++;
        counts.elementEntries += elementSegmentEntries(section);
      }
    } else if (id === 11) counts.dataSegments = section.u();
  }
  return layout;
}

/** Reads one element segment and answers how many entries it holds. */
function elementSegmentEntries(section: Reader): number {
  const flags = section.u();
  if (flags > 7) throw new RangeError(`unknown element segment kind ${flags}`);
  const explicitTable = (flags & 0x02) !== 0 && (flags & 0x01) === 0;
  const active = (flags & 0x01) === 0;
  const expressions = (flags & 0x04) !== 0;
  if (explicitTable) section.u();
  if (active) section.constExpr();
  if (flags & 0x03) {
    // Passive, declarative or with an explicit table: an element kind (0x00) or a reference type.
    if (expressions) section.valueType();
    else section.byte();
  }
  const entries = section.u();
  for (let i = 0; i < entries; i++) {
    if (expressions) section.constExpr();
    else section.u();
  }
  return entries;
}

/**
 * Describes a module and checks its size and structure against `limits` before V8 compiles it,
 * so an oversized module costs neither compile time nor memory. Throws `MODULE_INVALID` when the
 * bytes are not a valid module, `MODULE_TOO_LARGE` when something is over a cap.
 */
export function inspectModule(bytes: Uint8Array, limits: Partial<ModuleLimits> = {}): ModuleInfo {
  const info = readModule(bytes, moduleLimitsWith(limits));
  let module: WebAssembly.Module;
  try {
    module = new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
  } catch (err) {
    throw new SandboxError('MODULE_INVALID', `Not a valid WebAssembly module: ${wasmMessage(err)}`);
  }
  return withCompiledInterface(info, module);
}

/** The imports and exports as V8 compiled them, so the checks that follow never rest on this file's parser alone. */
export function withCompiledInterface(info: ModuleInfo, module: WebAssembly.Module): ModuleInfo {
  return { ...info, imports: WebAssembly.Module.imports(module) as ModuleImport[], exports: WebAssembly.Module.exports(module) as ModuleExport[] };
}

/** Reads the module's layout and refuses it when it is over `limits`; does not compile it. */
export function readModule(bytes: Uint8Array, limits: ModuleLimits): ModuleInfo {
  if (bytes.length > limits.maxModuleBytes) {
    throw new SandboxError('MODULE_TOO_LARGE', `The module is ${bytes.length} bytes; the limit is ${limits.maxModuleBytes}.`);
  }
  let layout: ModuleLayout;
  try {
    layout = readLayout(bytes);
  } catch (err) {
    if (err instanceof SandboxError) throw err;
    throw new SandboxError('MODULE_INVALID', `Could not read the module's sections: ${(err as Error).message}`);
  }
  const info: ModuleInfo = { hash: moduleHash(bytes), sizeBytes: bytes.length, ...layout };
  checkStructure(info, limits);
  return info;
}

function checkStructure(info: ModuleInfo, limits: ModuleLimits): void {
  const over: string[] = [];
  const { counts } = info;
  if (counts.imports > limits.maxImports) over.push(`${counts.imports} imports (limit ${limits.maxImports})`);
  if (counts.functions > limits.maxFunctions) over.push(`${counts.functions} functions (limit ${limits.maxFunctions})`);
  if (counts.globals > limits.maxGlobals) over.push(`${counts.globals} globals (limit ${limits.maxGlobals})`);
  if (counts.dataSegments > limits.maxDataSegments) over.push(`${counts.dataSegments} data segments (limit ${limits.maxDataSegments})`);
  if (counts.elementSegments > limits.maxElementSegments) over.push(`${counts.elementSegments} element segments (limit ${limits.maxElementSegments})`);
  if (counts.elementEntries > limits.maxElementEntries) over.push(`${counts.elementEntries} element segment entries (limit ${limits.maxElementEntries})`);
  if (over.length) throw new SandboxError('MODULE_TOO_LARGE', `The module declares ${over.join(', ')}.`);
  if (info.tables.some((t) => t.maximumElements === null)) {
    throw new SandboxError(
      'MODULE_TABLE_UNBOUNDED',
      `The module declares a table without a maximum size. Declare one (at most ${limits.maxTableElements} elements in all tables together).`,
    );
  }
  const tableElements = info.tables.reduce((sum, t) => sum + t.maximumElements!, 0);
  if (tableElements > limits.maxTableElements) {
    throw new SandboxError('MODULE_TABLE_UNBOUNDED', `The module's tables may grow to ${tableElements} elements; the limit is ${limits.maxTableElements}.`);
  }
}

/**
 * Checks everything an install step can check: the module's size and structure are within the
 * caps, the imports are ones the sandbox provides, the module is a WASI command (`_start`), and its
 * memory is either imported (`env.memory`, capped by the sandbox at run time) or defined with a
 * maximum within the cap. Throws `SandboxError` (`MODULE_INVALID`, `MODULE_TOO_LARGE`,
 * `MODULE_TABLE_UNBOUNDED`, `MODULE_MEMORY_UNBOUNDED`, `MEMORY_LIMIT`).
 */
export function validateModule(bytes: Uint8Array, options: ValidateOptions = {}): ModuleInfo {
  const info = inspectModule(bytes, options.moduleLimits);
  checkModule(info, options);
  return info;
}

export function checkModule(info: ModuleInfo, options: ValidateOptions = {}): void {
  const refused = info.imports.filter((i) => {
    if (i.module === 'wasi_snapshot_preview1') return i.kind !== 'function';
    const names = HOST_IMPORTS[i.module];
    if (!names?.includes(i.name)) return true;
    return i.name === 'memory' ? i.kind !== 'memory' : i.kind !== 'function';
  });
  if (refused.length) {
    const list = refused.map((i) => `${i.module}.${i.name} (${i.kind})`).join(', ');
    throw new SandboxError('MODULE_INVALID', `The module imports what the sandbox does not provide: ${list}.`);
  }
  if (!info.exports.some((e) => e.name === '_start' && e.kind === 'function')) {
    throw new SandboxError('MODULE_INVALID', 'The module is not a WASI command: it exports no _start function.');
  }
  if (info.memories.length !== 1) {
    throw new SandboxError(
      'MODULE_INVALID',
      info.memories.length ? 'Modules with more than one memory are not supported.' : 'The module has no memory: import env.memory.',
    );
  }
  const memory = info.memories[0]!;
  if (memory.memory64 || memory.shared) {
    throw new SandboxError('MODULE_INVALID', `${memory.memory64 ? '64-bit' : 'Shared'} memories are not supported.`);
  }
  const cap = options.memoryPages;
  if (memory.source === 'defined') {
    if (!info.exports.some((e) => e.name === 'memory' && e.kind === 'memory')) {
      throw new SandboxError('MODULE_INVALID', 'The module defines a memory but does not export it as "memory".');
    }
    if (memory.maximumPages === null) {
      throw new SandboxError(
        'MODULE_MEMORY_UNBOUNDED',
        'The module defines its own memory without a maximum. Import env.memory (AssemblyScript: --importMemory) or declare a maximum.',
      );
    }
    if (cap !== undefined && memory.maximumPages > cap) {
      throw new SandboxError('MODULE_MEMORY_UNBOUNDED', `The module's memory may grow to ${memory.maximumPages} pages; the limit is ${cap} pages.`);
    }
  }
  if (cap !== undefined && memory.minimumPages > cap) {
    throw new SandboxError('MEMORY_LIMIT', `The module needs ${memory.minimumPages} pages of memory to start; the limit is ${cap} pages.`);
  }
}

/** V8's message for a WebAssembly failure, without the API name prefix. */
export function wasmMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/^WebAssembly\.[A-Za-z.]+\(\): /, '');
}
