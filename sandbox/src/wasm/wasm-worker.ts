import { parentPort } from 'node:worker_threads';
import { createWasiImports, GuestExit, isStackOverflow, OutputLimitReached, wasiImportsFor, type WasiCall, type WasiFunction } from './wasi.js';
import {
  CONTROL_BYTES,
  CONTROL_REASON_OFFSET,
  HOST_CALL_LIMITS,
  HostCallStatus,
  type DoneMessage,
  type FromWorker,
  type GuestOutcome,
  type RunMessage,
  type ToWorker,
} from './protocol.js';

/** Runs guest modules for the engine, one call at a time, each in a fresh instance. */

const port = parentPort!;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Stderr goes to the engine at most this often (and when this much is waiting), not once per write. */
const LOG_FLUSH_MS = 2;
const LOG_FLUSH_CHARS = 4096;

class GuestCall implements WasiCall {
  memory!: WebAssembly.Memory;
  stdinOffset = 0;
  readonly stdin: Uint8Array;
  readonly args: string[];
  readonly env: string[];
  readonly denials: string[] = [];
  private deniedBeyondCap = 0;
  /** One buffer grown by doubling: a guest writing a byte at a time must not cost an object per write. */
  private stdout = new Uint8Array(0);
  private stdoutBytes = 0;
  private stderr = '';
  private stderrBytes = 0;
  private stderrDecoder: TextDecoder | null = null;
  private unsentLog = '';
  private lastLogPost = 0;

  constructor(readonly message: RunMessage) {
    this.stdin = message.stdin;
    this.args = message.args;
    this.env = message.env;
  }

  writeStdout(bytes: Uint8Array): void {
    const max = this.message.maxOutputBytes;
    const needed = this.stdoutBytes + bytes.length;
    if (needed > max) throw new OutputLimitReached(max);
    if (needed > this.stdout.length) {
      const grown = new Uint8Array(Math.min(max, Math.max(needed, this.stdout.length * 2, 4096)));
      grown.set(this.stdout.subarray(0, this.stdoutBytes));
      this.stdout = grown;
    }
    this.stdout.set(bytes, this.stdoutBytes);
    this.stdoutBytes = needed;
  }

  /** Bytes of stderr still kept; a host call never decodes more than this. */
  get stderrRoom(): number {
    return Math.max(0, this.message.maxStderrBytes - this.stderrBytes);
  }

  writeStderr(bytes: Uint8Array): void {
    const room = this.message.maxStderrBytes - this.stderrBytes;
    if (room <= 0) return;
    const kept = bytes.length > room ? bytes.subarray(0, room) : bytes;
    this.stderrBytes += kept.length;
    this.stderrDecoder ??= new TextDecoder();
    this.appendStderr(this.stderrDecoder.decode(kept, { stream: true }));
  }

  private appendStderr(text: string): void {
    if (!text) return;
    this.stderr += text;
    this.unsentLog += text;
    // A message per write would let a guest writing a byte at a time flood the engine's thread.
    if (this.unsentLog.length >= LOG_FLUSH_CHARS || performance.now() - this.lastLogPost >= LOG_FLUSH_MS) this.flushLog();
  }

  private flushLog(): void {
    if (!this.unsentLog) return;
    post({ type: 'log', callId: this.message.callId, text: this.unsentLog });
    this.unsentLog = '';
    this.lastLogPost = performance.now();
  }

  log(text: string): void {
    this.writeStderr(encoder.encode(text.endsWith('\n') ? text : `${text}\n`));
  }

  deny(reason: string): void {
    if (this.denials.length < HOST_CALL_LIMITS.denials) this.denials.push(reason);
    else this.deniedBeyondCap++;
    this.log(`sandbox: denied: ${reason}`);
  }

  guestBytes(): Uint8Array {
    return new Uint8Array(this.memory.buffer);
  }

  /** A guest range, or null when it falls outside memory. */
  range(ptr: number, len: number): Uint8Array | null {
    const mem = this.guestBytes();
    if (ptr < 0 || len < 0 || ptr + len > mem.length) return null;
    return mem.subarray(ptr, ptr + len);
  }

  done(outcome: GuestOutcome): DoneMessage {
    const denials = this.deniedBeyondCap ? [...this.denials, `and ${this.deniedBeyondCap} more refused host calls`] : this.denials;
    if (this.stderrDecoder) this.appendStderr(this.stderrDecoder.decode());
    this.flushLog();
    return { type: 'done', callId: this.message.callId, outcome, stdout: this.stdout.subarray(0, this.stdoutBytes), stderr: this.stderr, denials };
  }
}

let current: GuestCall | null = null;
const call = (): GuestCall => {
  if (!current) throw new Error('no guest call in progress');
  return current;
};

const wasi = createWasiImports(call);

const aion: Record<string, WasiFunction> = {
  log: (ptr: number, len: number) => {
    const c = call();
    const text = c.range(ptr, Math.min(len, c.stderrRoom));
    if (text?.length) c.log(decoder.decode(text));
  },

  secret_get: (namePtr: number, nameLen: number, outPtr: number, outCap: number): number => {
    const c = call();
    const nameBytes = c.range(namePtr, nameLen);
    if (!nameBytes) return HostCallStatus.FAULT;
    if (nameBytes.length > HOST_CALL_LIMITS.secretNameBytes) {
      c.deny(`secret_get: a name of ${nameBytes.length} bytes (names are at most ${HOST_CALL_LIMITS.secretNameBytes})`);
      return HostCallStatus.DENIED;
    }
    const name = decoder.decode(nameBytes);
    if (!Object.hasOwn(c.message.secrets, name)) {
      c.deny(`secret_get("${name}"): the secret is not declared`);
      return HostCallStatus.DENIED;
    }
    const value = encoder.encode(c.message.secrets[name]);
    // Like snprintf: the full length always, the bytes only when they fit.
    if (value.length <= outCap) {
      const out = c.range(outPtr, value.length);
      if (!out) return HostCallStatus.FAULT;
      out.set(value);
    }
    return value.length;
  },

  http_fetch: (reqPtr: number, reqLen: number, outPtr: number, outCap: number): number => {
    const c = call();
    const request = c.range(reqPtr, reqLen);
    if (!request || !c.range(outPtr, Math.max(0, outCap))) return HostCallStatus.FAULT;
    if (!c.message.network) {
      c.deny('http_fetch: the skill declares no hosts');
      return HostCallStatus.DENIED;
    }
    if (request.length > HOST_CALL_LIMITS.httpRequestBytes) {
      c.log(`sandbox: http_fetch: the request is ${request.length} bytes; the limit is ${HOST_CALL_LIMITS.httpRequestBytes}`);
      return HostCallStatus.INVALID_REQUEST;
    }
    const control = new SharedArrayBuffer(CONTROL_BYTES);
    const data = new SharedArrayBuffer(Math.max(0, Math.min(outCap, c.message.maxHttpResponseBytes)));
    const flags = new Int32Array(control);
    post({ type: 'fetch', callId: c.message.callId, request: request.slice(), control, data });
    // The engine answers on its own thread; the call's timer still runs there and may end this worker.
    Atomics.wait(flags, 0, 0);
    const status = Atomics.load(flags, 1);
    if (status > 0) c.guestBytes().set(new Uint8Array(data, 0, status), outPtr);
    if (status < 0) {
      const reason = decoder.decode(new Uint8Array(control, CONTROL_REASON_OFFSET, Atomics.load(flags, 2)).slice());
      // The engine records fetch refusals itself; here they only reach the guest's log.
      c.log(`sandbox: ${status === HostCallStatus.DENIED ? 'denied: ' : ''}${reason}`);
    }
    return status;
  },
};

interface CachedModule {
  module: WebAssembly.Module;
  wasi: Record<string, WasiFunction>;
  hasAbort: boolean;
}

const modules = new Map<string, CachedModule>();

function cache(hash: string, module: WebAssembly.Module): CachedModule {
  const imports = WebAssembly.Module.imports(module);
  const entry = { module, wasi: wasiImportsFor(imports, wasi), hasAbort: imports.some((i) => i.module === 'env' && i.name === 'abort') };
  modules.set(hash, entry);
  return entry;
}

/** AssemblyScript's default `env.abort(message, file, line, column)`: strings are UTF-16 with their byte length just before them. */
function abort(messagePtr: number, filePtr: number, line: number, column: number): never {
  const c = call();
  const text = (ptr: number): string => {
    if (!ptr) return '';
    const mem = c.guestBytes();
    if (ptr < 4 || ptr > mem.length) return '';
    const len = Math.min(new DataView(mem.buffer).getUint32(ptr - 4, true), HOST_CALL_LIMITS.abortMessageBytes);
    return Buffer.from(mem.subarray(ptr, ptr + len)).toString('utf16le');
  };
  c.log(`abort: ${text(messagePtr)} in ${text(filePtr)}(${line}:${column})`);
  throw new GuestExit(255);
}

const WASM_FRAME = /wasm-function\[\d+\]:0x([0-9a-f]+)/;

function run(message: RunMessage): DoneMessage {
  const entry = message.module ? cache(message.hash, message.module) : modules.get(message.hash);
  const c = new GuestCall(message);
  current = c;
  try {
    if (!entry) return c.done({ kind: 'instantiate-failed', message: 'module is not loaded in this worker' });
    const env: Record<string, unknown> = {};
    if (message.memory) {
      c.memory = new WebAssembly.Memory({ initial: message.memory.initialPages, maximum: message.memory.maximumPages });
      env.memory = c.memory;
    }
    if (entry.hasAbort) env.abort = abort;
    let instance: WebAssembly.Instance;
    try {
      instance = new WebAssembly.Instance(entry.module, { env, wasi_snapshot_preview1: entry.wasi, aion } as WebAssembly.Imports);
    } catch (err) {
      if (!(err instanceof WebAssembly.LinkError)) throw err;
      return c.done({ kind: 'instantiate-failed', message: err.message });
    }
    if (!message.memory) c.memory = instance.exports.memory as WebAssembly.Memory;
    (instance.exports._start as () => void)();
    return c.done({ kind: 'exit', code: 0 });
  } catch (err) {
    if (err instanceof GuestExit) return c.done({ kind: 'exit', code: err.code });
    if (err instanceof OutputLimitReached) return c.done({ kind: 'output-too-large', limit: err.limit });
    if (isStackOverflow(err)) return c.done({ kind: 'stack-overflow' });
    const stack = err instanceof Error ? (err.stack ?? '') : '';
    const offset = WASM_FRAME.exec(stack)?.[1];
    const memory = c.memory as WebAssembly.Memory | undefined;
    return c.done({
      kind: 'trap',
      message: err instanceof Error ? err.message : String(err),
      trapOffset: offset === undefined ? null : parseInt(offset, 16),
      memoryPages: memory ? memory.buffer.byteLength / 65536 : 0,
    });
  } finally {
    current = null;
  }
}

function post(message: FromWorker, transfer?: Transferable[]): void {
  port.postMessage(message, transfer as never);
}

port.on('message', (message: ToWorker) => {
  if (message.type === 'forget') {
    modules.delete(message.hash);
    return;
  }
  const done = run(message);
  post(done, [done.stdout.buffer as ArrayBuffer]);
});

post({ type: 'ready' });
