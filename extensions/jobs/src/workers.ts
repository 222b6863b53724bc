import { hostname } from 'node:os';
import * as aion from '@aion/extension-api';
import { AionError, CancellationTokenSource } from '@aion/extension-api';
import type { JobView, QueueHandler, WorkerHeartbeat, WorkerType } from './api.js';
import { JobsErrorCodes } from './api.js';
import type { Consumer, JobBackend } from './backends/backend.js';
import { runOf, type QueueSettings } from './model.js';

export const CLEANUP_LOCK = 'cleanup-worker';

export interface WorkerOptions {
  id: string;
  type: WorkerType;
  queues: QueueSettings[];
  /** Jobs in flight per queue; the queue's own when absent. Cleanup queues always run one. */
  concurrency?: number;
  heartbeatIntervalMs: number;
  log: (level: 'info' | 'warn', message: string) => void;
  /** Told when a try ends, so followers of the job hear at once. */
  onSettled?: (jobId: string) => void;
}

/** Calls the owner's handler for one try: cancel and timeout cancel its token and end the try at once. */
async function runTry(job: JobView, signal: AbortSignal): Promise<unknown> {
  const handler = await aion.contributions.get<QueueHandler>('queues', job.queue).catch((err) => {
    throw new AionError(
      JobsErrorCodes.HANDLER_MISSING,
      `no handler runs queue ${job.queue}: its owner registers one with contributions.register('queues', '${job.queue}', { run }) (${(err as Error).message})`,
    );
  });
  const source = new CancellationTokenSource();
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stopped = new Promise<never>((_, reject) => {
    onAbort = () => {
      source.cancel();
      reject(signal.reason);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    if (job.timeout_ms !== null) {
      timer = setTimeout(() => {
        source.cancel();
        reject(new AionError(JobsErrorCodes.JOB_TIMEOUT, `the try ran past the job's timeout of ${job.timeout_ms} ms`));
      }, job.timeout_ms);
    }
  });
  try {
    return await Promise.race([handler.run(runOf(job), source.token), stopped]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener('abort', onAbort);
    source.dispose();
  }
}

/**
 * A worker: one consumer per queue (so one queue's backlog never takes another's slots), heartbeats,
 * and the cleanup lock — cleanup queues run in one worker of the whole installation at a time.
 */
export class WorkerPool {
  private readonly consumers = new Map<string, Consumer>();
  private heartbeat?: NodeJS.Timeout;
  private readonly startedAt = new Date().toISOString();
  private holdsCleanupLock = false;
  private stopped = false;

  constructor(
    private readonly backend: JobBackend,
    private readonly options: WorkerOptions,
  ) {}

  get id(): string {
    return this.options.id;
  }

  get active(): number {
    let n = 0;
    for (const c of this.consumers.values()) n += c.active;
    return n;
  }

  private slots(): number {
    return this.options.queues.reduce((n, q) => n + this.concurrencyOf(q), 0);
  }

  private concurrencyOf(q: QueueSettings): number {
    return q.workerType === 'cleanup' ? 1 : (this.options.concurrency ?? q.concurrency);
  }

  private startConsumer(q: QueueSettings): void {
    if (this.consumers.has(q.id)) return;
    const onSettled = this.options.onSettled;
    this.consumers.set(
      q.id,
      this.backend.consume(q, this.concurrencyOf(q), this.options.id, async (job, signal) => {
        try {
          return await runTry(job, signal);
        } finally {
          if (onSettled) setImmediate(() => onSettled(job.id));
        }
      }),
    );
  }

  async start(): Promise<void> {
    for (const q of this.options.queues) if (q.workerType !== 'cleanup') this.startConsumer(q);
    await this.beat();
    this.heartbeat = setInterval(() => void this.beat(), this.options.heartbeatIntervalMs);
    this.heartbeat.unref();
  }

  /** Heartbeat, and the cleanup lock: taken or kept for three intervals, cleanup consumers follow it. */
  private async beat(): Promise<void> {
    if (this.stopped) return;
    try {
      const cleanup = this.options.queues.filter((q) => q.workerType === 'cleanup');
      if (cleanup.length > 0) {
        const held = await this.backend.tryLock(CLEANUP_LOCK, this.options.id, this.options.heartbeatIntervalMs * 3);
        if (held && !this.holdsCleanupLock) for (const q of cleanup) this.startConsumer(q);
        if (!held && this.holdsCleanupLock) {
          this.options.log('warn', `worker ${this.options.id} lost the cleanup lock; its cleanup queues stop`);
          for (const q of cleanup) await this.stopConsumer(q.id);
        }
        this.holdsCleanupLock = held;
      }
      await this.backend.putHeartbeat(this.options.id, JSON.stringify(this.heartbeatBody()));
    } catch (err) {
      this.options.log('warn', `worker ${this.options.id} could not send its heartbeat: ${(err as Error).message}`);
    }
  }

  private heartbeatBody(): Omit<WorkerHeartbeat, 'last_seen' | 'state'> {
    const slots = this.slots();
    return {
      id: this.options.id,
      type: this.options.type,
      queues: this.options.queues.filter((q) => q.workerType !== 'cleanup' || this.holdsCleanupLock).map((q) => q.id),
      active_jobs: this.active,
      concurrency: slots,
      load: slots === 0 ? 0 : Math.round((this.active / slots) * 1000) / 1000,
      pid: process.pid,
      host: hostname(),
      started_at: this.startedAt,
    };
  }

  private async stopConsumer(id: string): Promise<void> {
    const c = this.consumers.get(id);
    this.consumers.delete(id);
    await c?.close();
  }

  /** Stops taking jobs, lets those in flight finish, and leaves the heartbeat table. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.heartbeat);
    await Promise.allSettled([...this.consumers.keys()].map((id) => this.stopConsumer(id)));
    await this.backend.removeHeartbeat(this.options.id).catch(() => undefined);
    if (this.holdsCleanupLock) await this.backend.releaseLock(CLEANUP_LOCK, this.options.id).catch(() => undefined);
  }
}

/** Heartbeats as shown to readers: `unresponsive` once silent for `unresponsiveAfterMs`. */
export function heartbeatViews(
  stored: Array<{ id: string; body: string; lastSeen: number }>,
  unresponsiveAfterMs: number,
  now = Date.now(),
): WorkerHeartbeat[] {
  return stored.map((s) => {
    const body = JSON.parse(s.body) as Omit<WorkerHeartbeat, 'last_seen' | 'state'>;
    return { ...body, id: s.id, last_seen: new Date(s.lastSeen).toISOString(), state: now - s.lastSeen > unresponsiveAfterMs ? 'unresponsive' : 'ok' };
  });
}
