import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  AionError,
  AsyncQueue,
  CancellationTokenSource,
  ErrorCodes,
  forEachItem,
  isAionError,
  type HttpRequestData,
  type Principal,
  type RouteContribution,
} from '@aion/extension-api';
import type { ServerConfig } from '../config/configuration.js';
import type { ActivationService } from '../activation/activationService.js';
import type { Admission } from './admission.js';
import type { EdgeAuthentication } from './authentication.js';
import type { TrustedProxies } from './clientAddress.js';
import { errorBody, rawErrorResponse, requestIdFrom } from './errorResponse.js';
import { MessageThrottle } from './messageThrottle.js';
import { RouteTable, requestTarget } from './routeTable.js';

export interface WebSocketBridgeOptions {
  config: ServerConfig;
  activation: ActivationService;
  authentication: EdgeAuthentication;
  admission: Admission;
  proxies: TrustedProxies;
  /** Extension errors as the client may see them. */
  fromExtension(err: unknown, extensionId: string, requestId: string): AionError;
}

/** WebSocket routes (`websocket: true`): authorised like any route, then frames bridged to the extension as two streams, each connection rate-limited. */
export class WebSocketBridge {
  private readonly routes = new RouteTable<{ extensionId: string; route: RouteContribution; limits: ServerConfig['realtime'] }>();
  private readonly sockets = new Set<WebSocket>();
  private wss?: WebSocketServer;

  constructor(private readonly options: WebSocketBridgeOptions) {}

  get hasRoutes(): boolean {
    return this.routes.size > 0;
  }

  add(extensionId: string, route: RouteContribution): void {
    // The route's own message limits where it declares them, made once for all its connections.
    const own = route.messages;
    const realtime = this.options.config.realtime;
    // A manifest may raise its route's limit, never above the operator's ceiling.
    const limits = own
      ? {
          ...realtime,
          messagesPerSecond: Math.min(own.perSecond, realtime.routeCeiling.messagesPerSecond),
          burst: Math.min(own.burst, realtime.routeCeiling.burst),
        }
      : realtime;
    this.routes.add('GET', route.path, { extensionId, route, limits });
  }

  /** Takes over upgrades of the server, leaving socket.io's own to socket.io. */
  attach(server: Server): void {
    if (!this.hasRoutes) return;
    this.wss = new WebSocketServer({ noServer: true, maxPayload: this.options.config.bodyLimit });
    server.on('upgrade', (req, socket, head) => {
      this.handleUpgrade(req, socket, head).catch(() => socket.destroy());
    });
  }

  /** Asks every client to go away (draining). */
  closeAll(code: number, reason: string): void {
    for (const ws of this.sockets) ws.close(code, reason);
  }

  terminate(): void {
    for (const ws of this.sockets) ws.terminate();
    this.wss?.close();
  }

  private async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    if (req.url?.startsWith('/socket.io/')) return;
    const requestId = requestIdFrom(req.headers['x-request-id']);
    // A module-level listener: a closure here would keep this upgrade request (headers, token) alive as long as the socket.
    socket.on('error', ignoreError);
    const refuse = (error: AionError) => socket.end(rawErrorResponse(error, requestId));
    // The path as sent, as plain HTTP routes see it: no dot segment resolved.
    const url = requestTarget(req.url ?? '/');
    if (!url) return void refuse(new AionError(ErrorCodes.BAD_REQUEST, 'the request target is not a valid path'));
    const match = this.routes.match('GET', url.path);
    if (!match || !('handler' in match)) return void refuse(new AionError(ErrorCodes.NOT_FOUND, `no WebSocket route ${url.path}`));
    const target = match.handler;
    if (this.options.admission.isDraining) return void refuse(new AionError(ErrorCodes.SHUTTING_DOWN, 'the server is shutting down'));
    const ip = this.options.proxies.clientAddress(req.socket.remoteAddress, req.headers['x-forwarded-for']);
    let principal: Principal | undefined;
    try {
      principal = await this.options.authentication.authorize(target.route, { headers: req.headers, method: 'GET', path: url.path, ip }, () => undefined);
    } catch (err) {
      return void refuse(isAionError(err) ? err : new AionError(ErrorCodes.INTERNAL, 'authentication failed'));
    }
    this.wss!.handleUpgrade(
      req,
      socket,
      head,
      (ws) =>
        void this.bridge(ws, target.extensionId, target.route, target.limits, {
          method: 'GET',
          path: url.path,
          route: target.route.path,
          params: match.params,
          query: Object.fromEntries(new URLSearchParams(url.search)),
          headers: req.headers as Record<string, string>,
          principal,
          requestId,
          ip,
        }),
    );
  }

  private async bridge(
    ws: WebSocket,
    extensionId: string,
    route: RouteContribution,
    limits: ServerConfig['realtime'],
    request: HttpRequestData,
  ): Promise<void> {
    this.sockets.add(ws);
    const cancel = new CancellationTokenSource();
    const messages = new AsyncQueue<string>();
    const throttle = new MessageThrottle(limits);
    let stopOutgoing: (() => void) | undefined;
    ws.on('message', (data, isBinary) => {
      const verdict = throttle.check();
      if (verdict === 'accept') return messages.push(isBinary ? Buffer.from(data as Buffer).toString('base64') : data.toString());
      if (ws.readyState !== ws.OPEN) return;
      const error = throttle.refusal(verdict);
      ws.send(JSON.stringify(errorBody(error)));
      if (verdict === 'disconnect') ws.close(1008, `${error.code}: too many messages`);
    });
    ws.on('close', () => {
      this.sockets.delete(ws);
      // The handler's own end of the socket last: whatever it does on the end cannot keep these from running.
      cancel.cancel();
      stopOutgoing?.();
      messages.end();
    });
    ws.on('error', ignoreError);
    const requestId = request.requestId;
    const fail = (err: unknown) => {
      const error = this.options.fromExtension(err, extensionId, requestId);
      if (ws.readyState === ws.OPEN) ws.close(1011, Buffer.from(`${error.code}: ${error.message}`).subarray(0, 120).toString());
    };
    try {
      const host = await this.options.activation.hostOf(extensionId, `onRoute:GET ${route.path}`);
      const routed = host.handleRoute({ extensionId, route: `GET ${route.path}`, request: { ...request, messages } }, cancel.token);
      // The socket outlives the upgrade: its headers (a token among them) are dropped once the handler has them.
      request = undefined as never;
      const response = await routed;
      if (!response?.stream) throw new AionError(ErrorCodes.INTERNAL, 'the WebSocket handler returned no stream');
      // Nothing waits per socket from here on: the handler's frames are sent as they come (a queue of a
      // kernel-host handler pushes them; a stream from another host is pulled, one send at a time).
      stopOutgoing = forEachItem(
        response.stream as AsyncIterable<unknown>,
        (value) => {
          if (ws.readyState !== ws.OPEN) return;
          const frame = typeof value === 'string' ? value : JSON.stringify(value);
          return new Promise<void>((resolve, reject) => ws.send(frame, (err) => (err ? reject(err) : resolve())));
        },
        (error) => {
          if (error !== undefined) return fail(error);
          if (ws.readyState === ws.OPEN) ws.close(1000, 'done');
        },
      );
      if (ws.readyState !== ws.OPEN) stopOutgoing();
    } catch (err) {
      fail(err);
    }
  }
}

function ignoreError(): void {}
