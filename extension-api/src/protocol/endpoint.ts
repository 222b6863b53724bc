import { CancellationToken, CancellationTokenSource, ResponseError, type MessageConnection, type NotificationType, type RequestType } from 'vscode-jsonrpc';
import { AionError, ErrorCodes, isAionError } from '../errors.js';
import { StreamBridge } from './streams.js';

/** JSON-RPC error code used for every AionError; the stable string code travels in `data.code`. */
export const AION_RPC_ERROR = -32050;

/** Turns anything thrown by a handler into the error that crosses the wire. */
export function toResponseError(err: unknown): ResponseError<unknown> {
  if (err instanceof ResponseError) return err;
  if (isAionError(err)) {
    return new ResponseError(AION_RPC_ERROR, err.message, { code: err.code, details: err.details, status: err.status, headers: err.headers });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new ResponseError(AION_RPC_ERROR, message, { code: ErrorCodes.INTERNAL });
}

/** A JSON-RPC error object as it crosses the wire. */
export interface WireError {
  code: number;
  message: string;
  data?: unknown;
}

/** A JSON-RPC error from the wire as an AionError: its stable code is `data.code`; -32800 is a cancellation. */
export function fromWireError(error: WireError): AionError {
  if (error.code === -32800) return new AionError(ErrorCodes.CANCELLED, 'the request was cancelled');
  const data = (error.data ?? {}) as { code?: unknown; details?: unknown; status?: number; headers?: Record<string, string> };
  return new AionError(typeof data.code === 'string' ? data.code : ErrorCodes.INTERNAL, String(error.message), {
    details: data.details,
    status: data.status,
    headers: data.headers,
  });
}

/** Turns what came back over the wire into an AionError with its stable code. */
export function fromRpcError(err: unknown, closedError?: AionError): AionError {
  if (isAionError(err)) return err;
  if (err instanceof ResponseError) return fromWireError(err);
  if (closedError) return closedError;
  return new AionError(ErrorCodes.INTERNAL, err instanceof Error ? err.message : String(err));
}

type AnyRequest = RequestType<any, any, any>;
type AnyNotification = NotificationType<any>;

/**
 * One side of a connection: typed requests and notifications, streams inside any value,
 * cancellation that fails the caller at once, and stable error codes.
 */
export class RpcEndpoint {
  readonly streams: StreamBridge;
  private closedError?: AionError;
  private readonly pendingRejects = new Set<(e: AionError) => void>();

  constructor(readonly connection: MessageConnection) {
    this.streams = new StreamBridge(connection);
  }

  get isClosed(): boolean {
    return this.closedError !== undefined;
  }

  /**
   * The handler's token is cancelled when the caller cancels the request and also, once it has
   * answered, when the receiver cancels a stream of its answer: work feeding a stream stops at once.
   */
  onRequest<P, R>(type: RequestType<P, R, any>, handler: (params: P, token: CancellationToken) => R | Promise<R>): void {
    this.connection.onRequest(type as AnyRequest, async (params: P, token: CancellationToken) => {
      const source = new CancellationTokenSource();
      const link = token.onCancellationRequested(() => source.cancel());
      try {
        const result = await handler(this.streams.deserialize(params) as P, source.token);
        return this.streams.serialize(result, () => source.cancel()) as R;
      } catch (err) {
        throw toResponseError(err);
      } finally {
        link.dispose();
      }
    });
  }

  onNotification<P>(type: NotificationType<P>, handler: (params: P) => void): void {
    this.connection.onNotification(type as AnyNotification, (params: P) => handler(this.streams.deserialize(params) as P));
  }

  async sendRequest<P, R>(type: RequestType<P, R, any>, params: P, token?: CancellationToken): Promise<R> {
    if (this.closedError) throw this.closedError;
    if (token?.isCancellationRequested) throw new AionError(ErrorCodes.CANCELLED, 'the request was cancelled');
    let reject!: (e: AionError) => void;
    const failed = new Promise<never>((_, r) => (reject = r));
    this.pendingRejects.add(reject);
    const cancelListener = token?.onCancellationRequested(() => reject(new AionError(ErrorCodes.CANCELLED, 'the request was cancelled')));
    try {
      const sent = this.connection.sendRequest(type as AnyRequest, this.streams.serialize(params), token ?? CancellationToken.None);
      const result = await Promise.race([sent, failed]);
      return this.streams.deserialize(result) as R;
    } catch (err) {
      throw fromRpcError(err, this.closedError);
    } finally {
      cancelListener?.dispose();
      this.pendingRejects.delete(reject);
    }
  }

  /** Fire and forget: after the connection is gone (disposed by the other side too) a notification is dropped, never thrown. */
  sendNotification<P>(type: NotificationType<P>, params: P): void {
    if (this.closedError) return;
    try {
      void this.connection.sendNotification(type as AnyNotification, this.streams.serialize(params)).catch(() => undefined);
    } catch {
      // vscode-jsonrpc throws synchronously once disposed: a late log line from a timer must not crash a host.
    }
  }

  /** Fails every pending request and open stream with `error`, then disposes the connection. */
  close(error: AionError): void {
    if (this.closedError) return;
    this.closedError = error;
    for (const reject of this.pendingRejects) reject(error);
    this.pendingRejects.clear();
    this.streams.close(error);
    try {
      this.connection.dispose();
    } catch {
      // Already gone.
    }
  }
}
