import {
  AbstractMessageReader,
  AbstractMessageWriter,
  createMessageConnection,
  type DataCallback,
  type Disposable,
  type Message,
  type MessageConnection,
} from 'vscode-jsonrpc';

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
