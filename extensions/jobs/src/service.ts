import { randomUUID } from 'node:crypto';
import { AionError, ErrorCodes, type Principal } from '@aion/extension-api';
import { FINAL_STATUSES, JobsErrorCodes, type EnqueueOptions, type JobLogLine, type JobStatus, type JobView, type JobsHealth } from './api.js';
import type { JobBackend } from './backends/backend.js';
import { newJob } from './model.js';
import type { QueueCatalog } from './queues.js';
import { heartbeatViews } from './workers.js';

export interface ServiceSettings {
  enqueueGrants: Record<string, string[]>;
  retryAfterSeconds: number;
  maxLogLines: number;
  unresponsiveAfterMs: number;
}

const STATUSES: JobStatus[] = ['queued', 'running', 'success', 'failed', 'canceled'];
const notFound = (id: string) => new AionError(ErrorCodes.NOT_FOUND, `no job ${id}`);

/** Reading a job over HTTP: an admin reads every job; a user the jobs that name it as owner. */
function mayRead(principal: Principal | undefined, job: JobView): boolean {
  if (!principal) return false;
  if (principal.scopes.includes('jobs:admin') || principal.scopes.includes('*')) return true;
  const owner = typeof principal.owner === 'string' ? principal.owner : principal.sub;
  return job.owner !== null && job.owner.sub === owner && job.owner.tenant_id === principal.tenant_id;
}

/**
 * What callers may do with jobs. An extension (the kernel-verified caller) enqueues onto queues it
 * owns, public ones, and those the operator grants it; it reads and cancels jobs it enqueued or whose
 * queue it owns; only a queue's owner reports progress and logs for its jobs.
 */
export class JobService {
  private readonly listeners = new Map<string, Set<() => void>>();

  constructor(
    readonly backend: JobBackend,
    private readonly catalog: () => QueueCatalog,
    private readonly settings: () => ServiceSettings,
  ) {}

  async enqueue(caller: string | undefined, queueId: unknown, payload: unknown, options: EnqueueOptions | undefined): Promise<JobView> {
    if (typeof queueId !== 'string') throw new AionError(ErrorCodes.VALIDATION_FAILED, 'the queue is a string, e.g. enqueue("preview_build", payload)');
    const queue = this.catalog().require(queueId);
    if (caller !== undefined && caller !== queue.owner && queue.enqueue !== 'public') {
      const granted = this.settings().enqueueGrants[caller] ?? [];
      if (!granted.includes(queue.id) && !granted.includes('*')) {
        throw new AionError(
          ErrorCodes.FORBIDDEN,
          `${caller} may not enqueue onto ${queue.id}: it belongs to ${queue.owner ?? 'no installed extension'} and is privileged; the operator grants it with extensions["aion.jobs"].enqueueGrants["${caller}"]: ["${queue.id}"]`,
          {
            details: { caller, queue: queue.id, owner: queue.owner },
          },
        );
      }
    }
    const job = newJob(queue, payload, options, caller ?? null, randomUUID, Date.now());
    const outcome = await this.backend.enqueue(job, queue.maxSize);
    if (outcome.kind === 'full') {
      const retryAfter = this.settings().retryAfterSeconds;
      throw new AionError(
        JobsErrorCodes.QUEUE_FULL,
        `queue ${queue.id} holds ${outcome.size} unfinished jobs, its maximum of ${queue.maxSize}: retry after ${retryAfter} s`,
        {
          status: 429,
          headers: { 'Retry-After': String(retryAfter) },
          details: { queue: queue.id, maxSize: queue.maxSize, size: outcome.size, retryAfterSeconds: retryAfter },
        },
      );
    }
    if (outcome.kind === 'conflict') throw new AionError(ErrorCodes.CONFLICT, `the job id ${job.id} is taken by another job; choose another jobId`);
    return outcome.job;
  }

  /** A job the caller may see as an extension, or undefined. */
  private async visible(caller: string | undefined, id: unknown): Promise<JobView | undefined> {
    if (typeof id !== 'string' || id.length === 0) throw new AionError(ErrorCodes.VALIDATION_FAILED, 'a job id is a non-empty string');
    const job = await this.backend.get(id);
    if (!job) return undefined;
    if (caller === undefined || job.enqueued_by === caller || this.catalog().byId.get(job.queue)?.owner === caller) return job;
    return undefined;
  }

  get(caller: string | undefined, id: unknown): Promise<JobView | undefined> {
    return this.visible(caller, id);
  }

  async cancel(caller: string | undefined, id: unknown): Promise<JobView | undefined> {
    const job = await this.visible(caller, id);
    if (!job) return undefined;
    const after = FINAL_STATUSES.has(job.status) ? job : await this.backend.cancel(job.id);
    this.notify(job.id);
    return after;
  }

  private async ownedRunning(caller: string | undefined, id: unknown, what: string): Promise<JobView | undefined> {
    if (typeof id !== 'string') throw new AionError(ErrorCodes.VALIDATION_FAILED, 'a job id is a string');
    const job = await this.backend.get(id);
    if (!job) throw notFound(id);
    const owner = this.catalog().byId.get(job.queue)?.owner;
    if (caller !== undefined && caller !== owner)
      throw new AionError(ErrorCodes.FORBIDDEN, `only ${owner ?? "the queue's owner"} reports ${what} for jobs of ${job.queue}`);
    // A job that was canceled or finished meanwhile takes no more reports; the handler learns it from its token.
    return job.status === 'running' ? job : undefined;
  }

  async progress(caller: string | undefined, id: unknown, fraction: unknown, stage: unknown): Promise<void> {
    if (typeof fraction !== 'number' || !Number.isFinite(fraction) || fraction < 0 || fraction > 1)
      throw new AionError(ErrorCodes.VALIDATION_FAILED, 'progress is a number from 0 to 1');
    if (stage !== undefined && stage !== null && (typeof stage !== 'string' || stage.length > 200))
      throw new AionError(ErrorCodes.VALIDATION_FAILED, 'a stage is a string of at most 200 characters');
    const job = await this.ownedRunning(caller, id, 'progress');
    if (!job) return;
    await this.backend.progress(job.id, fraction, (stage as string | undefined) ?? null);
    this.notify(job.id);
  }

  async log(caller: string | undefined, id: unknown, line: unknown): Promise<void> {
    if (typeof line !== 'string') throw new AionError(ErrorCodes.VALIDATION_FAILED, 'a log line is a string');
    const job = await this.ownedRunning(caller, id, 'log lines');
    if (!job) return;
    await this.backend.appendLog(job.id, line.slice(0, 8192), this.settings().maxLogLines);
  }

  async logs(caller: string | undefined, id: unknown): Promise<JobLogLine[]> {
    const job = await this.visible(caller, id);
    if (!job) throw notFound(String(id));
    return this.backend.logs(job.id);
  }

  async list(filter: { queue?: unknown; status?: unknown; limit?: unknown }): Promise<JobView[]> {
    const queues = filter.queue === undefined || filter.queue === '' ? [...this.catalog().byId.keys()] : [this.catalog().require(String(filter.queue)).id];
    if (filter.status !== undefined && filter.status !== '' && !STATUSES.includes(filter.status as JobStatus)) {
      throw new AionError(ErrorCodes.VALIDATION_FAILED, `status is one of ${STATUSES.join(', ')}`);
    }
    const limit = filter.limit === undefined || filter.limit === '' ? 100 : Number(filter.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new AionError(ErrorCodes.VALIDATION_FAILED, 'limit is an integer from 1 to 1000');
    return this.backend.list({ queues, status: (filter.status || undefined) as JobStatus | undefined, limit });
  }

  /** HTTP: a job the principal may read, else NOT_FOUND (which does not tell whether it exists). */
  async forPrincipal(principal: Principal | undefined, id: string): Promise<JobView> {
    const job = await this.backend.get(id);
    if (!job || !mayRead(principal, job)) throw notFound(id);
    return job;
  }

  async health(): Promise<JobsHealth> {
    const catalog = this.catalog();
    const problems: string[] = [...catalog.refused];
    let backendOk = true;
    let backendError: string | undefined;
    try {
      await this.backend.ping();
    } catch (err) {
      backendOk = false;
      backendError = (err as Error).message;
      problems.push(`the ${this.backend.kind} backend is unreachable: ${backendError}`);
    }
    const workers = backendOk ? heartbeatViews(await this.backend.heartbeats(), this.settings().unresponsiveAfterMs) : [];
    const stats = backendOk ? await this.backend.stats([...catalog.byId.keys()]) : new Map();
    const queues = catalog.all().map((q) => {
      const s = stats.get(q.id) ?? { depth: 0, running: 0, oldestWaitingMs: null };
      const served = workers.some((w) => w.state === 'ok' && w.queues.includes(q.id));
      if (s.depth > 0 && !served) problems.push(`queue ${q.id} has ${s.depth} waiting jobs and no responsive worker serves it`);
      return {
        id: q.id,
        owner: q.owner,
        worker_type: q.workerType,
        concurrency: q.concurrency,
        max_size: q.maxSize,
        depth: s.depth,
        running: s.running,
        oldest_waiting_age_ms: s.oldestWaitingMs,
        served,
      };
    });
    for (const w of workers) if (w.state === 'unresponsive') problems.push(`worker ${w.id} has been silent since ${w.last_seen}`);
    const healthy = backendOk && !queues.some((q) => q.depth > 0 && !q.served);
    return {
      healthy,
      backend: backendError ? { kind: this.backend.kind, ok: backendOk, error: backendError } : { kind: this.backend.kind, ok: backendOk },
      queues,
      workers,
      problems,
    };
  }

  notify(id: string): void {
    for (const l of this.listeners.get(id) ?? []) l();
  }

  /** The job each time its status, stage, progress or tries change, until it is final. */
  async *follow(id: string, signal?: { isCancellationRequested: boolean }, pollMs = 250): AsyncGenerator<JobView> {
    let last = '';
    let wake: (() => void) | undefined;
    const listener = () => wake?.();
    let set = this.listeners.get(id);
    if (!set) this.listeners.set(id, (set = new Set()));
    set.add(listener);
    try {
      while (!signal?.isCancellationRequested) {
        const job = await this.backend.get(id);
        if (!job) return;
        const key = `${job.status}|${job.progress}|${job.stage}|${job.attempts.made}`;
        if (key !== last) {
          last = key;
          yield job;
        }
        if (FINAL_STATUSES.has(job.status)) return;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, pollMs);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    } finally {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(id);
    }
  }
}
