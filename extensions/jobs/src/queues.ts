import { AionError, ErrorCodes } from '@aion/extension-api';
import type { BackoffPolicy, WorkerType } from './api.js';
import { JobsErrorCodes } from './api.js';
import type { QueueSettings } from './model.js';

/** Queues every installation has, the extension that may own each, and their defaults. */
export const BUILTIN_QUEUES: Record<string, { owner: string; workerType: WorkerType; concurrency: number }> = {
  ai_jobs: { owner: 'aion.ai-docs', workerType: 'cpu', concurrency: 4 },
  preview_build: { owner: 'aion.preview', workerType: 'cpu', concurrency: 2 },
  cleanup: { owner: 'aion.jobs', workerType: 'cleanup', concurrency: 1 },
  gpu_ai_jobs: { owner: 'aion.ai-docs', workerType: 'gpu', concurrency: 1 },
};

const DEFAULTS = { concurrency: 4, maxSize: 10_000, attempts: 1, backoff: { type: 'exponential', delayMs: 1000 } as BackoffPolicy };

export interface QueueOverride {
  concurrency?: number;
  maxSize?: number;
  attempts?: number;
  backoff?: BackoffPolicy;
  timeoutMs?: number;
  workerType?: WorkerType;
}

interface QueueEntry {
  id: string;
  concurrency?: number;
  maxSize?: number;
  attempts?: number;
  backoff?: BackoffPolicy;
  timeoutMs?: number;
  gpu?: boolean;
  /** `resources.gpu`, as skills and providers declare it: a required GPU makes this a gpu queue. */
  resources?: { gpu?: { required?: boolean; vendor?: string; memoryMiB?: number } };
  workerType?: WorkerType;
  enqueue?: 'public' | 'privileged';
}

/**
 * The queues: built-in ones and those extensions contribute, each with one owner — the first extension
 * that contributes it (as the kernel decides whose implementation it calls). A built-in queue belongs
 * to the extension it is reserved for; another extension contributing it is refused.
 */
export class QueueCatalog {
  /** The queues by id: the built-in ones, then each extension's, with the operator's overrides applied. */
  readonly byId = new Map<string, QueueSettings>();
  readonly refused: string[] = [];

  constructor(contributions: Array<{ extensionId: string; entry: Record<string, unknown> }>, overrides: Record<string, QueueOverride>) {
    for (const [id, b] of Object.entries(BUILTIN_QUEUES)) {
      this.byId.set(id, this.settle({ id, workerType: b.workerType, concurrency: b.concurrency, attempts: 3 }, null, overrides[id]));
    }
    const seen = new Set<string>();
    for (const { extensionId, entry } of contributions) {
      const e = entry as unknown as QueueEntry;
      if (typeof e.id !== 'string') continue;
      if (seen.has(e.id)) {
        this.refused.push(`${extensionId} contributes queue ${e.id}, which another extension already owns; ignored`);
        continue;
      }
      seen.add(e.id);
      const reserved = BUILTIN_QUEUES[e.id];
      if (reserved && reserved.owner !== extensionId) {
        this.refused.push(`${extensionId} contributes the built-in queue ${e.id}, which only ${reserved.owner} may own; ignored`);
        continue;
      }
      const base = reserved ? { workerType: reserved.workerType, concurrency: reserved.concurrency, attempts: 3 } : {};
      this.byId.set(e.id, this.settle({ ...base, ...e }, extensionId, overrides[e.id]));
    }
  }

  private settle(e: QueueEntry, owner: string | null, o: QueueOverride | undefined): QueueSettings {
    const merged = { ...e, ...(o ?? {}) };
    return {
      id: e.id,
      owner,
      concurrency: merged.workerType === 'cleanup' ? 1 : (merged.concurrency ?? DEFAULTS.concurrency),
      maxSize: merged.maxSize ?? DEFAULTS.maxSize,
      attempts: merged.attempts ?? DEFAULTS.attempts,
      backoff: merged.backoff ?? DEFAULTS.backoff,
      timeoutMs: merged.timeoutMs ?? null,
      workerType: merged.workerType ?? (e.gpu || e.resources?.gpu?.required ? 'gpu' : 'cpu'),
      enqueue: e.enqueue ?? 'privileged',
      ...(e.resources?.gpu ? { gpu: { vendor: e.resources.gpu.vendor, memoryMiB: e.resources.gpu.memoryMiB } } : {}),
    };
  }

  all(): QueueSettings[] {
    return [...this.byId.values()];
  }

  require(id: string): QueueSettings {
    const q = this.byId.get(id);
    if (!q) throw new AionError(JobsErrorCodes.QUEUE_UNKNOWN, `there is no queue "${id}"; queues: ${[...this.byId.keys()].join(', ')}`, { status: 404 });
    return q;
  }

  /** Queues a worker of `type` serves: the named ones (checked), or every queue of that type. */
  select(type: WorkerType, named: string[] | undefined): QueueSettings[] {
    if (!named || named.length === 0) return this.all().filter((q) => q.workerType === type);
    return named.map((id) => {
      const q = this.require(id);
      if (q.workerType === 'gpu' && type !== 'gpu') throw new AionError(ErrorCodes.VALIDATION_FAILED, `queue ${id} needs a GPU: serve it with --type gpu`);
      return q;
    });
  }
}
