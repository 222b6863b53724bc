import { Job, Queue, UnrecoverableError, Worker, type ConnectionOptions, type JobType } from 'bullmq';
import { Redis } from 'ioredis';
import type { JobLogLine, JobStatus, JobView } from '../api.js';
import { JobsErrorCodes } from '../api.js';
import { iso, jobErrorOf, MAX_PRIORITY, type NewJob, type QueueSettings } from '../model.js';
import type { Consumer, EnqueueOutcome, JobBackend, JobExecutor, QueueStats, StoredHeartbeat } from './backend.js';
import { cancelReason } from './embedded.js';

interface JobData {
  payload: unknown;
  tags: string[];
  enqueued_by: string | null;
  owner: { sub: string; tenant_id: string } | null;
  timeout_ms: number | null;
  priority: number;
}

interface Progress {
  fraction: number;
  stage: string | null;
}

const WAITING: JobType[] = ['wait', 'prioritized', 'delayed', 'waiting-children'];
const STATUS_TYPES: Record<JobStatus, JobType[]> = { queued: WAITING, running: ['active'], success: ['completed'], failed: ['failed'], canceled: ['failed'] };

/** `CODE: message`, the way a code survives BullMQ's `failedReason`. */
function reasonOf(error: { code: string; message: string }): string {
  return `${error.code}: ${error.message}`;
}

function parseReason(reason: string | undefined): { code: string; message: string } | null {
  if (!reason) return null;
  const m = /^([A-Z][A-Z0-9_]*): ([\s\S]*)$/.exec(reason);
  return m ? { code: m[1]!, message: m[2]! } : { code: JobsErrorCodes.JOB_FAILED, message: reason };
}

/**
 * BullMQ on Redis: a BullMQ queue per Aion queue (its own keys, so one queue never blocks another), a
 * BullMQ worker per queue a worker process serves. BullMQ handles priorities, delays, retries with
 * backoff and stalled jobs (a dead worker's job goes back to wait after `lockDuration`). Aion adds, in
 * keys of its own under the prefix: the job → queue index, canceled jobs, heartbeats, locks, and a
 * cancel channel so a job running in another process is aborted.
 */
export class BullmqBackend implements JobBackend {
  readonly kind = 'bullmq' as const;
  private readonly redis: Redis;
  private subscriber?: Redis;
  private readonly queues = new Map<string, Queue>();
  private readonly workers = new Set<Worker>();
  /** Jobs running in this process (BullMQ Job objects): progress and logs go straight to them. */
  private readonly active = new Map<string, Job>();
  /** One enqueue at a time per queue in this process, so the size check and the add do not interleave. */
  private readonly enqueueChains = new Map<string, Promise<unknown>>();

  constructor(
    url: string,
    private readonly prefix: string,
    private readonly settings: { leaseMs: () => number; retentionMs: () => number },
  ) {
    this.redis = new Redis(url, { maxRetriesPerRequest: null, lazyConnect: true });
    this.redis.on('error', () => undefined);
  }

  private key(name: string): string {
    return `${this.prefix}:aion-jobs:${name}`;
  }

  private connection(): ConnectionOptions {
    return this.redis as unknown as ConnectionOptions;
  }

  async open(): Promise<void> {
    await this.redis.connect();
    this.subscriber = this.redis.duplicate();
    this.subscriber.on('error', () => undefined);
    await this.subscriber.subscribe(this.key('cancel'));
    this.subscriber.on('message', (_channel: string, id: string) => {
      for (const w of this.workers) w.cancelJob(id, 'JOB_CANCELED');
    });
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.workers].map((w) => w.close()));
    await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
    this.subscriber?.disconnect();
    this.redis.disconnect();
  }

  async ping(): Promise<void> {
    await this.redis.ping();
  }

  private queue(id: string): Queue {
    let q = this.queues.get(id);
    if (!q) {
      q = new Queue(id, { connection: this.connection(), prefix: this.prefix });
      q.on('error', () => undefined);
      this.queues.set(id, q);
    }
    return q;
  }

  async enqueue(job: NewJob, maxSize: number): Promise<EnqueueOutcome> {
    const previous = this.enqueueChains.get(job.queue) ?? Promise.resolve();
    const next = previous.then(() => this.enqueueNow(job, maxSize));
    const tail = next.catch(() => undefined);
    this.enqueueChains.set(job.queue, tail);
    void tail.then(() => this.enqueueChains.get(job.queue) === tail && this.enqueueChains.delete(job.queue));
    return next;
  }

  private async enqueueNow(job: NewJob, maxSize: number): Promise<EnqueueOutcome> {
    const existing = (await this.redis.hexists(this.key('index'), job.id)) ? await this.get(job.id) : undefined;
    if (existing)
      return existing.queue === job.queue && existing.enqueued_by === job.enqueuedBy
        ? { kind: 'existing', job: existing }
        : { kind: 'conflict', job: existing };
    const q = this.queue(job.queue);
    const counts = await q.getJobCounts(...WAITING, 'active');
    const size = Object.values(counts).reduce((a, b) => a + b, 0);
    if (size >= maxSize) return { kind: 'full', size };
    const data: JobData = {
      payload: job.payload,
      tags: job.tags,
      enqueued_by: job.enqueuedBy,
      owner: job.owner,
      timeout_ms: job.timeoutMs,
      priority: job.priority,
    };
    // The index first: a job BullMQ holds is always findable by id.
    await this.redis.hset(this.key('index'), job.id, job.queue);
    const retentionS = Math.ceil(this.settings.retentionMs() / 1000);
    await q.add(job.queue, data, {
      jobId: job.id,
      // BullMQ runs lower numbers first; 0 would mean "no priority" and skip the priority order.
      priority: MAX_PRIORITY + 1 - job.priority,
      attempts: job.maxAttempts,
      backoff: { type: job.backoff.type, delay: job.backoff.delayMs },
      timestamp: job.createdAt,
      removeOnComplete: { age: retentionS },
      removeOnFail: { age: retentionS },
    });
    const created = iso(job.createdAt)!;
    return {
      kind: 'created',
      job: {
        id: job.id,
        queue: job.queue,
        status: 'queued',
        progress: 0,
        stage: null,
        payload: job.payload,
        result: null,
        error: null,
        priority: job.priority,
        attempts: { made: 0, max: job.maxAttempts },
        tags: job.tags,
        enqueued_by: job.enqueuedBy,
        owner: job.owner,
        worker: null,
        timeout_ms: job.timeoutMs,
        created_at: created,
        started_at: null,
        finished_at: null,
        updated_at: created,
      },
    };
  }

  private async viewOf(job: Job, queue: string): Promise<JobView> {
    const state = await job.getState();
    // The job was read before its state: one that completed in between is read again, with its result.
    if ((state === 'completed' || state === 'failed') && job.finishedOn === undefined) job = (await Job.fromId(this.queue(queue), job.id!)) ?? job;
    const data = job.data as JobData;
    const canceled = await this.redis.hexists(this.key('canceled'), job.id!);
    const error = parseReason(job.failedReason);
    let status: JobStatus = state === 'active' ? 'running' : state === 'completed' ? 'success' : state === 'failed' ? 'failed' : 'queued';
    if (canceled && (status === 'failed' || status === 'running')) status = 'canceled';
    const progress = (typeof job.progress === 'object' && job.progress !== null ? job.progress : { fraction: 0, stage: null }) as Progress;
    const final = status === 'success' || status === 'failed' || status === 'canceled';
    return {
      id: job.id!,
      queue,
      status,
      progress: status === 'success' ? 1 : progress.fraction,
      stage: progress.stage,
      payload: data.payload,
      result: status === 'success' ? (job.returnvalue ?? null) : null,
      error: status === 'canceled' ? { code: JobsErrorCodes.JOB_CANCELED, message: 'the job was canceled' } : error,
      priority: data.priority,
      attempts: { made: job.attemptsStarted ?? job.attemptsMade, max: job.opts.attempts ?? 1 },
      tags: data.tags,
      enqueued_by: data.enqueued_by,
      owner: data.owner,
      worker: null,
      timeout_ms: data.timeout_ms,
      created_at: iso(job.timestamp)!,
      started_at: iso(job.processedOn),
      finished_at: final ? iso(job.finishedOn ?? Date.now()) : null,
      updated_at: iso(job.finishedOn ?? job.processedOn ?? job.timestamp)!,
    };
  }

  async get(id: string): Promise<JobView | undefined> {
    const queue = await this.redis.hget(this.key('index'), id);
    if (!queue) return undefined;
    const job = await Job.fromId(this.queue(queue), id);
    if (job) return this.viewOf(job, queue);
    const snapshot = await this.redis.hget(this.key('canceled'), id);
    return snapshot?.startsWith('{') ? (JSON.parse(snapshot) as JobView) : undefined;
  }

  async list(filter: { queues: string[]; status?: JobStatus; limit: number }): Promise<JobView[]> {
    const types = filter.status ? STATUS_TYPES[filter.status] : [...WAITING, 'active', 'completed', 'failed'];
    const out: JobView[] = [];
    for (const id of filter.queues) {
      const jobs = await this.queue(id).getJobs(types as JobType[], 0, filter.limit - 1, false);
      for (const job of jobs) if (job) out.push(await this.viewOf(job as Job, id));
    }
    return out
      .filter((j) => !filter.status || j.status === filter.status)
      .sort((a, b) => b.created_at.localeCompare(a.created_at))
      .slice(0, filter.limit);
  }

  async cancel(id: string): Promise<JobView | undefined> {
    const queue = await this.redis.hget(this.key('index'), id);
    if (!queue) return undefined;
    const job = await Job.fromId(this.queue(queue), id);
    if (!job) return this.get(id);
    const view = await this.viewOf(job, queue);
    if (view.status !== 'queued' && view.status !== 'running') return view;
    if (view.status === 'queued') {
      const now = Date.now();
      const snapshot: JobView = {
        ...view,
        status: 'canceled',
        error: { code: JobsErrorCodes.JOB_CANCELED, message: 'the job was canceled' },
        finished_at: iso(now),
        updated_at: iso(now)!,
      };
      await this.redis.hset(this.key('canceled'), id, JSON.stringify(snapshot));
      try {
        await job.remove();
        return snapshot;
      } catch {
        // A worker took it meanwhile: cancel it where it runs.
      }
    }
    await this.redis.hset(this.key('canceled'), id, '1');
    await this.redis.publish(this.key('cancel'), id);
    return this.get(id);
  }

  private async liveJob(id: string): Promise<Job | undefined> {
    const local = this.active.get(id);
    if (local) return local;
    const queue = await this.redis.hget(this.key('index'), id);
    return queue ? ((await Job.fromId(this.queue(queue), id)) ?? undefined) : undefined;
  }

  async progress(id: string, fraction: number, stage: string | null): Promise<void> {
    const job = await this.liveJob(id);
    if (!job || (await job.getState()) !== 'active') return;
    const previous = (typeof job.progress === 'object' && job.progress !== null ? job.progress : {}) as Partial<Progress>;
    await job.updateProgress({ fraction, stage: stage ?? previous.stage ?? null });
  }

  async appendLog(id: string, line: string, maxLines: number): Promise<void> {
    const job = await this.liveJob(id);
    if (job) await job.log(line.length > 0 ? `${Date.now()} ${line}` : `${Date.now()} `);
    const queue = job?.queueName;
    if (queue) await this.redis.ltrim(`${this.prefix}:${queue}:${id}:logs`, -maxLines, -1);
  }

  async logs(id: string): Promise<JobLogLine[]> {
    const queue = await this.redis.hget(this.key('index'), id);
    if (!queue) return [];
    const { logs } = await this.queue(queue).getJobLogs(id, 0, -1, true);
    return logs.map((entry) => {
      const space = entry.indexOf(' ');
      const at = Number(entry.slice(0, space));
      return { at: iso(Number.isFinite(at) ? at : Date.now())!, line: entry.slice(space + 1) };
    });
  }

  async stats(queues: string[]): Promise<Map<string, QueueStats>> {
    const out = new Map<string, QueueStats>();
    const now = Date.now();
    for (const id of queues) {
      const q = this.queue(id);
      const counts = await q.getJobCounts(...WAITING, 'active');
      const depth = WAITING.reduce((n, t) => n + (counts[t] ?? 0), 0);
      // The oldest of the first thousand waiting jobs: BullMQ orders waiting jobs by priority, not age.
      const waiting = depth > 0 ? await q.getJobs(WAITING, 0, 999, true) : [];
      const oldest = waiting.reduce<number | null>((min, j) => (j && (min === null || j.timestamp < min) ? j.timestamp : min), null);
      out.set(id, { depth, running: counts.active ?? 0, oldestWaitingMs: oldest === null ? null : Math.max(0, now - oldest) });
    }
    return out;
  }

  async putHeartbeat(id: string, body: string): Promise<void> {
    await this.redis.hset(this.key('workers'), id, JSON.stringify({ body, lastSeen: Date.now() }));
  }

  async removeHeartbeat(id: string): Promise<void> {
    await this.redis.hdel(this.key('workers'), id);
  }

  async heartbeats(): Promise<StoredHeartbeat[]> {
    const all = await this.redis.hgetall(this.key('workers'));
    return Object.entries(all)
      .map(([id, v]) => ({ id, ...(JSON.parse(v) as { body: string; lastSeen: number }) }))
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  async tryLock(name: string, owner: string, ttlMs: number): Promise<boolean> {
    const key = this.key(`lock:${name}`);
    // Take it when free, or extend it when this owner already holds it.
    const held = await this.redis.eval(
      `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
       if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
       return 0`,
      1,
      key,
      owner,
      String(ttlMs),
    );
    return Number(held) === 1;
  }

  async releaseLock(name: string, owner: string): Promise<void> {
    await this.redis.eval(`if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0`, 1, this.key(`lock:${name}`), owner);
  }

  async purge(before: number): Promise<number> {
    let removed = 0;
    const index = await this.redis.hgetall(this.key('index'));
    for (const [id, queue] of Object.entries(index)) {
      const job = await Job.fromId(this.queue(queue), id);
      if (!job || (job.finishedOn !== undefined && job.finishedOn < before)) {
        if (job) await job.remove().catch(() => undefined);
        await this.redis.hdel(this.key('index'), id);
        await this.redis.hdel(this.key('canceled'), id);
        removed++;
      }
    }
    for (const hb of await this.heartbeats()) if (hb.lastSeen < before) await this.removeHeartbeat(hb.id);
    return removed;
  }

  consume(queue: QueueSettings, concurrency: number, workerId: string, execute: JobExecutor): Consumer {
    let active = 0;
    const worker = new Worker(
      queue.id,
      async (job, _token, signal) => {
        active++;
        this.active.set(job.id!, job);
        const controller = new AbortController();
        const abort = () => controller.abort(cancelReason());
        signal?.addEventListener('abort', abort, { once: true });
        try {
          if (await this.redis.hexists(this.key('canceled'), job.id!)) throw cancelReason();
          const result = await execute(await this.viewOf(job, queue.id), controller.signal);
          // A handler that ignored its token does not turn a canceled job into a success.
          if (await this.redis.hexists(this.key('canceled'), job.id!)) throw cancelReason();
          return result;
        } catch (err) {
          const error = jobErrorOf(err);
          if (error.code === JobsErrorCodes.JOB_CANCELED) throw new UnrecoverableError(reasonOf(error));
          throw new Error(reasonOf(error));
        } finally {
          signal?.removeEventListener('abort', abort);
          this.active.delete(job.id!);
          active--;
        }
      },
      {
        connection: this.connection(),
        prefix: this.prefix,
        concurrency,
        lockDuration: this.settings.leaseMs(),
        stalledInterval: this.settings.leaseMs(),
        name: workerId,
      },
    );
    worker.on('error', () => undefined);
    this.workers.add(worker);
    return {
      get active() {
        return active;
      },
      close: async () => {
        await worker.close();
        this.workers.delete(worker);
      },
    };
  }
}
