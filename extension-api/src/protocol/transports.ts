import {
  AbstractMessageReader,
  AbstractMessageWriter,
  createMessageConnection,
  type DataCallback,
  type Disposable,
  type Message,
  type MessageConnection,
} from 'vscode-jsonrpc';

// The transports every host kind speaks: frames over a socket (`remote`), batched Node IPC (`shared`,
// `dedicated`) and an in-memory pair (`kernel`).

/** Default cap on one frame of the `remote` transport. */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;

/**
 * Whatever carries text frames between a hub and a device (a WebSocket on either side). The
 * transport knows nothing else about it, so hub and spoke share the same JSON-RPC code.
 */
export interface FrameChannel {
  send(frame: string): void;
  /** Closes the channel; `code`/`reason` travel as a WebSocket close frame when there is one. */
  close(code?: number, reason?: string): void;
}

/** A frame that broke the transport's rules: too large, not JSON, not JSON-RPC. */
export class FrameError extends Error {
  constructor(
    readonly code: 'FRAME_TOO_LARGE' | 'MALFORMED_FRAME',
    message: string,
  ) {
    super(message);
  }
}

function isJsonRpc(value: unknown): value is Message {
  return typeof value === 'object' && value !== null && (value as { jsonrpc?: unknown }).jsonrpc === '2.0';
}

/** Frames in: each text frame is one JSON-RPC message, checked against the cap before it is parsed. */
export class FrameReader extends AbstractMessageReader {
  private callback?: DataCallback;
  private readonly backlog: Message[] = [];

  constructor(
    private readonly maxFrameBytes: number,
    private readonly onViolation: (error: FrameError) => void,
  ) {
    super();
  }

  listen(callback: DataCallback): Disposable {
    this.callback = callback;
    for (const message of this.backlog.splice(0)) callback(message);
    return { dispose: () => (this.callback = undefined) };
  }

  /** Feeds one received frame in; a bad frame is reported and dropped, the connection stays usable. */
  receive(frame: string): void {
    if (Buffer.byteLength(frame) > this.maxFrameBytes)
      return this.onViolation(new FrameError('FRAME_TOO_LARGE', `a frame of ${Buffer.byteLength(frame)} bytes exceeds the ${this.maxFrameBytes}-byte limit`));
    let message: unknown;
    try {
      message = JSON.parse(frame);
    } catch {
      return this.onViolation(new FrameError('MALFORMED_FRAME', 'a frame is not valid JSON'));
    }
    if (!isJsonRpc(message)) return this.onViolation(new FrameError('MALFORMED_FRAME', 'a frame is not a JSON-RPC 2.0 message'));
    if (this.callback) this.callback(message);
    else this.backlog.push(message);
  }

  /** An answer made on this side (a request refused before sending); it skips the size check. */
  deliverLocal(frame: string): void {
    const message = JSON.parse(frame) as Message;
    if (this.callback) this.callback(message);
    else this.backlog.push(message);
  }

  closed(): void {
    this.fireClose();
  }
}

/** Frames out: a message over the cap is never sent; the sender's request fails with FRAME_TOO_LARGE instead. */
export class FrameWriter extends AbstractMessageWriter {
  constructor(
    private readonly channel: FrameChannel,
    private readonly maxFrameBytes: number,
    private readonly onOversize: (message: Message, bytes: number) => void,
  ) {
    super();
  }

  write(message: Message): Promise<void> {
    const frame = JSON.stringify(message);
    const bytes = Buffer.byteLength(frame);
    if (bytes > this.maxFrameBytes) {
      this.onOversize(message, bytes);
      return Promise.resolve();
    }
    try {
      this.channel.send(frame);
    } catch (err) {
      this.fireError(err as Error, message, 1);
    }
    return Promise.resolve();
  }

  end(): void {}
}

export interface FrameConnection {
  connection: MessageConnection;
  reader: FrameReader;
}

/**
 * A vscode-jsonrpc connection over a frame channel. An oversized answer is replaced by an error
 * answer with FRAME_TOO_LARGE, so the request fails and nothing else on the connection does.
 */
export function createFrameConnection(channel: FrameChannel, options: { maxFrameBytes?: number; onViolation: (error: FrameError) => void }): FrameConnection {
  const max = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  const reader = new FrameReader(max, options.onViolation);
  let writer!: FrameWriter;
  writer = new FrameWriter(channel, max, (message, bytes) => {
    const id = (message as { id?: unknown }).id;
    const isResponse = id !== undefined && !('method' in message);
    if (isResponse) {
      // The answer is too large for a frame: answer the request with a typed error instead.
      void writer.write({
        jsonrpc: '2.0',
        id,
        error: { code: -32050, message: `the answer of ${bytes} bytes exceeds the ${max}-byte frame limit`, data: { code: 'FRAME_TOO_LARGE' } },
      } as Message);
    } else if (id !== undefined) {
      // A request too large to send: fail it locally, as if the peer had refused it.
      // Later, so the connection has registered the request it is answering.
      const answer = JSON.stringify({
        jsonrpc: '2.0',
        id,
        error: { code: -32050, message: `the request of ${bytes} bytes exceeds the ${max}-byte frame limit`, data: { code: 'FRAME_TOO_LARGE' } },
      });
      setImmediate(() => reader.deliverLocal(answer));
    }
  });
  return { connection: createMessageConnection(reader, writer), reader };
}

class InMemoryReader extends AbstractMessageReader {
  private callback?: DataCallback;
  private readonly backlog: Message[] = [];

  listen(callback: DataCallback): Disposable {
    this.callback = callback;
    for (const message of this.backlog.splice(0)) callback(message);
    return { dispose: () => (this.callback = undefined) };
  }

  deliver(message: Message): void {
    if (this.callback) this.callback(message);
    else this.backlog.push(message);
  }

  close(): void {
    this.fireClose();
  }
}

class InMemoryWriter extends AbstractMessageWriter {
  constructor(private readonly peer: InMemoryReader) {
    super();
  }

  write(message: Message): Promise<void> {
    // Deliver on a microtask so both sides see the same ordering as a real transport.
    queueMicrotask(() => this.peer.deliver(message));
    return Promise.resolve();
  }

  end(): void {
    this.peer.close();
  }
}

/** What Node gives both ends of an IPC channel: a child process, or `process` inside the child. */
interface IpcEnd {
  send?: (message: any, sendHandle?: undefined, options?: undefined, callback?: (error: Error | null) => void) => boolean;
  on(event: string, listener: (...args: any[]) => void): unknown;
  off(event: string, listener: (...args: any[]) => void): unknown;
}

/** Several messages travelling as one IPC message. */
interface Batch {
  $batch: Message[];
}

/**
 * Node IPC, sending the messages written in one turn of the event loop as one IPC message: each
 * send is a system call that wakes the other process, so a burst (a response and the chunks of its
 * stream) costs one.
 */
export class BatchingIpcWriter extends AbstractMessageWriter {
  private queue: Message[] = [];
  private scheduled = false;
  private errorCount = 0;

  constructor(private readonly end_: IpcEnd) {
    super();
    end_.on('error', (error: Error) => this.fireError(error));
    end_.on('close', () => this.fireClose());
  }

  write(message: Message): Promise<void> {
    this.queue.push(message);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    return Promise.resolve();
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0 || typeof this.end_.send !== 'function') return;
    const payload: Message | Batch = batch.length === 1 ? batch[0]! : { $batch: batch };
    try {
      this.end_.send(payload, undefined, undefined, (error) => {
        if (error) this.fireError(error, batch[0], ++this.errorCount);
        else this.errorCount = 0;
      });
    } catch (error) {
      this.fireError(error as Error, batch[0], ++this.errorCount);
    }
  }

  end(): void {
    this.flush();
  }
}

/** Reads what a BatchingIpcWriter sends: single messages and batches. */
export class BatchingIpcReader extends AbstractMessageReader {
  constructor(private readonly end_: IpcEnd) {
    super();
    end_.on('error', (error: Error) => this.fireError(error));
    end_.on('close', () => this.fireClose());
  }

  listen(callback: DataCallback): Disposable {
    const onMessage = (message: Message | Batch) => {
      if (Array.isArray((message as Batch).$batch)) for (const m of (message as Batch).$batch) callback(m);
      else callback(message as Message);
    };
    this.end_.on('message', onMessage);
    return { dispose: () => void this.end_.off('message', onMessage) };
  }
}

/** Two connected MessageConnections in one process: the `kernel` host's transport, no serialization. */
export function createInMemoryConnectionPair(): [MessageConnection, MessageConnection] {
  const aReader = new InMemoryReader();
  const bReader = new InMemoryReader();
  const a = createMessageConnection(aReader, new InMemoryWriter(bReader));
  const b = createMessageConnection(bReader, new InMemoryWriter(aReader));
  return [a, b];
}
