import type { BackendKind, JobLogLine, JobStatus, JobView } from '../api.js';
import type { NewJob, QueueSettings } from '../model.js';

/** Runs one try of a job; rejects to fail the try (an error with code JOB_CANCELED is never retried). */
export type JobExecutor = (job: JobView, signal: AbortSignal) => Promise<unknown>;

export interface Consumer {
  readonly active: number;
  /** Stops taking jobs; resolves once the jobs in flight settled. */
  close(): Promise<void>;
}

export interface QueueStats {
  depth: number;
  running: number;
  oldestWaitingMs: number | null;
}

export interface StoredHeartbeat {
  id: string;
  body: string;
  lastSeen: number;
}

export type EnqueueOutcome = { kind: 'created' | 'existing'; job: JobView } | { kind: 'full'; size: number } | { kind: 'conflict'; job: JobView };

/** Where jobs live and how workers take them: the embedded store or BullMQ, behind one shape. */
export interface JobBackend {
  readonly kind: BackendKind;
  open(): Promise<void>;
  close(): Promise<void>;
  ping(): Promise<void>;
  /** Creates the job unless the queue holds `maxSize` unfinished jobs, in one step: nothing is half-created. */
  enqueue(job: NewJob, maxSize: number): Promise<EnqueueOutcome>;
  get(id: string): Promise<JobView | undefined>;
  list(filter: { queues: string[]; status?: JobStatus; limit: number }): Promise<JobView[]>;
  /** Marks a queued or running job canceled and tells its worker; undefined when there is no such job. */
  cancel(id: string): Promise<JobView | undefined>;
  progress(id: string, fraction: number, stage: string | null): Promise<void>;
  appendLog(id: string, line: string, maxLines: number): Promise<void>;
  logs(id: string): Promise<JobLogLine[]>;
  stats(queues: string[]): Promise<Map<string, QueueStats>>;
  putHeartbeat(id: string, body: string): Promise<void>;
  removeHeartbeat(id: string): Promise<void>;
  heartbeats(): Promise<StoredHeartbeat[]>;
  /** A lock held for `ttlMs` unless renewed by the same owner; true when this owner holds it. */
  tryLock(name: string, owner: string, ttlMs: number): Promise<boolean>;
  releaseLock(name: string, owner: string): Promise<void>;
  consume(queue: QueueSettings, concurrency: number, workerId: string, execute: JobExecutor): Consumer;
  /** Removes finished jobs older than `before` (ms); how many. */
  purge(before: number): Promise<number>;
}
