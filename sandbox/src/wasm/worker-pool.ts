import { Worker } from 'node:worker_threads';
import { SandboxError } from '../errors.js';
import type { FromWorker, ToWorker } from './protocol.js';

const workerUrl = new URL('./wasm-worker.js', import.meta.url);

/** How long a terminated thread may take to exit before the call answers anyway (it is still counted as terminating). */
const EXIT_GRACE_MS = 2000;

/** Why a worker stopped while a call was on it. */
export interface WorkerCrash {
  code: string | undefined;
  message: string;
}

export interface GuestWorkerHandler {
  onMessage(message: FromWorker): void;
  onCrash(crash: WorkerCrash): void;
}

/** One thread of the pool. It runs one guest call at a time and knows which modules it holds. */
export class GuestWorker {
  readonly modules = new Set<string>();
  readonly threadId: number;
  handler: GuestWorkerHandler | null = null;
  /** Settles when the worker's script has loaded and listens (or the thread has died trying). */
  readonly online: Promise<void>;
  /** Settles when the thread has exited. */
  readonly exited: Promise<void>;
  loaded = false;
  private discarded = false;
  private failure: WorkerCrash | null = null;

  constructor(
    private readonly worker: Worker,
    private readonly onLost: (worker: GuestWorker) => void,
  ) {
    this.threadId = worker.threadId;
    let loaded!: () => void;
    this.online = new Promise((resolve) => {
      loaded = resolve;
      worker.once('exit', () => resolve());
    });
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    worker.on('message', (message: FromWorker) => {
      if (message.type === 'ready') {
        this.loaded = true;
        loaded();
      } else this.handler?.onMessage(message);
    });
    // 'error' comes before 'exit' (ERR_WORKER_OUT_OF_MEMORY among others); the call fails once the thread is gone.
    worker.on('error', (err: Error & { code?: string }) => {
      this.failure ??= { code: err.code, message: err.message };
    });
    worker.on('exit', (code) => this.lost(this.failure ?? { code: undefined, message: `worker exited with code ${code}` }));
  }

  post(message: ToWorker): void {
    this.worker.postMessage(message);
  }

  /**
   * Ends the thread whatever it is doing (a guest in an endless loop stops within milliseconds)
   * and resolves once it has exited, or after a grace period for a thread stuck outside JS.
   */
  terminate(): Promise<void> {
    if (!this.discarded) {
      this.discarded = true;
      this.handler = null;
      void this.worker.terminate();
    }
    return Promise.race([this.exited, new Promise<void>((resolve) => setTimeout(resolve, EXIT_GRACE_MS).unref())]);
  }

  private lost(crash: WorkerCrash): void {
    if (this.discarded) return;
    this.discarded = true;
    const handler = this.handler;
    this.handler = null;
    // Replaced first, so that the caller of the failed call finds the pool whole again.
    this.onLost(this);
    handler?.onCrash(crash);
  }
}

export interface WorkerPoolOptions {
  size: number;
  /** Started and idle, ready to replace a worker that was terminated. */
  spares: number;
  /** V8 old-generation heap limit of each thread. Guest memory is not counted here; the imported memory caps that. */
  heapMb: number;
  /** Stack of each thread: deeper guest recursion is a `RangeError`, not a crash. */
  stackMb: number;
}

/** What the pool holds right now. */
export interface WorkerPoolStats {
  /** Threads that can take calls: busy, idle and spare. */
  threads: number;
  busy: number;
  idle: number;
  spares: number;
  /** Terminated threads that have not exited yet. */
  terminating: number;
  /** Calls waiting for a thread. */
  queued: number;
  /** Thread ids (`worker.threadId`) of the threads that can take calls. */
  threadIds: number[];
  /** Threads terminated (timeout, cancellation, worker out of memory) or lost (crash) and replaced since the pool started. */
  replaced: number;
}

/**
 * A fixed set of guest workers plus warm spares. A worker that is terminated (timeout,
 * cancellation) or crashes is replaced at once by a spare, and a new spare starts in the background,
 * so the pool keeps serving.
 */
export class WorkerPool {
  private readonly idle: GuestWorker[] = [];
  private readonly spares: GuestWorker[] = [];
  private readonly busy = new Set<GuestWorker>();
  private readonly terminating = new Set<GuestWorker>();
  private readonly waiters: Array<{ resolve: (worker: GuestWorker) => void; reject: (err: Error) => void }> = [];
  private readonly all = new Set<GuestWorker>();
  private replaced = 0;
  private closed = false;

  constructor(private readonly options: WorkerPoolOptions) {
    for (let i = 0; i < options.size; i++) this.idle.push(this.spawn());
    for (let i = 0; i < options.spares; i++) this.spares.push(this.spawn());
  }

  get size(): number {
    return this.options.size;
  }

  get queued(): number {
    return this.waiters.length;
  }

  get heapMb(): number {
    return this.options.heapMb;
  }

  get stackMb(): number {
    return this.options.stackMb;
  }

  stats(): WorkerPoolStats {
    return {
      threads: this.all.size,
      busy: this.busy.size,
      idle: this.idle.length,
      spares: this.spares.length,
      terminating: this.terminating.size,
      queued: this.waiters.length,
      threadIds: [...this.all].map((w) => w.threadId),
      replaced: this.replaced,
    };
  }

  /** Resolves with a worker as soon as one is free; FIFO. `cancel` removes a waiter that no longer wants one. */
  acquire(): { worker: Promise<GuestWorker>; cancel: () => void } {
    const worker = this.idle.pop();
    if (worker) {
      this.busy.add(worker);
      return { worker: Promise.resolve(worker), cancel: () => {} };
    }
    if (this.closed) return { worker: Promise.reject(new SandboxError('ENGINE_CLOSED', 'The engine is closed.')), cancel: () => {} };
    let waiter!: { resolve: (worker: GuestWorker) => void; reject: (err: Error) => void };
    const promise = new Promise<GuestWorker>((resolve, reject) => {
      waiter = { resolve, reject };
      this.waiters.push(waiter);
    });
    return {
      worker: promise,
      cancel: () => {
        const index = this.waiters.indexOf(waiter);
        if (index >= 0) this.waiters.splice(index, 1);
      },
    };
  }

  /** Takes back a worker whose guest has finished; only then may another call have it. */
  release(worker: GuestWorker): void {
    worker.handler = null;
    if (this.closed) {
      this.busy.delete(worker);
      void worker.terminate();
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter) {
      this.busy.add(worker);
      waiter.resolve(worker);
    } else {
      this.busy.delete(worker);
      this.idle.push(worker);
    }
  }

  /** Puts a spare in the place of a busy worker, terminates it, and resolves once its thread has exited. */
  discard(worker: GuestWorker): Promise<void> {
    this.busy.delete(worker);
    this.all.delete(worker);
    this.terminating.add(worker);
    void worker.exited.then(() => this.terminating.delete(worker));
    this.replaced++;
    this.replace();
    return worker.terminate();
  }

  /** Resolves when every thread, spares included, has started. */
  async ready(): Promise<void> {
    await Promise.all([...this.all].map((w) => w.online));
  }

  broadcast(message: ToWorker & { type: 'forget' }): void {
    for (const worker of this.all) {
      worker.modules.delete(message.hash);
      worker.post(message);
    }
  }

  /** Terminates every thread, busy ones included; their calls fail as crashed unless they settle first. */
  async close(): Promise<void> {
    this.closed = true;
    for (const waiter of this.waiters.splice(0)) waiter.reject(new SandboxError('ENGINE_CLOSED', 'The engine closed before the call started.'));
    const exits: Promise<void>[] = [];
    for (const worker of this.all) {
      worker.handler?.onCrash({ code: 'ENGINE_CLOSED', message: 'The engine closed during the call.' });
      exits.push(worker.terminate());
    }
    this.all.clear();
    this.busy.clear();
    this.idle.length = 0;
    this.spares.length = 0;
    await Promise.all([...exits, ...[...this.terminating].map((w) => w.terminate())]);
  }

  private replace(): void {
    if (this.closed) return;
    const spare = this.spares.shift() ?? this.spawn();
    this.release(spare);
    if (this.spares.length < this.options.spares) this.spares.push(this.spawn());
  }

  private spawn(): GuestWorker {
    const { heapMb, stackMb } = this.options;
    const worker = new Worker(workerUrl, {
      env: {},
      // A parent started with --eval or --input-type must not pass those on: the worker runs a file.
      execArgv: process.execArgv.filter((arg) => !/^(-e|-p|--eval|--print|--input-type)(=|$)/.test(arg)),
      stdout: false,
      stderr: false,
      resourceLimits: { maxOldGenerationSizeMb: heapMb, maxYoungGenerationSizeMb: Math.max(4, Math.round(heapMb / 8)), stackSizeMb: stackMb },
    });
    worker.unref();
    const guest = new GuestWorker(worker, (lost) => this.onLost(lost));
    this.all.add(guest);
    return guest;
  }

  private onLost(worker: GuestWorker): void {
    this.all.delete(worker);
    const spareIndex = this.spares.indexOf(worker);
    if (spareIndex >= 0) {
      this.spares.splice(spareIndex, 1);
      // A thread that dies before loading would die again at once: wait before the next try.
      if (!this.closed) setTimeout(() => this.closed || this.spares.push(this.spawn()), worker.loaded ? 0 : 1000).unref();
      return;
    }
    const idleIndex = this.idle.indexOf(worker);
    if (idleIndex >= 0) this.idle.splice(idleIndex, 1);
    this.busy.delete(worker);
    this.replaced++;
    this.replace();
  }
}
