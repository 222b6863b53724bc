import { type MessageConnection, NotificationType } from 'vscode-jsonrpc';
import { AionError, ErrorCodes, isAionError } from '../errors.js';

/** Stream notifications flow both ways on every connection, whatever capability returned the stream. */
export const StreamProtocol = {
  chunk: new NotificationType<{ streamId: string; data: unknown }>('$streamChunk'),
  end: new NotificationType<{ streamId: string }>('$streamEnd'),
  error: new NotificationType<{ streamId: string; error: { code: string; message: string; details?: unknown } }>('$streamError'),
  credit: new NotificationType<{ streamId: string; credit: number }>('$streamCredit'),
  cancel: new NotificationType<{ streamId: string }>('$streamCancel'),
};

/** How a stream crosses the wire: its values travel as chunk notifications under this id. */
export interface StreamMarker {
  $aionStream: string;
}

export function isStreamMarker(value: unknown): value is StreamMarker {
  return typeof value === 'object' && value !== null && typeof (value as StreamMarker).$aionStream === 'string';
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function';
}

/**
 * `value` with every async iterable inside it (in arrays and plain objects, at any depth) replaced by
 * `replace(stream)`; what holds no stream is returned as is, and only the containers on a path to one are copied.
 */
export function mapStreams(value: unknown, replace: (stream: AsyncIterable<unknown>) => unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (isAsyncIterable(value)) return replace(value);
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      const next = mapStreams(item, replace);
      if (next !== item) (copy ??= value.slice())[i] = next;
    }
    return copy ?? value;
  }
  if (Object.getPrototypeOf(value) !== Object.prototype) return value;
  let copy: Record<string, unknown> | undefined;
  for (const key in value) {
    const item = (value as Record<string, unknown>)[key];
    if (typeof item !== 'object' || item === null) continue;
    const next = mapStreams(item, replace);
    if (next !== item) (copy ??= { ...(value as Record<string, unknown>) })[key] = next;
  }
  return copy ?? value;
}

/** Chunks a receiver accepts before it must grant more credit. */
const WINDOW = 32;
/** A stream whose receiver never grants credit is abandoned after this long. */
const CREDIT_WAIT_MS = 60_000;

type StreamEvent = { kind: 'chunk'; data: unknown } | { kind: 'end' } | { kind: 'error'; error: AionError };

interface Outgoing {
  iterator: AsyncIterator<unknown>;
  credit: number;
  wake?: () => void;
  cancelled: boolean;
  stopped?: boolean;
  onCancel?: () => void;
}

class Incoming implements AsyncIterableIterator<unknown> {
  private readonly queue: unknown[] = [];
  private waiting?: { resolve: (r: IteratorResult<unknown>) => void; reject: (e: unknown) => void };
  private done = false;
  private failure?: unknown;
  private consumedSinceGrant = 0;

  constructor(
    private readonly id: string,
    private readonly bridge: StreamBridge,
  ) {}

  push(value: unknown): void {
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = undefined;
      this.consumed();
      w.resolve({ value, done: false });
    } else this.queue.push(value);
  }

  finish(error?: unknown): void {
    if (this.done) return;
    this.done = true;
    this.failure = error;
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = undefined;
      if (error) w.reject(error);
      else w.resolve({ value: undefined, done: true });
    }
  }

  private consumed(): void {
    if (++this.consumedSinceGrant >= WINDOW / 2) {
      this.bridge.grant(this.id, this.consumedSinceGrant);
      this.consumedSinceGrant = 0;
    }
  }

  next(): Promise<IteratorResult<unknown>> {
    if (this.queue.length > 0) {
      this.consumed();
      return Promise.resolve({ value: this.queue.shift(), done: false });
    }
    if (this.done) return this.failure ? Promise.reject(this.failure) : Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
  }

  return(): Promise<IteratorResult<unknown>> {
    if (!this.done) {
      this.bridge.cancelIncoming(this.id);
      this.finish();
    }
    this.queue.length = 0;
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<unknown> {
    return this;
  }
}

/**
 * Carries async iterables across one connection with credit-based backpressure: a sender starts
 * with WINDOW chunks of credit (no round trip before the first chunk) and sends only as many as
 * its receiver has granted since; the receiver grants more as it consumes.
 */
export class StreamBridge {
  private readonly outgoing = new Map<string, Outgoing>();
  private readonly incoming = new Map<string, Incoming>();
  /** Events of streams whose marker has not been read yet: a sender starts with credit, so they may come first. */
  private readonly early = new Map<string, { at: number; events: StreamEvent[] }>();
  /** Streams this side cancelled; what their sender had already sent is dropped. */
  private readonly dropped = new Set<string>();
  private counter = 0;
  private closedWith?: AionError;

  constructor(private readonly connection: MessageConnection) {
    connection.onNotification(StreamProtocol.chunk, ({ streamId, data }) => this.deliver(streamId, { kind: 'chunk', data }));
    connection.onNotification(StreamProtocol.end, ({ streamId }) => this.deliver(streamId, { kind: 'end' }));
    connection.onNotification(StreamProtocol.error, ({ streamId, error }) =>
      this.deliver(streamId, { kind: 'error', error: new AionError(error.code, error.message, { details: error.details }) }),
    );
    connection.onNotification(StreamProtocol.credit, ({ streamId, credit }) => {
      const out = this.outgoing.get(streamId);
      if (!out) return;
      out.credit += credit;
      out.wake?.();
    });
    connection.onNotification(StreamProtocol.cancel, ({ streamId }) => {
      const out = this.outgoing.get(streamId);
      if (out) this.stopOutgoing(out);
    });
  }

  /**
   * The receiver went away: stop the source now rather than after its pending `next()` settles, so a
   * relayed stream passes the cancel on at once and the producer's `onCancel` aborts its work.
   */
  private stopOutgoing(out: Outgoing): void {
    out.cancelled = true;
    out.wake?.();
    if (out.stopped) return;
    out.stopped = true;
    try {
      out.onCancel?.();
    } catch {
      // A failing callback must not keep the stream open.
    }
    void Promise.resolve()
      .then(() => out.iterator.return?.())
      .catch(() => undefined);
  }

  /**
   * Replaces every async iterable inside `value` with a marker and starts sending it. `onCancel` runs
   * when the receiver cancels one of them or the connection closes before it ends.
   */
  serialize(value: unknown, onCancel?: () => void): unknown {
    return mapStreams(value, (stream) => this.send(stream, onCancel));
  }

  /** Replaces every stream marker inside `value` with an async iterable that receives it. */
  deserialize(value: unknown): unknown {
    if (typeof value !== 'object' || value === null) return value;
    if (isStreamMarker(value)) return this.receive(value.$aionStream);
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) if (typeof value[i] === 'object') value[i] = this.deserialize(value[i]);
      return value;
    }
    // As in serialize: class instances (a Buffer through the in-memory `kernel` transport) pass untouched.
    if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null) return value;
    for (const key in value) {
      const item = (value as Record<string, unknown>)[key];
      if (typeof item === 'object' && item !== null) (value as Record<string, unknown>)[key] = this.deserialize(item);
    }
    return value;
  }

  private deliver(streamId: string, event: StreamEvent): void {
    const stream = this.incoming.get(streamId);
    if (stream) {
      this.apply(stream, streamId, event);
      return;
    }
    if (this.dropped.has(streamId)) {
      if (event.kind !== 'chunk') this.dropped.delete(streamId);
      return;
    }
    const now = Date.now();
    for (const [id, held] of this.early) if (now - held.at > CREDIT_WAIT_MS) this.early.delete(id);
    let held = this.early.get(streamId);
    if (!held) this.early.set(streamId, (held = { at: now, events: [] }));
    held.events.push(event);
  }

  private apply(stream: Incoming, streamId: string, event: StreamEvent): void {
    if (event.kind === 'chunk') stream.push(event.data);
    else {
      stream.finish(event.kind === 'error' ? event.error : undefined);
      this.incoming.delete(streamId);
    }
  }

  grant(streamId: string, credit: number): void {
    if (!this.closedWith) void this.connection.sendNotification(StreamProtocol.credit, { streamId, credit }).catch(() => undefined);
  }

  cancelIncoming(streamId: string): void {
    this.incoming.delete(streamId);
    this.dropped.add(streamId);
    if (this.dropped.size > 1024) this.dropped.delete(this.dropped.values().next().value!);
    if (!this.closedWith) void this.connection.sendNotification(StreamProtocol.cancel, { streamId }).catch(() => undefined);
  }

  /** Ends every open stream: incoming ones fail with `error`, outgoing ones stop. */
  close(error: AionError): void {
    this.closedWith = error;
    for (const stream of this.incoming.values()) stream.finish(error);
    this.incoming.clear();
    this.early.clear();
    for (const out of this.outgoing.values()) this.stopOutgoing(out);
  }

  get openStreams(): number {
    return this.incoming.size + this.outgoing.size;
  }

  /** The receiving end of a marker. Its sender already holds WINDOW credit, so nothing is granted yet. */
  private receive(streamId: string): AsyncIterable<unknown> {
    const stream = new Incoming(streamId, this);
    if (this.closedWith) {
      stream.finish(this.closedWith);
      return stream;
    }
    this.incoming.set(streamId, stream);
    const held = this.early.get(streamId);
    if (held) {
      this.early.delete(streamId);
      for (const event of held.events) this.apply(stream, streamId, event);
    }
    return stream;
  }

  private send(iterable: AsyncIterable<unknown>, onCancel?: () => void): StreamMarker {
    const streamId = `s${++this.counter}`;
    const out: Outgoing = { iterator: iterable[Symbol.asyncIterator](), credit: WINDOW, cancelled: false, onCancel };
    this.outgoing.set(streamId, out);
    void this.pump(streamId, out);
    return { $aionStream: streamId };
  }

  private async pump(streamId: string, out: Outgoing): Promise<void> {
    const c = this.connection;
    try {
      for (;;) {
        if (out.credit <= 0 && !out.cancelled) {
          const granted = await new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => resolve(false), CREDIT_WAIT_MS);
            out.wake = () => {
              clearTimeout(timer);
              resolve(true);
            };
          });
          out.wake = undefined;
          if (!granted) out.cancelled = true;
          if (out.credit <= 0 && !out.cancelled) continue;
        }
        if (out.cancelled) {
          if (!out.stopped) await out.iterator.return?.();
          return;
        }
        const next = await out.iterator.next();
        if (out.cancelled) {
          if (!out.stopped) await out.iterator.return?.();
          return;
        }
        if (next.done) {
          await c.sendNotification(StreamProtocol.end, { streamId });
          return;
        }
        out.credit--;
        await c.sendNotification(StreamProtocol.chunk, { streamId, data: next.value });
      }
    } catch (err) {
      if (this.closedWith) return;
      const error = isAionError(err)
        ? { code: err.code, message: err.message, details: err.details }
        : { code: ErrorCodes.STREAM_ERROR, message: err instanceof Error ? err.message : String(err) };
      await c.sendNotification(StreamProtocol.error, { streamId, error }).catch(() => undefined);
    } finally {
      this.outgoing.delete(streamId);
    }
  }
}
