import {
  AbstractMessageReader,
  AbstractMessageWriter,
  createMessageConnection,
  type DataCallback,
  type Disposable,
  type Message,
  type MessageConnection,
} from 'vscode-jsonrpc';

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
