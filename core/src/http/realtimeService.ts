import { injectable } from 'inversify';
import type { Server as SocketServer, Socket } from 'socket.io';
import { ErrorCodes, isAionError, type ErrorPayload, type Principal } from '@aion/extension-api';
import type { ServerConfig } from '../config/configuration.js';
import type { Logger } from '../logging.js';
import type { AuthenticationRequest, AuthResult } from './authentication.js';
import { MessageThrottle } from './messageThrottle.js';

/** What socket.io clients are checked against; the edge supplies it when it attaches the server. */
export interface RealtimeAccess {
  authenticate(request: AuthenticationRequest): Promise<AuthResult>;
  /** Whether an extension answers `http.authenticate`; without one, handshakes are anonymous. */
  authenticationInstalled(): boolean;
  authorizeRoom(principal: Principal | undefined, room: string): Promise<unknown>;
  clientAddress(peer: string | undefined, forwardedFor: string | string[] | undefined): string;
  limits: ServerConfig['realtime'];
  logger: Logger;
}

/** The event a socket.io client receives when the server refuses one of its events. */
export const REALTIME_ERROR_EVENT = 'aion:error';

/** A handshake refusal that socket.io clients see as `connect_error` with `data.code`. */
function refusal(payload: ErrorPayload): Error & { data: ErrorPayload } {
  return Object.assign(new Error(payload.message), { data: { code: payload.code, message: payload.message } });
}

/** The acknowledgement callback a client asked for, if any: it is the last argument and a function. */
function ackOf(args: unknown[]): (reply: unknown) => void {
  const last = args[args.length - 1];
  return typeof last === 'function' ? (last as (reply: unknown) => void) : () => undefined;
}

/** socket.io: authenticated handshakes, rooms that `realtime.authorize` allows, per-connection event limits, and publishing for extensions. */
@injectable()
export class RealtimeService {
  private io?: SocketServer;

  attach(io: SocketServer, access: RealtimeAccess): void {
    this.io = io;
    io.use((socket, next) => {
      void this.handshake(socket, access).then((error) => next(error));
    });
    io.on('connection', (socket) => this.serve(socket, access));
  }

  publish(room: string, event: string, data: unknown): void {
    this.io?.to(room).emit(event, data);
  }

  private async handshake(socket: Socket, access: RealtimeAccess): Promise<Error | undefined> {
    try {
      const headers = { ...socket.handshake.headers } as Record<string, unknown>;
      const token = (socket.handshake.auth as { token?: unknown } | undefined)?.token;
      if (typeof token === 'string' && !headers.authorization) headers.authorization = `Bearer ${token}`;
      const ip = access.clientAddress(socket.handshake.address, headers['x-forwarded-for'] as string | undefined);
      const result = await access.authenticate({ headers, method: 'GET', path: '/socket.io', ip });
      if (result?.error) return refusal(result.error);
      if (!result?.principal && access.authenticationInstalled()) {
        return refusal({
          code: ErrorCodes.UNAUTHENTICATED,
          message: 'socket.io clients must authenticate: connect with { auth: { token } } or an Authorization header',
        });
      }
      socket.data.principal = result?.principal;
      return undefined;
    } catch (err) {
      access.logger.warn({ err: String(err) }, 'socket.io authentication failed');
      return refusal({ code: isAionError(err) ? err.code : ErrorCodes.INTERNAL, message: 'authentication failed' });
    }
  }

  private serve(socket: Socket, access: RealtimeAccess): void {
    const throttle = new MessageThrottle(access.limits);
    socket.use((packet, next) => {
      const verdict = throttle.check();
      if (verdict === 'accept') return next();
      const error = throttle.refusal(verdict).toJSON();
      ackOf(packet)({ ok: false, error });
      socket.emit(REALTIME_ERROR_EVENT, error);
      if (verdict === 'disconnect') {
        access.logger.warn({ socket: socket.id, sub: (socket.data.principal as Principal | undefined)?.sub }, 'socket.io client disconnected for flooding');
        socket.disconnect(true);
      }
    });
    socket.on('subscribe', async (...args: unknown[]) => {
      const ack = ackOf(args);
      const msg = args[0] as { room?: unknown } | undefined;
      const room = typeof msg?.room === 'string' ? msg.room : '';
      try {
        const allowed = room ? await access.authorizeRoom(socket.data.principal as Principal | undefined, room) : false;
        if (allowed === true) {
          await socket.join(room);
          ack({ ok: true, room });
        } else ack({ ok: false, error: { code: ErrorCodes.FORBIDDEN, message: `not allowed to subscribe to ${room || 'an unnamed room'}` } });
      } catch (err) {
        ack({ ok: false, error: { code: isAionError(err) ? err.code : ErrorCodes.INTERNAL, message: 'subscription failed' } });
      }
    });
    socket.on('unsubscribe', async (...args: unknown[]) => {
      const msg = args[0] as { room?: unknown } | undefined;
      if (typeof msg?.room === 'string') await socket.leave(msg.room);
      ackOf(args)({ ok: true });
    });
  }
}
