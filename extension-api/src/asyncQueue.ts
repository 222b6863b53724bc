import { AsyncResource } from 'node:async_hooks';

/** Who drains a queue by push (`AsyncQueue.drainTo`). */
export interface QueueSink<T> {
  item(item: T): void;
  end(error?: unknown): void;
}

/**
 * A push-based async iterable: producers `push` and `end`, one consumer iterates. Handy for turning
 * events (socket frames, provider callbacks) into a stream that can cross the RPC.
 */
export class AsyncQueue<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = [];
  private waiter?: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void };
  private ended = false;
  private failure?: unknown;
  private readonly onReturn?: () => void;
  /** Set by `drainTo`: items go straight to the consumer instead of through `next()`. */
  private sink?: QueueSink<T>;

  /** `onReturn` runs when the consumer stops early (break, cancellation). */
  constructor(options: { onReturn?: () => void } = {}) {
    this.onReturn = options.onReturn;
  }

  get isEnded(): boolean {
    return this.ended;
  }

  push(item: T): void {
    if (this.ended) return;
    if (this.sink) this.sink.item(item);
    else if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve({ value: item, done: false });
    } else this.items.push(item);
  }

  end(error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = error;
    if (this.sink) this.sink.end(error);
    else if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      if (error !== undefined) w.reject(error);
      else w.resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<T>> {
    if (this.items.length > 0) return Promise.resolve({ value: this.items.shift()!, done: false });
    if (this.ended) return this.failure !== undefined ? Promise.reject(this.failure) : Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  return(): Promise<IteratorResult<T>> {
    if (!this.ended) {
      this.end();
      this.onReturn?.();
    }
    this.items.length = 0;
    return Promise.resolve({ value: undefined, done: true });
  }

  /**
   * Hands every item to `sink` as it is pushed (those already queued first), and the end likewise: for a
   * consumer in the same process that would only loop over `next()`, without a promise per item or a
   * suspended loop kept alive per queue. `next()` must not be used afterwards; `return()` still stops.
   */
  drainTo(sink: QueueSink<T>): void {
    if (this.sink || this.waiter) throw new Error('this queue already has a consumer');
    this.sink = sink;
    for (const item of this.items.splice(0)) sink.item(item);
    if (this.ended) sink.end(this.failure);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}

/**
 * Calls `onItem` for every item of `source`, in order, then `onEnd` once (with the error if it failed);
 * the returned function stops early. A queue of this process (`AsyncQueue`) hands items over as they
 * are pushed; any other iterable is pulled, waiting for what `onItem` returns before the next pull, so
 * a consumer that returns a promise (a socket write) keeps the producer's backpressure.
 */
export function forEachItem<T>(source: AsyncIterable<T>, onItem: (item: T) => void | Promise<void>, onEnd: (error?: unknown) => void): () => void {
  const iterator = source[Symbol.asyncIterator]();
  // Duck-typed: an extension may bring its own copy of this package.
  if (typeof (iterator as Partial<AsyncQueue<T>>).drainTo === 'function') {
    const drain = new Drain(iterator as AsyncQueue<T>, onItem, onEnd);
    return () => drain.stop();
  }
  let stopped = false;
  void (async () => {
    try {
      for (;;) {
        const next = await iterator.next();
        if (next.done || stopped) break;
        await onItem(next.value);
      }
    } catch (err) {
      if (!stopped) return endSafely(onEnd, err ?? new Error('the stream failed'));
    }
    if (!stopped) endSafely(onEnd);
  })();
  return () => {
    if (stopped) return;
    stopped = true;
    void iterator.return?.()?.catch(() => undefined);
  };
}

/**
 * `forEachItem` over a queue: one object per consumer rather than a handful of closures (a hub holds
 * two per connected device). Pushed items arrive in the producer's turn, so the consumer's code runs in
 * the consumer's own async context (an extension's, where the Aion API knows who calls), as after an await.
 */
class Drain<T> extends AsyncResource implements QueueSink<T> {
  private stopped = false;

  constructor(
    private readonly queue: AsyncQueue<T>,
    private readonly onItem: (item: T) => void | Promise<void>,
    private readonly onEnd: (error?: unknown) => void,
  ) {
    super('forEachItem');
    queue.drainTo(this);
  }

  item(item: T): void {
    this.runInAsyncScope(this.take, this, item);
  }

  end(error?: unknown): void {
    if (this.stopped) return;
    // Ended once: a consumer's late failure (a send that fails afterwards) does not end it again.
    this.stopped = true;
    this.runInAsyncScope(endSafely, undefined, this.onEnd, error);
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    void this.queue.return().catch(() => undefined);
  }

  private take(item: T): void {
    if (this.stopped) return;
    try {
      this.onItem(item)?.catch((err: unknown) => this.fail(err));
    } catch (err) {
      this.fail(err);
    }
  }

  /** The consumer's failure ends its consumption, not the producer's push. */
  private fail(err: unknown): void {
    if (this.stopped) return;
    this.stop();
    endSafely(this.onEnd, err ?? new Error('the consumer failed'));
  }
}

/** A consumer's end handler that throws must not unwind into the producer (a socket's close event): it is reported instead. */
function endSafely(onEnd: (error?: unknown) => void, error?: unknown): void {
  try {
    onEnd(error);
  } catch (err) {
    process.emitWarning(err instanceof Error ? err : new Error(String(err)), 'AsyncQueueConsumerWarning');
  }
}
