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

/** Two connected MessageConnections in one process: the `kernel` host's transport, no serialization. */
export function createInMemoryConnectionPair(): [MessageConnection, MessageConnection] {
  const aReader = new InMemoryReader();
  const bReader = new InMemoryReader();
  const a = createMessageConnection(aReader, new InMemoryWriter(bReader));
  const b = createMessageConnection(bReader, new InMemoryWriter(aReader));
  return [a, b];
}
