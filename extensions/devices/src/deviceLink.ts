import { AionError, type CancellationToken } from '@aion/extension-api';
import { AION_RPC_ERROR, fromWireError, toResponseError, type WireError } from '@aion/extension-api/protocol';
import { DeviceErrorCodes, type Method } from './contract.js';

interface Message {
  jsonrpc: '2.0';
  id?: number | string | null;
  method?: string;
  params?: any;
  result?: unknown;
  error?: WireError;
}

const METHOD_NOT_FOUND = -32601;
const CANCEL = '$/cancelRequest';

/** A frame the link refused; the connection stays usable. */
export interface LinkViolation {
  code: typeof DeviceErrorCodes.FRAME_TOO_LARGE | typeof DeviceErrorCodes.MALFORMED_FRAME;
  message: string;
}

/** What a link reaches on the hub's side: where its frames go and who hears of a refused frame. */
export interface LinkPeer {
  send(frame: string): void;
  violation(violation: LinkViolation): void;
}

/**
 * What answers the requests and notifications devices send: one set per hub, shared by every link (a
 * handler gets the link's peer, the device's connection), so a connected device adds no closures here.
 */
export class LinkHandlers<Peer extends LinkPeer = LinkPeer> {
  readonly requests = new Map<string, (params: any, peer: Peer) => unknown>();
  readonly notifications = new Map<string, (params: any, peer: Peer) => void>();

  onRequest<P, R>(type: Method<P, R>, handler: (params: P, peer: Peer) => R | Promise<R>): this {
    this.requests.set(type.method, handler);
    return this;
  }

  onNotification<P>(type: Method<P>, handler: (params: P, peer: Peer) => void): this {
    this.notifications.set(type.method, handler);
    return this;
  }
}

/**
 * The hub's end of one device's JSON-RPC 2.0 link, one message per text frame under a size cap.
 * Hand-written on purpose, where the rest of Aion uses vscode-jsonrpc: a hub holds thousands of device
 * links, and a vscode-jsonrpc connection with its stream bridge cost about 12 KB of heap per device
 * (60-odd closures, ten emitters) and a macrotask per message; this is one object, a map of the calls
 * in flight made when the first one is, and the hub's shared handlers. The wire is the same
 * (`$/cancelRequest`, error `-32050` with `data.code`), so devices see no difference.
 */
export class DeviceLink<Peer extends LinkPeer = LinkPeer> {
  private nextId = 1;
  private closedError?: AionError;
  private pending?: Map<number, { resolve(value: unknown): void; reject(error: AionError): void }>;

  constructor(
    private readonly peer: Peer,
    private readonly maxFrameBytes: number,
    private readonly handlers: LinkHandlers<Peer> = new LinkHandlers(),
  ) {}

  get isClosed(): boolean {
    return this.closedError !== undefined;
  }

  /** Resolves with the device's result; rejects with its error as an AionError, or with the reason the link closed. */
  sendRequest<P, R>(type: Method<P, R>, params: P, token?: CancellationToken): Promise<R> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    const frame = JSON.stringify({ jsonrpc: '2.0', id, method: type.method, params });
    if (Buffer.byteLength(frame) > this.maxFrameBytes) {
      return Promise.reject(
        new AionError(DeviceErrorCodes.FRAME_TOO_LARGE, `the request of ${Buffer.byteLength(frame)} bytes exceeds the ${this.maxFrameBytes}-byte frame limit`),
      );
    }
    return new Promise<R>((resolve, reject) => {
      // Cancelling tells the device and keeps waiting: it answers, or the caller's own deadline ends the wait.
      const listener = token?.onCancellationRequested(() => this.sendNotification({ method: CANCEL }, { id }));
      (this.pending ??= new Map()).set(id, {
        resolve: (value: unknown) => (listener?.dispose(), resolve(value as R)),
        reject: (error: AionError) => (listener?.dispose(), reject(error)),
      });
      this.peer.send(frame);
    });
  }

  /** Fire and forget; dropped once the link is closed or when over the cap. */
  sendNotification<P>(type: Method<P>, params: P): void {
    if (this.closedError) return;
    const frame = JSON.stringify({ jsonrpc: '2.0', method: type.method, params });
    if (Buffer.byteLength(frame) <= this.maxFrameBytes) this.peer.send(frame);
  }

  /** One frame from the device: checked against the cap before parsing; a bad one is reported and dropped. */
  receive(frame: string): void {
    if (this.closedError) return;
    const bytes = Buffer.byteLength(frame);
    if (bytes > this.maxFrameBytes)
      return this.peer.violation({ code: DeviceErrorCodes.FRAME_TOO_LARGE, message: `a frame of ${bytes} bytes exceeds the ${this.maxFrameBytes}-byte limit` });
    let message: Message;
    try {
      message = JSON.parse(frame);
    } catch {
      return this.peer.violation({ code: DeviceErrorCodes.MALFORMED_FRAME, message: 'a frame is not valid JSON' });
    }
    if (message === null || typeof message !== 'object' || message.jsonrpc !== '2.0')
      return this.peer.violation({ code: DeviceErrorCodes.MALFORMED_FRAME, message: 'a frame is not a JSON-RPC 2.0 message' });
    if (typeof message.method === 'string') {
      if (message.id === undefined || message.id === null) return this.notification(message.method, message.params);
      return void this.request(message.id, message.method, message.params);
    }
    if (typeof message.id !== 'number') return this.peer.violation({ code: DeviceErrorCodes.MALFORMED_FRAME, message: 'an answer to no request of this hub' });
    const waiting = this.pending?.get(message.id);
    if (!waiting) return;
    this.pending!.delete(message.id);
    if (message.error) waiting.reject(fromWireError(message.error));
    else waiting.resolve(message.result);
  }

  /** Fails every pending request with `reason`; nothing is sent or received afterwards. */
  close(reason: AionError): void {
    if (this.closedError) return;
    this.closedError = reason;
    for (const waiting of this.pending?.values() ?? []) waiting.reject(reason);
    this.pending?.clear();
  }

  private notification(method: string, params: unknown): void {
    const handler = this.handlers.notifications.get(method);
    if (!handler) return;
    try {
      handler(params, this.peer);
    } catch {
      // A notification has nobody to answer: a handler's failure stays on this side.
    }
  }

  private async request(id: number | string, method: string, params: unknown): Promise<void> {
    const handler = this.handlers.requests.get(method);
    if (!handler) return this.answer({ jsonrpc: '2.0', id, error: { code: METHOD_NOT_FOUND, message: `the hub does not answer ${method}` } });
    try {
      this.answer({ jsonrpc: '2.0', id, result: (await handler(params, this.peer)) ?? null });
    } catch (err) {
      // The encoding every Aion RPC uses: -32050 with the stable code in `data.code`.
      const e = toResponseError(err);
      this.answer({ jsonrpc: '2.0', id, error: { code: e.code, message: e.message, data: e.data } });
    }
  }

  /** An answer over the cap becomes an error answer, so that request fails and nothing else does. */
  private answer(message: Message): void {
    if (this.closedError) return;
    const frame = JSON.stringify(message);
    const bytes = Buffer.byteLength(frame);
    if (bytes <= this.maxFrameBytes) return this.peer.send(frame);
    this.peer.send(
      JSON.stringify({
        jsonrpc: '2.0',
        id: message.id,
        error: {
          code: AION_RPC_ERROR,
          message: `the answer of ${bytes} bytes exceeds the ${this.maxFrameBytes}-byte frame limit`,
          data: { code: 'FRAME_TOO_LARGE' },
        },
      }),
    );
  }
}
