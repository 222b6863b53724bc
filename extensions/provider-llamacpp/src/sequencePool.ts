import type { CancellationToken } from '@aion/extension-api';
import { ProviderFailure } from '@aion/provider-kit';

interface Waiter<T> {
  resolve(item: T): void;
  reject(err: unknown): void;
}

/**
 * The context sequences of one loaded model. A chat holds one for its whole generation; the rest
 * wait in arrival order, at most `maxQueued` of them.
 */
export class SequencePool<T> {
  private readonly free: T[];
  private readonly total: number;
  private readonly waiters: Waiter<T>[] = [];

  constructor(
    items: T[],
    private readonly maxQueued: number,
  ) {
    this.free = [...items];
    this.total = items.length;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  get busy(): number {
    return this.total - this.free.length;
  }

  /** Resolves with a free sequence; rejects with `CANCELLED`, `PROVIDER_TIMEOUT` or, when the queue is full, `PROVIDER_UNAVAILABLE`. */
  acquire(token: CancellationToken | undefined, timeoutMs: number, modelId: string): Promise<T> {
    if (token?.isCancellationRequested) return Promise.reject(new ProviderFailure('CANCELLED', 'cancelled before the model was free'));
    const item = this.free.shift();
    if (item !== undefined) return Promise.resolve(item);
    if (this.waiters.length >= this.maxQueued) {
      return Promise.reject(
        new ProviderFailure(
          'PROVIDER_UNAVAILABLE',
          `the local model ${modelId} is busy: ${this.busy} chat(s) running and ${this.waiters.length} queued (maxQueued); try again shortly`,
          { retryable: true, status: 503, retryAfterMs: 1000 },
        ),
      );
    }
    return new Promise<T>((resolve, reject) => {
      const leave = () => {
        clearTimeout(timer);
        cancelled?.dispose();
        const index = this.waiters.indexOf(waiter);
        if (index >= 0) this.waiters.splice(index, 1);
      };
      const waiter: Waiter<T> = {
        resolve: (next) => {
          leave();
          resolve(next);
        },
        reject: (err) => {
          leave();
          reject(err);
        },
      };
      const timer = setTimeout(
        () => waiter.reject(new ProviderFailure('PROVIDER_TIMEOUT', `waited ${timeoutMs} ms in the queue of the local model ${modelId}`, { retryable: true })),
        timeoutMs,
      );
      const cancelled = token?.onCancellationRequested(() => waiter.reject(new ProviderFailure('CANCELLED', 'cancelled while queued')));
      this.waiters.push(waiter);
    });
  }

  release(item: T): void {
    const next = this.waiters[0];
    if (next) next.resolve(item);
    else this.free.push(item);
  }

  /** Fails every waiting chat, e.g. when the model is unloaded. */
  rejectAll(err: unknown): void {
    for (const waiter of [...this.waiters]) waiter.reject(err);
  }
}
