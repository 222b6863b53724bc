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

export interface ModuleImport {
  module: string;
  name: string;
  kind: 'function' | 'table' | 'memory' | 'global' | 'tag';
}

export interface ModuleExport {
  name: string;
  kind: 'function' | 'table' | 'memory' | 'global' | 'tag';
}

export interface ModuleInfo {
  /** sha256 of the bytes, lowercase hex: the module's identity in the engine's cache. */
  hash: string;
  sizeBytes: number;
  imports: ModuleImport[];
  exports: ModuleExport[];
  memories: ModuleMemory[];
}

export interface ValidateOptions {
  /** The memory cap in 64 KiB pages; when given, a defined memory whose maximum exceeds it is refused. */
  memoryPages?: number;
}

/** The imports a guest may declare besides any `wasi_snapshot_preview1` function. */
export const HOST_IMPORTS: Readonly<Record<string, readonly string[]>> = {
  aion: ['log', 'secret_get', 'http_fetch'],
  env: ['memory', 'abort'],
};

export function moduleHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
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
    if (t === 0x63 || t === 0x64) this.u(); // (ref null? heaptype): heap type index or abstract type
  }
}

/** Reads what `WebAssembly.Module.imports/exports` do not show: the limits of imported and defined memories. */
function readSections(bytes: Uint8Array): Pick<ModuleInfo, 'memories'> {
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new SandboxError('MODULE_INVALID', 'Not a WebAssembly module (bad magic number).');
  }
  if (bytes[4] !== 1 || bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) {
    throw new SandboxError('MODULE_INVALID', 'Only core WebAssembly modules (version 1) are supported, not components.');
  }
  const memories: ModuleMemory[] = [];
  const top = new Reader(bytes, 8, bytes.length);
  while (top.pos < top.end) {
    const id = top.byte();
    const size = top.u();
    const section = new Reader(bytes, top.pos, top.pos + size);
    top.skip(size);
    if (id === 2) {
      for (let count = section.u(); count > 0; count--) {
        const importModule = section.name();
        const importName = section.name();
        const kind = section.byte();
        if (kind === 0x00) section.u();
        else if (kind === 0x01) {
          section.valueType();
          section.limits();
        } else if (kind === 0x02) memories.push({ source: 'imported', importModule, importName, ...section.limits() });
        else if (kind === 0x03) {
          section.valueType();
          section.byte();
        } else if (kind === 0x04) {
          section.byte();
          section.u();
        } else throw new RangeError(`unknown import kind ${kind}`);
      }
    } else if (id === 5) {
      for (let count = section.u(); count > 0; count--) memories.push({ source: 'defined', ...section.limits() });
    }
  }
  return { memories };
}

/** Describes a module without running it. Throws `MODULE_INVALID` when the bytes are not a valid module. */
export function inspectModule(bytes: Uint8Array): ModuleInfo {
  let module: WebAssembly.Module;
  try {
    module = new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
  } catch (err) {
    throw new SandboxError('MODULE_INVALID', `Not a valid WebAssembly module: ${wasmMessage(err)}`);
  }
  return describeModule(bytes, module);
}

/** Like `inspectModule` for bytes already compiled into `module`. */
export function describeModule(bytes: Uint8Array, module: WebAssembly.Module): ModuleInfo {
  let sections: Pick<ModuleInfo, 'memories'>;
  try {
    sections = readSections(bytes);
  } catch (err) {
    if (err instanceof SandboxError) throw err;
    throw new SandboxError('MODULE_INVALID', `Could not read the module's sections: ${(err as Error).message}`);
  }
  return {
    hash: moduleHash(bytes),
    sizeBytes: bytes.length,
    imports: WebAssembly.Module.imports(module) as ModuleImport[],
    exports: WebAssembly.Module.exports(module) as ModuleExport[],
    ...sections,
  };
}

/**
 * Checks everything an install step can check: the imports are ones the sandbox provides, the
 * module is a WASI command (`_start`), and its memory is either imported (`env.memory`, capped by
 * the sandbox at run time) or defined with a maximum within the cap. Throws `SandboxError`
 * (`MODULE_INVALID`, `MODULE_MEMORY_UNBOUNDED`, `MEMORY_LIMIT`).
 */
export function validateModule(bytes: Uint8Array, options: ValidateOptions = {}): ModuleInfo {
  const info = inspectModule(bytes);
  checkModule(info, options);
  return info;
}

export function checkModule(info: ModuleInfo, options: ValidateOptions = {}): void {
  const refused = info.imports.filter((i) => {
    if (i.module === 'wasi_snapshot_preview1') return i.kind !== 'function';
    const names = HOST_IMPORTS[i.module];
    if (!names || !names.includes(i.name)) return true;
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
    throw new SandboxError('MODULE_INVALID', info.memories.length ? 'Modules with more than one memory are not supported.' : 'The module has no memory: import env.memory.');
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
      throw new SandboxError('MODULE_MEMORY_UNBOUNDED', 'The module defines its own memory without a maximum. Import env.memory (AssemblyScript: --importMemory) or declare a maximum.');
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
