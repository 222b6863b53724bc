import { AionError, ErrorCodes } from '@aion/extension-api';
import type { BackoffPolicy, EnqueueOptions, JobRun, JobView, WorkerType } from './api.js';

/** A queue as workers and enqueue see it: its contribution merged with the operator's overrides. */
export interface QueueSettings {
  id: string;
  owner: string | null;
  concurrency: number;
  maxSize: number;
  attempts: number;
  backoff: BackoffPolicy;
  timeoutMs: number | null;
  workerType: WorkerType;
  enqueue: 'public' | 'privileged';
  /** What a gpu worker's device must offer (`resources.gpu` of the queue's entry). */
  gpu?: { vendor?: string; memoryMiB?: number };
}

/** A job about to be stored, every default applied. */
export interface NewJob {
  id: string;
  queue: string;
  payload: unknown;
  priority: number;
  maxAttempts: number;
  backoff: BackoffPolicy;
  timeoutMs: number | null;
  tags: string[];
  enqueuedBy: string | null;
  owner: { sub: string; tenant_id: string } | null;
  createdAt: number;
}

export const MAX_PRIORITY = 1000;
const MAX_PAYLOAD_BYTES = 1024 * 1024;
const JOB_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

function invalid(message: string): AionError {
  return new AionError(ErrorCodes.VALIDATION_FAILED, message);
}

/** Checks what an extension passed to `enqueue` and fills in the queue's defaults. */
export function newJob(
  queue: QueueSettings,
  payload: unknown,
  options: EnqueueOptions | undefined,
  enqueuedBy: string | null,
  makeId: () => string,
  now: number,
): NewJob {
  const o = (options ?? {}) as Record<string, unknown>;
  if (typeof o !== 'object' || Array.isArray(o))
    throw invalid('enqueue options are an object: { jobId?, priority?, attempts?, backoff?, timeoutMs?, tags?, owner? }');
  const known = new Set(['jobId', 'priority', 'attempts', 'backoff', 'timeoutMs', 'tags', 'owner']);
  for (const key of Object.keys(o)) if (!known.has(key)) throw invalid(`unknown enqueue option "${key}"; known: ${[...known].join(', ')}`);
  if (o.jobId !== undefined && (typeof o.jobId !== 'string' || !JOB_ID.test(o.jobId)))
    throw invalid('jobId is 1–128 characters: letters, digits, . _ : - (not starting with a symbol)');
  if (o.priority !== undefined && (!Number.isInteger(o.priority) || (o.priority as number) < 0 || (o.priority as number) > MAX_PRIORITY))
    throw invalid(`priority is an integer from 0 to ${MAX_PRIORITY} (higher runs first)`);
  if (o.attempts !== undefined && (!Number.isInteger(o.attempts) || (o.attempts as number) < 1 || (o.attempts as number) > 100))
    throw invalid('attempts is an integer from 1 to 100');
  if (o.timeoutMs !== undefined && (!Number.isInteger(o.timeoutMs) || (o.timeoutMs as number) < 1)) throw invalid('timeoutMs is a positive integer');
  const backoff = o.backoff as BackoffPolicy | undefined;
  if (
    backoff !== undefined &&
    (typeof backoff !== 'object' || !['fixed', 'exponential'].includes(backoff?.type) || !Number.isInteger(backoff.delayMs) || backoff.delayMs < 0)
  ) {
    throw invalid('backoff is { type: "fixed" | "exponential", delayMs: integer ≥ 0 }');
  }
  const tags = o.tags as unknown[] | undefined;
  if (tags !== undefined && (!Array.isArray(tags) || tags.length > 32 || tags.some((t) => typeof t !== 'string' || t.length === 0 || t.length > 64)))
    throw invalid('tags is a list of at most 32 strings of 1–64 characters');
  const owner = o.owner as { sub?: unknown; tenant_id?: unknown } | undefined;
  if (
    owner !== undefined &&
    (typeof owner !== 'object' || typeof owner?.sub !== 'string' || !owner.sub || (owner.tenant_id !== undefined && typeof owner.tenant_id !== 'string'))
  ) {
    throw invalid('owner is { sub: string, tenant_id?: string }');
  }
  const bytes = Buffer.byteLength(JSON.stringify(payload ?? null));
  if (bytes > MAX_PAYLOAD_BYTES)
    throw new AionError(
      ErrorCodes.PAYLOAD_TOO_LARGE,
      `a job's payload is at most ${MAX_PAYLOAD_BYTES} bytes of JSON; this one is ${bytes}: store large inputs as objects and pass their keys`,
    );
  return {
    id: (o.jobId as string | undefined) ?? makeId(),
    queue: queue.id,
    payload: payload ?? null,
    priority: (o.priority as number | undefined) ?? 0,
    maxAttempts: (o.attempts as number | undefined) ?? queue.attempts,
    backoff: backoff ? { type: backoff.type, delayMs: backoff.delayMs } : queue.backoff,
    timeoutMs: (o.timeoutMs as number | undefined) ?? queue.timeoutMs,
    tags: (tags as string[] | undefined) ?? [],
    enqueuedBy,
    owner: owner ? { sub: owner.sub as string, tenant_id: (owner.tenant_id as string | undefined) ?? 'default' } : null,
    createdAt: now,
  };
}

/** Delay before retry number `retry` (1 for the first retry). */
export function backoffDelay(policy: BackoffPolicy, retry: number): number {
  return policy.type === 'fixed' ? policy.delayMs : policy.delayMs * 2 ** Math.max(0, retry - 1);
}

export const iso = (ms: number | null | undefined): string | null => (ms === null || ms === undefined ? null : new Date(ms).toISOString());

export function runOf(view: JobView): JobRun {
  return {
    id: view.id,
    queue: view.queue,
    payload: view.payload,
    attempt: view.attempts.made,
    maxAttempts: view.attempts.max,
    tags: view.tags,
    priority: view.priority,
  };
}

/** An error a handler threw, as stored on the job: its code when it has one. */
export function jobErrorOf(err: unknown): { code: string; message: string } {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' && /^[A-Z][A-Z0-9_]*$/.test(e.code) ? e.code : 'JOB_FAILED';
  const message = typeof e?.message === 'string' && e.message ? e.message.slice(0, 2000) : String(err).slice(0, 2000);
  return { code, message };
}
