import { availableParallelism } from 'node:os';
import { SandboxError, tail, type SandboxDiagnostic } from '../errors.js';
import { fetchStatusCode, performGuestFetch } from './guest-fetch.js';
import {
  checkModule,
  moduleHash,
  moduleLimitsWith,
  readModule,
  wasmMessage,
  withCompiledInterface,
  type ModuleInfo,
  type ModuleLimits,
} from './module-inspector.js';
import { NetworkPolicy } from './network-policy.js';
import { CONTROL_REASON_OFFSET, HOST_CALL_LIMITS, type DoneMessage, type FetchMessage, type FromWorker, type GuestOutcome } from './protocol.js';
import { WorkerPool, type GuestWorker, type WorkerCrash, type WorkerPoolStats } from './worker-pool.js';

export interface WasmLimits {
  /** Wall-clock time of one call, from the moment a worker takes it. */
  timeoutMs: number;
  /** Memory cap in 64 KiB pages: the maximum of the memory the sandbox supplies as `env.memory`. */
  memoryPages: number;
  /** Bytes the guest may write to stdout; one more aborts the call with `OUTPUT_TOO_LARGE`. */
  maxOutputBytes: number;
  /** Bytes of stderr (and `aion.log`) kept; the rest is dropped. Default 64 KiB, at most 1 MiB. */
  maxStderrBytes?: number;
  /** Largest body `aion.http_fetch` accepts. Default 1 MiB. */
  maxHttpResponseBytes?: number;
}

export interface WasmEngineOptions {
  /** Threads that run guests. Default: available cores − 1, between 1 and 4. */
  workers?: number;
  /** Idle threads kept warm to replace one that was terminated. Default 1. */
  spareWorkers?: number;
  /**
   * V8 old-generation heap of each thread in MiB: what the worker allocates for the guest (tables,
   * globals, host-call buffers), not the guest's linear memory. Past it the thread dies with
   * `ERR_WORKER_OUT_OF_MEMORY`, the call fails with `MEMORY_LIMIT` and a spare takes over. Default 128, at least 16.
   */
  workerHeapMb?: number;
  /** Stack of each thread in MiB: deeper guest recursion ends in `STACK_OVERFLOW`. Default 4, 1–64. */
  workerStackMb?: number;
  /** Caps on a module's size and structure, checked before it is compiled. Default `DEFAULT_MODULE_LIMITS`. */
  moduleLimits?: Partial<ModuleLimits>;
}

export interface WasmRunRequest {
  /** A module compiled earlier with `compile()`, or bytes (compiled and cached on first use). */
  hash?: string;
  bytes?: Uint8Array;
  /** Serialised as JSON and given to the guest on stdin (fd 0). */
  input?: unknown;
  /** argv[1..]; argv[0] is the module hash. */
  args?: readonly string[];
  /** The only environment the guest sees. */
  env?: Readonly<Record<string, string>>;
  /** Declared secrets with their values; `aion.secret_get` refuses every other name. */
  secrets?: Readonly<Record<string, string>>;
  /** Hosts `aion.http_fetch` may reach (see `NetworkPolicy`). Empty or absent: no network. */
  allowedHosts?: readonly string[];
  limits: WasmLimits;
  /** Each line the guest writes to stderr or `aion.log`, as it is written. */
  onLog?: (line: string) => void;
  /** Ends the call (and its worker) early with `CANCELLED`. */
  signal?: AbortSignal;
}

export interface WasmRunResult {
  /** The guest's stdout, parsed as JSON. */
  output: unknown;
  stderr: string;
  durationMs: number;
  /** Host calls the sandbox refused; the guest handled them and still succeeded. */
  diagnostics: SandboxDiagnostic[];
  /** The worker thread (`worker.threadId`) that ran the call. */
  threadId: number;
}

export interface CompiledModule {
  hash: string;
  info: ModuleInfo;
}

interface CacheEntry {
  module: WebAssembly.Module;
  bytes: Uint8Array;
  info: ModuleInfo;
}

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder('utf-8', { fatal: true });
const noNetwork = new NetworkPolicy([]);

const OUT_OF_MEMORY_TEXT = /out of memory|allocation too large|memory allocation of \d+ bytes failed/i;

/**
 * Runs WASI command modules on V8's WebAssembly in a pool of worker threads. Modules are compiled
 * once and cached by sha256; every call gets a fresh instance and a fresh, capped memory.
 */
export class WasmEngine {
  private readonly pool: WorkerPool;
  private readonly moduleLimits: ModuleLimits;
  private readonly modules = new Map<string, CacheEntry>();
  private readonly compiling = new Map<string, Promise<CacheEntry>>();
  private nextCallId = 1;
  private closed = false;

  constructor(options: WasmEngineOptions = {}) {
    const workers = options.workers ?? Math.min(4, Math.max(1, availableParallelism() - 1));
    if (!Number.isInteger(workers) || workers < 1) throw new SandboxError('INVALID_REQUEST', 'workers must be a positive integer.');
    const spares = options.spareWorkers ?? 1;
    if (!Number.isInteger(spares) || spares < 0) throw new SandboxError('INVALID_REQUEST', 'spareWorkers must be a non-negative integer.');
    const heapMb = options.workerHeapMb ?? 128;
    if (!Number.isInteger(heapMb) || heapMb < 16) throw new SandboxError('INVALID_REQUEST', 'workerHeapMb must be an integer of at least 16.');
    const stackMb = options.workerStackMb ?? 4;
    if (!Number.isInteger(stackMb) || stackMb < 1 || stackMb > 64) throw new SandboxError('INVALID_REQUEST', 'workerStackMb must be an integer from 1 to 64.');
    this.moduleLimits = moduleLimitsWith(options.moduleLimits);
    this.pool = new WorkerPool({ size: workers, spares, heapMb, stackMb });
  }

  get workers(): number {
    return this.pool.size;
  }

  /** The threads right now: how many serve, which ids, how many were replaced. */
  stats(): WorkerPoolStats {
    return this.pool.stats();
  }

  /** Resolves when every worker (spares included) has loaded its script, so that the first call does not pay for it. */
  ready(): Promise<void> {
    return this.pool.ready();
  }

  /**
   * Validates and compiles a module, or returns the cached one with the same hash. Throws
   * `MODULE_INVALID`, `MODULE_TOO_LARGE`, `MODULE_TABLE_UNBOUNDED` or `MODULE_MEMORY_UNBOUNDED`
   * (size and structure are checked before V8 compiles anything); the memory cap itself is checked per call.
   */
  async compile(bytes: Uint8Array): Promise<CompiledModule> {
    const entry = await this.load(bytes);
    return { hash: entry.info.hash, info: entry.info };
  }

  has(hash: string): boolean {
    return this.modules.has(hash);
  }

  /** Drops a module from the cache here and in every worker. */
  forget(hash: string): void {
    this.modules.delete(hash);
    this.pool.broadcast({ type: 'forget', hash });
  }

  async run(request: WasmRunRequest): Promise<WasmRunResult> {
    if (this.closed) throw new SandboxError('ENGINE_CLOSED', 'The engine is closed.');
    const limits = normaliseLimits(request.limits);
    const entry = request.bytes ? await this.load(request.bytes) : this.modules.get(request.hash ?? '');
    if (!entry) throw new SandboxError('MODULE_INVALID', `No module with hash ${request.hash ?? '(none)'} is compiled.`);
    checkModule(entry.info, { memoryPages: limits.memoryPages });
    let policy = noNetwork;
    try {
      if (request.allowedHosts?.length) policy = new NetworkPolicy(request.allowedHosts);
    } catch {
      throw new SandboxError('INVALID_REQUEST', 'allowedHosts holds an entry that is not a host name.');
    }
    let stdin: Uint8Array;
    try {
      stdin = encoder.encode(JSON.stringify(request.input ?? null));
    } catch {
      throw new SandboxError('INVALID_REQUEST', 'The input cannot be serialised as JSON.');
    }
    if (request.signal?.aborted) throw new SandboxError('CANCELLED', 'The call was cancelled before it started.');

    const memory = entry.info.memories[0]!;
    const call = new GuestCallRun(this.pool, entry, request, limits, policy);
    return call.start({
      type: 'run',
      callId: this.nextCallId++,
      hash: entry.info.hash,
      stdin,
      args: [entry.info.hash, ...(request.args ?? [])],
      env: Object.entries(request.env ?? {}).map(([k, v]) => `${k}=${v}`),
      secrets: { ...(request.secrets ?? {}) },
      network: !policy.isEmpty,
      memory:
        memory.source === 'imported'
          ? { initialPages: memory.minimumPages, maximumPages: Math.min(limits.memoryPages, memory.maximumPages ?? Infinity) }
          : null,
      maxOutputBytes: limits.maxOutputBytes,
      maxStderrBytes: limits.maxStderrBytes,
      maxHttpResponseBytes: limits.maxHttpResponseBytes,
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.pool.close();
    this.modules.clear();
  }

  dispose(): Promise<void> {
    return this.close();
  }

  private async load(bytes: Uint8Array): Promise<CacheEntry> {
    if (bytes.length > this.moduleLimits.maxModuleBytes) {
      throw new SandboxError('MODULE_TOO_LARGE', `The module is ${bytes.length} bytes; the limit is ${this.moduleLimits.maxModuleBytes}.`);
    }
    const hash = moduleHash(bytes);
    const cached = this.modules.get(hash);
    if (cached) return cached;
    let pending = this.compiling.get(hash);
    if (!pending) {
      const copy = bytes.slice();
      // Sized and counted before V8 compiles anything.
      const layout = readModule(copy, this.moduleLimits);
      pending = WebAssembly.compile(copy).then(
        (module) => {
          const entry = { module, bytes: copy, info: withCompiledInterface(layout, module) };
          checkModule(entry.info);
          this.modules.set(hash, entry);
          return entry;
        },
        (err: unknown) => {
          throw new SandboxError('MODULE_INVALID', `Not a valid WebAssembly module: ${wasmMessage(err)}`);
        },
      );
      pending.finally(() => this.compiling.delete(hash)).catch(() => {});
      this.compiling.set(hash, pending);
    }
    return pending;
  }
}

function normaliseLimits(limits: WasmLimits | undefined): Required<WasmLimits> {
  if (!limits) throw new SandboxError('INVALID_REQUEST', 'limits are required.');
  const positive = (name: keyof WasmLimits, value: number | undefined, fallback?: number): number => {
    const v = value ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new SandboxError('INVALID_REQUEST', `limits.${name} must be a positive number.`);
    return v;
  };
  const memoryPages = positive('memoryPages', limits.memoryPages);
  if (!Number.isInteger(memoryPages) || memoryPages > 65536) throw new SandboxError('INVALID_REQUEST', 'limits.memoryPages must be an integer up to 65536.');
  const maxStderrBytes = Math.floor(positive('maxStderrBytes', limits.maxStderrBytes, 64 * 1024));
  if (maxStderrBytes > HOST_CALL_LIMITS.stderrBytes)
    throw new SandboxError('INVALID_REQUEST', `limits.maxStderrBytes must be at most ${HOST_CALL_LIMITS.stderrBytes}.`);
  return {
    timeoutMs: positive('timeoutMs', limits.timeoutMs),
    memoryPages,
    maxOutputBytes: Math.floor(positive('maxOutputBytes', limits.maxOutputBytes)),
    maxStderrBytes,
    maxHttpResponseBytes: Math.floor(positive('maxHttpResponseBytes', limits.maxHttpResponseBytes, 1024 * 1024)),
  };
}

/** One call from queueing to settlement: owns its timer, its worker while it runs, and its host requests. */
class GuestCallRun {
  private worker: GuestWorker | null = null;
  private timer: NodeJS.Timeout | undefined;
  private started = 0;
  private settled = false;
  private logLine = '';
  private readonly hostDenials: string[] = [];
  /** Aborts this call's host requests when it settles; made on the first request only (an AbortController is not free). */
  private hostRequests: AbortController | null = null;
  private resolve!: (result: WasmRunResult) => void;
  private reject!: (err: unknown) => void;

  constructor(
    private readonly pool: WorkerPool,
    private readonly entry: CacheEntry,
    private readonly request: WasmRunRequest,
    private readonly limits: Required<WasmLimits>,
    private readonly policy: NetworkPolicy,
  ) {}

  start(message: Parameters<GuestWorker['post']>[0] & { type: 'run' }): Promise<WasmRunResult> {
    const result = new Promise<WasmRunResult>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    const { worker, cancel } = this.pool.acquire();
    const signal = this.request.signal;
    const onAbort = () => {
      cancel();
      void this.stop('CANCELLED', 'The call was cancelled.');
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    void worker.then(
      (w) => {
        if (this.settled) return this.pool.release(w);
        this.worker = w;
        w.handler = { onMessage: (m) => this.onMessage(m), onCrash: (c) => this.onCrash(c) };
        if (!w.modules.has(message.hash)) {
          message.module = this.entry.module;
          w.modules.add(message.hash);
        }
        this.started = performance.now();
        this.timer = setTimeout(() => void this.stop('TIMEOUT', `The skill did not finish within ${this.limits.timeoutMs} ms.`), this.limits.timeoutMs);
        w.post(message);
      },
      (err: unknown) => this.fail(err as SandboxError),
    );
    return signal ? result.finally(() => signal.removeEventListener('abort', onAbort)) : result;
  }

  private onMessage(message: FromWorker): void {
    if (this.settled) return;
    if (message.type === 'log') this.log(message.text);
    else if (message.type === 'fetch') void this.fetch(message);
    else if (message.type === 'done') this.finish(message);
  }

  private log(text: string): void {
    if (!this.request.onLog) return;
    const lines = (this.logLine + text).split('\n');
    this.logLine = lines.pop()!;
    for (const line of lines) this.emitLog(line);
  }

  /** The caller's callback must not break the call (or the engine's thread) by throwing. */
  private emitLog(line: string): void {
    try {
      this.request.onLog?.(line);
    } catch {
      // Ignored: logging is best effort.
    }
  }

  private async fetch(message: FetchMessage): Promise<void> {
    const flags = new Int32Array(message.control, 0, 3);
    this.hostRequests ??= new AbortController();
    const result = await performGuestFetch(message.request, this.policy, { maxBodyBytes: this.limits.maxHttpResponseBytes, signal: this.hostRequests.signal });
    if (this.settled) return;
    let status: number;
    let reason = '';
    if (result.status === 'ok') {
      const body = encoder.encode(JSON.stringify(result.response));
      if (body.length <= message.data.byteLength) {
        new Uint8Array(message.data).set(body);
        status = body.length;
      } else {
        status = fetchStatusCode['too-large'];
        reason = `http_fetch: the response (${body.length} bytes) is larger than the guest's buffer`;
      }
    } else {
      status = fetchStatusCode[result.status];
      reason = result.reason;
      if (result.status === 'denied') this.hostDenials.push(result.reason);
    }
    const reasonBytes = encoder.encode(reason).subarray(0, message.control.byteLength - CONTROL_REASON_OFFSET);
    new Uint8Array(message.control, CONTROL_REASON_OFFSET).set(reasonBytes);
    Atomics.store(flags, 2, reasonBytes.length);
    Atomics.store(flags, 1, status);
    Atomics.store(flags, 0, 1);
    Atomics.notify(flags, 0);
  }

  /** The pages the guest's memory may reach: the call's cap, or less when the module declares less. */
  private get memoryCap(): number {
    return Math.min(this.limits.memoryPages, this.entry.info.memories[0]?.maximumPages ?? Infinity);
  }

  /** The thread has exited (the pool has already put a spare in its place). */
  private onCrash(crash: WorkerCrash): void {
    if (this.settled) return;
    this.worker = null;
    const diagnostics = this.diagnostics([]);
    if (crash.code === 'ENGINE_CLOSED') this.fail(new SandboxError('ENGINE_CLOSED', crash.message));
    else if (crash.code === 'ERR_WORKER_OUT_OF_MEMORY') {
      this.fail(
        new SandboxError('MEMORY_LIMIT', `The skill made its sandbox worker run out of heap memory (limit ${this.pool.heapMb} MiB); the worker was replaced.`, {
          diagnostics,
          fatal: true,
        }),
      );
    } else
      this.fail(new SandboxError('SKILL_FAILED', 'The sandbox worker running the skill stopped unexpectedly; it was replaced.', { diagnostics, fatal: true }));
  }

  /**
   * Ends a call that has not finished: a spare takes its worker's place, the worker is terminated,
   * and the call answers once that thread has exited, so nothing of the guest runs after the answer.
   */
  private async stop(code: 'TIMEOUT' | 'CANCELLED', message: string): Promise<void> {
    if (this.settled) return;
    this.settle();
    const worker = this.worker;
    this.worker = null;
    const error = new SandboxError(code, message, { diagnostics: this.diagnostics([]), fatal: code === 'TIMEOUT' });
    if (worker) await this.pool.discard(worker);
    this.reject(error);
  }

  private finish(done: DoneMessage): void {
    const threadId = this.worker?.threadId ?? 0;
    const worker = this.worker;
    this.worker = null;
    if (worker) this.pool.release(worker);
    const diagnostics = this.diagnostics(done.denials);
    const stderr = done.stderr;
    if (this.logLine) this.emitLog(this.logLine);
    const error = (code: ConstructorParameters<typeof SandboxError>[0], message: string) =>
      this.fail(new SandboxError(code, message, { stderr: tail(stderr), diagnostics }));
    const outcome = done.outcome;
    switch (outcome.kind) {
      case 'output-too-large':
        return error('OUTPUT_TOO_LARGE', `The skill wrote more than ${outcome.limit} bytes of output.`);
      case 'instantiate-failed':
        return error('MODULE_INVALID', `The module could not be instantiated: ${wasmMessage(outcome.message)}`);
      case 'stack-overflow':
        return error('STACK_OVERFLOW', `The skill overflowed its stack (${this.pool.stackMb} MiB): too deep a recursion.`);
      case 'trap':
        if (isOutOfMemory(outcome, this.memoryCap, this.entry.bytes, stderr))
          return error('MEMORY_LIMIT', `The skill ran out of memory (limit ${this.memoryCap} pages of 64 KiB).`);
        return this.failed(error, `The skill trapped: ${wasmMessage(outcome.message)}.`, stderr, diagnostics);
      case 'exit':
        if (outcome.code !== 0) {
          if (OUT_OF_MEMORY_TEXT.test(stderr)) return error('MEMORY_LIMIT', `The skill ran out of memory (limit ${this.memoryCap} pages of 64 KiB).`);
          return this.failed(error, `The skill exited with code ${outcome.code}.`, stderr, diagnostics);
        }
    }
    let output: unknown;
    try {
      output = JSON.parse(strictDecoder.decode(done.stdout));
    } catch {
      return error('INVALID_OUTPUT', `The skill's output is not JSON (${done.stdout.length} bytes).`);
    }
    this.settle();
    this.resolve({ output, stderr, durationMs: performance.now() - this.started, diagnostics, threadId });
  }

  /** A failure after a refused host call is most likely caused by it, so it is reported as such. */
  private failed(
    error: (code: 'SKILL_FAILED' | 'PERMISSION_DENIED', message: string) => void,
    message: string,
    stderr: string,
    diagnostics: SandboxDiagnostic[],
  ): void {
    const detail = stderr.trim() ? ` stderr: ${tail(stderr.trim(), 500)}` : '';
    if (diagnostics.length) return error('PERMISSION_DENIED', `${message} It was refused: ${diagnostics.map((d) => d.message).join('; ')}.${detail}`);
    return error('SKILL_FAILED', `${message}${detail}`);
  }

  private diagnostics(workerDenials: readonly string[]): SandboxDiagnostic[] {
    return [...workerDenials, ...this.hostDenials].map((message) => ({ code: 'PERMISSION_DENIED', message }));
  }

  private fail(error: SandboxError): void {
    if (this.settled) return;
    this.settle();
    this.reject(error);
  }

  private settle(): void {
    this.settled = true;
    clearTimeout(this.timer);
    this.hostRequests?.abort();
  }
}

/**
 * Whether a trap was the guest running out of memory. `memory.grow` past the cap returns −1 and
 * the guest's allocator traps; that is recognised by an `unreachable` right after a `memory.grow`
 * check (what AssemblyScript and Binaryen emit), by a memory already at its cap, or by the
 * allocator's message on stderr.
 */
function isOutOfMemory(outcome: Extract<GuestOutcome, { kind: 'trap' }>, capPages: number, bytes: Uint8Array, stderr: string): boolean {
  if (OUT_OF_MEMORY_TEXT.test(stderr)) return true;
  if (outcome.memoryPages >= capPages) return true;
  const at = outcome.trapOffset;
  if (at === null || bytes[at] !== 0x00) return false;
  for (let i = Math.max(0, at - 10); i < at - 1; i++) if (bytes[i] === 0x40 && bytes[i + 1] === 0x00) return true;
  return false;
}
