/**
 * The public API of `aion.jobs`, for `import type` by other extensions:
 *
 *   const jobs = await aion.extensions.getApi<JobsApi>('aion.jobs');
 *   const job = await jobs.enqueue('preview_build', { project }, { priority: 10, tags: ['web'] });
 *
 * Handlers are contributed, not passed: only data crosses RPC. See `./client.ts` (`processQueue`).
 */

export type JobStatus = 'queued' | 'running' | 'success' | 'failed' | 'canceled';
export type WorkerType = 'cpu' | 'gpu' | 'cleanup';
export type BackendKind = 'embedded' | 'bullmq';

export interface BackoffPolicy {
  type: 'fixed' | 'exponential';
  /** The first retry's delay; exponential doubles it at each further retry. */
  delayMs: number;
}

export interface EnqueueOptions {
  /** Idempotency: enqueueing an id that exists returns that job instead of creating one. */
  jobId?: string;
  /** Higher runs first (0–1000, default 0); equal priorities run in enqueue order. */
  priority?: number;
  /** Total tries, the first included (default: the queue's). */
  attempts?: number;
  backoff?: BackoffPolicy;
  /** One try's time limit; past it the handler's token is cancelled and the try fails with JOB_TIMEOUT. */
  timeoutMs?: number;
  tags?: string[];
  /** The user the job is for: that user may read and cancel it over HTTP (`jobs:read`, `jobs:write`). */
  owner?: { sub: string; tenant_id?: string };
}

export interface JobError {
  code: string;
  message: string;
}

/** A job as every reader sees it (HTTP, the API, SSE and socket.io). */
export interface JobView {
  id: string;
  queue: string;
  status: JobStatus;
  /** 0–1. */
  progress: number;
  stage: string | null;
  payload: unknown;
  result: unknown;
  error: JobError | null;
  priority: number;
  attempts: { made: number; max: number };
  tags: string[];
  /** The extension that enqueued it (null: the kernel). */
  enqueued_by: string | null;
  owner: { sub: string; tenant_id: string } | null;
  worker: string | null;
  timeout_ms: number | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  updated_at: string;
}

export interface JobLogLine {
  at: string;
  line: string;
}

/** What a handler's `run` receives. */
export interface JobRun {
  id: string;
  queue: string;
  payload: unknown;
  /** 1 on the first try. */
  attempt: number;
  maxAttempts: number;
  tags: string[];
  priority: number;
}

/** The implementation an owner registers: `contributions.register('queues', id, { run })`. */
export interface QueueHandler {
  /** Resolves with the job's result (JSON), or throws (an AionError keeps its code). The token is cancelled on cancel and timeout. */
  run(job: JobRun, token?: unknown): unknown;
}

export interface WorkerHeartbeat {
  id: string;
  type: WorkerType;
  queues: string[];
  active_jobs: number;
  concurrency: number;
  /** Active jobs over slots, 0–1. */
  load: number;
  pid: number;
  host: string;
  started_at: string;
  last_seen: string;
  /** `unresponsive` once silent for `unresponsiveAfterMs` (120 s by default). */
  state: 'ok' | 'unresponsive';
}

export interface QueueHealth {
  id: string;
  owner: string | null;
  worker_type: WorkerType;
  concurrency: number;
  max_size: number;
  /** Jobs waiting (queued, including delayed retries). */
  depth: number;
  running: number;
  oldest_waiting_age_ms: number | null;
  /** Whether some worker that is not unresponsive serves this queue. */
  served: boolean;
}

export interface JobsHealth {
  healthy: boolean;
  backend: { kind: BackendKind; ok: boolean; error?: string };
  queues: QueueHealth[];
  workers: WorkerHeartbeat[];
  problems: string[];
}

export interface JobsApi {
  /** Throws QUEUE_FULL (429, Retry-After), QUEUE_UNKNOWN, FORBIDDEN (a privileged queue), VALIDATION_FAILED. */
  enqueue(queue: string, payload: unknown, options?: EnqueueOptions): Promise<JobView>;
  /** A job the caller enqueued or whose queue it owns; null otherwise. */
  get(jobId: string): Promise<JobView | null>;
  /** Cancels a queued or running job (the caller enqueued it or owns its queue); a finished one is returned as is. */
  cancel(jobId: string): Promise<JobView | null>;
  /** From a handler: the job's progress (0–1) and current stage. Only the queue's owner may report. */
  progress(jobId: string, fraction: number, stage?: string): Promise<void>;
  /** From a handler: appends a line to the job's log. Only the queue's owner may write. */
  log(jobId: string, line: string): Promise<void>;
  logs(jobId: string): Promise<JobLogLine[]>;
  /** Privileged: jobs by queue and status. */
  list(filter?: { queue?: string; status?: JobStatus; limit?: number }): Promise<JobView[]>;
  health(): Promise<JobsHealth>;
  /** Privileged: asks the configured scale action for `workers` worker processes. */
  scale(workers: number): Promise<{ workers: number }>;
}

/** Error codes this extension adds to the common ones. */
export const JobsErrorCodes = {
  QUEUE_FULL: 'QUEUE_FULL',
  QUEUE_UNKNOWN: 'QUEUE_UNKNOWN',
  JOB_TIMEOUT: 'JOB_TIMEOUT',
  JOB_FAILED: 'JOB_FAILED',
  JOB_CANCELED: 'JOB_CANCELED',
  WORKER_LOST: 'WORKER_LOST',
  HANDLER_MISSING: 'HANDLER_MISSING',
  BACKEND_UNAVAILABLE: 'BACKEND_UNAVAILABLE',
} as const;

export const FINAL_STATUSES: ReadonlySet<JobStatus> = new Set(['success', 'failed', 'canceled']);
