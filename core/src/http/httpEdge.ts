import { randomUUID } from 'node:crypto';
import { createServer, STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { inject, injectable } from 'inversify';
import Koa from 'koa';
import Router from '@koa/router';
import getRawBody from 'raw-body';
import { Server as SocketServer } from 'socket.io';
import { AionError, AsyncQueue, CancellationTokenSource, ErrorCodes, isAionError, type ErrorPayload, type HttpRequestData, type HttpResponseData, type Principal, type RouteContribution, type ServerSentEvent } from '@aion/extension-api';
import { HostProtocol } from '@aion/extension-api/protocol';
import type { AionConfig } from '../config/configuration.js';
import { ContributionRegistry } from '../contributions/contributionRegistry.js';
import { ExtensionRegistry } from '../registry/extensionRegistry.js';
import { HookRegistry } from '../hooks/hookRegistry.js';
import { HostManager } from '../hosts/hostManager.js';
import { KernelEndpoint } from '../hosts/kernelEndpoint.js';
import type { Logger } from '../logging.js';
import { TYPES } from '../tokens.js';
import { RealtimeService } from './realtimeService.js';

/** What a `http.authenticate` tap answers; `headers` (e.g. RateLimit-*) are added to the response. */
type AuthResult = { principal?: Principal; headers?: Record<string, string>; error?: ErrorPayload & { status?: number; headers?: Record<string, string> } } | undefined;

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

function errorBody(error: AionError | ErrorPayload): { error: ErrorPayload } {
  const e: ErrorPayload = { code: error.code, message: error.message };
  if (error.details !== undefined) e.details = error.details;
  return { error: e };
}

/** Untrusted text heading to a client: no host paths, no stack lines. */
export function sanitizeMessage(message: string): string {
  return message
    .split('\n')[0]!
    .replace(/(?:[A-Za-z]:)?(?:\/[\w.@+-]+){2,}\/?/g, '[path]')
    .slice(0, 500);
}

/** One http.Server carrying koa (REST, SSE) and socket.io; routes come from manifests. */
@injectable()
export class HttpEdge {
  readonly app = new Koa();
  server?: Server;
  io?: SocketServer;
  private inFlight = 0;
  private draining = false;
  private ready = false;
  private readonly drained = new Set<() => void>();
  private readonly socketRouter = new Router();
  private readonly socketRoutes = new Map<string, { extensionId: string; route: RouteContribution }>();
  private readonly sockets = new Set<WebSocket>();
  private wss?: WebSocketServer;

  constructor(
    @inject(TYPES.KernelOptions) private readonly config: AionConfig,
    @inject(TYPES.Logger) private readonly logger: Logger,
    @inject(ExtensionRegistry) private readonly registry: ExtensionRegistry,
    @inject(ContributionRegistry) private readonly contributions: ContributionRegistry,
    @inject(HookRegistry) private readonly hooks: HookRegistry,
    @inject(HostManager) private readonly hosts: HostManager,
    @inject(KernelEndpoint) private readonly kernel: KernelEndpoint,
    @inject(RealtimeService) private readonly realtime: RealtimeService,
  ) {}

  get inFlightRequests(): number {
    return this.inFlight;
  }

  markReady(): void {
    this.ready = true;
  }

  /** Builds the middleware chain and mounts every route declared by a usable extension. */
  build(): void {
    const app = this.app;
    app.proxy = false;
    app.use(async (ctx, next) => {
      const incoming = ctx.get('x-request-id');
      const requestId = REQUEST_ID.test(incoming) ? incoming : randomUUID();
      ctx.state.requestId = requestId;
      ctx.set('X-Request-Id', requestId);
      const started = performance.now();
      try {
        await next();
      } catch (err) {
        this.writeError(ctx, err);
      } finally {
        if (ctx.status >= 500) this.logger.warn({ requestId, method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round(performance.now() - started) }, 'request failed');
        else this.logger.debug({ requestId, method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round(performance.now() - started) }, 'request');
      }
    });
    app.use(async (ctx, next) => {
      if (this.draining) {
        ctx.set('Connection', 'close');
        throw new AionError(ErrorCodes.SHUTTING_DOWN, 'the server is shutting down; retry against another instance', { headers: { 'Retry-After': '1' } });
      }
      if (this.inFlight >= this.config.server.maxInFlight) {
        throw new AionError(ErrorCodes.SERVICE_UNAVAILABLE, `the server is saturated (${this.inFlight} requests in flight); retry shortly`, { headers: { 'Retry-After': '1' } });
      }
      this.inFlight++;
      try {
        await next();
      } finally {
        if (--this.inFlight === 0) for (const resolve of this.drained) resolve();
      }
    });
    const router = new Router();
    router.get('/healthz', (ctx) => {
      ctx.body = { status: 'ok', hosts: this.hosts.all().map((h) => ({ key: h.key, kind: h.kind, state: h.state, pid: h.pid, extensions: [...h.extensions] })) };
    });
    router.get('/readyz', (ctx) => {
      ctx.status = this.ready && !this.draining ? 200 : 503;
      ctx.body = this.ready && !this.draining ? { status: 'ready' } : errorBody({ code: ErrorCodes.SERVICE_UNAVAILABLE, message: this.draining ? 'shutting down' : 'start-up activations are still running' });
    });
    router.get('/v1/extensions', (ctx) => {
      ctx.body = { extensions: this.describeExtensions() };
    });
    for (const record of this.registry.all()) {
      if (record.state === 'skipped') continue;
      for (const route of record.manifest.contributes?.routes ?? []) {
        const method = route.method.toLowerCase() as 'get' | 'post' | 'put' | 'patch' | 'delete';
        if (route.websocket) {
          this.socketRouter.get(route.path, () => undefined);
          this.socketRoutes.set(route.path, { extensionId: record.id, route });
          router.get(route.path, () => {
            throw new AionError('UPGRADE_REQUIRED', `${route.path} is a WebSocket endpoint: connect with a WebSocket client`, { status: 426, headers: { Upgrade: 'websocket' } });
          });
        } else router[method](route.path, (ctx) => this.dispatch(ctx, record.id, route));
      }
    }
    app.use(router.routes());
    app.use(router.allowedMethods({ throw: false }));
    app.use((ctx) => {
      if (ctx.status === 405) throw new AionError(ErrorCodes.METHOD_NOT_ALLOWED, `${ctx.method} is not allowed on ${ctx.path}`);
      throw new AionError(ErrorCodes.NOT_FOUND, `no route ${ctx.method} ${ctx.path}`);
    });
  }

  describeExtensions(): Array<Record<string, unknown>> {
    const installed = this.registry.all().map((r) => ({
      id: r.id,
      version: r.manifest.version,
      displayName: r.manifest.displayName,
      state: r.state,
      host: r.hostKind,
      source: r.source,
      activationMs: r.activationMs ?? null,
      activatedBy: r.activatedBy ?? null,
      activationEvents: r.activationEvents,
      contributions: this.contributions.summaryFor(r.id),
      errors: r.errors,
      warnings: r.warnings,
    }));
    const rejected = this.registry.rejected.map((r) => ({ id: r.id ?? null, state: 'invalid', manifestPath: r.manifestPath, errors: r.errors }));
    return [...installed, ...rejected];
  }

  private writeError(ctx: Koa.Context, err: unknown): void {
    const requestId = ctx.state.requestId as string;
    let error: AionError;
    if (isAionError(err)) error = err;
    else if ((err as { type?: string }).type === 'entity.too.large') error = new AionError(ErrorCodes.PAYLOAD_TOO_LARGE, `the request body is larger than the ${(err as { limit?: number }).limit} bytes this route accepts`);
    else {
      this.logger.error({ requestId, err }, 'unexpected error');
      error = new AionError(ErrorCodes.INTERNAL, `internal error (request ${requestId})`);
    }
    if (ctx.headerSent || !ctx.writable) return;
    ctx.status = error.httpStatus;
    for (const [k, v] of Object.entries(error.headers ?? {})) ctx.set(k, v);
    ctx.body = errorBody(error);
  }

  /** `http.authenticate`, then the route's declared auth mode and scopes. Throws the error to send. */
  private async authorizeRoute(route: RouteContribution, request: { headers: Record<string, unknown>; method: string; path: string; ip: string }, setHeader: (k: string, v: string) => void): Promise<Principal | undefined> {
    const mode = route.auth ?? (route.scopes?.length ? 'required' : 'optional');
    if (mode === 'none') return undefined;
    const auth = ((await this.kernel.callHook('http.authenticate', request)) ?? undefined) as AuthResult;
    for (const [k, v] of Object.entries(auth?.headers ?? {})) setHeader(k, v);
    if (auth?.error) throw new AionError(auth.error.code, auth.error.message, { status: auth.error.status ?? 401, headers: auth.error.headers, details: auth.error.details });
    const principal = auth?.principal;
    if (!principal && mode === 'required') {
      const how = this.hooks.tapCount('http.authenticate') > 0 ? 'send Authorization: Bearer <token> or X-API-Key' : 'no authentication extension is installed, so this route cannot be used';
      throw new AionError(ErrorCodes.UNAUTHENTICATED, `${route.method} ${route.path} requires authentication: ${how}`);
    }
    const missing = (route.scopes ?? []).filter((s) => !principal?.scopes.includes(s) && !principal?.scopes.includes('*'));
    if (principal && missing.length > 0) {
      throw new AionError(ErrorCodes.FORBIDDEN, `this route requires the scope${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`, { details: { missingScopes: missing } });
    }
    return principal;
  }

  private async dispatch(ctx: Koa.Context, extensionId: string, route: RouteContribution): Promise<void> {
    const routeKey = `${route.method} ${route.path}`;
    const requestId = ctx.state.requestId as string;
    const principal = await this.authorizeRoute(route, { headers: ctx.headers, method: ctx.method, path: ctx.path, ip: ctx.ip }, (k, v) => ctx.set(k, v));
    const record = this.registry.require(extensionId);
    const limit = route.bodyLimit ?? this.config.server.bodyLimit;
    let body: unknown;
    let rawBody: string | undefined;
    if (BODY_METHODS.has(ctx.method) && ((ctx.request.length ?? 0) > 0 || ctx.req.headers['transfer-encoding'] !== undefined)) {
      const raw = await getRawBody(ctx.req, { limit, length: ctx.request.length });
      const type = ctx.request.type;
      if (type === 'application/json' || type.endsWith('+json') || (!type && raw.length > 0)) {
        try {
          body = raw.length ? JSON.parse(raw.toString('utf8')) : undefined;
        } catch (e) {
          throw new AionError(ErrorCodes.BAD_REQUEST, `the request body is not valid JSON: ${(e as Error).message}`);
        }
      } else if (type.startsWith('text/') || type === 'application/x-www-form-urlencoded') rawBody = raw.toString('utf8');
      else rawBody = raw.toString('base64');
    }
    const request: HttpRequestData = {
      method: ctx.method,
      path: ctx.path,
      route: route.path,
      params: { ...(ctx as unknown as { params: Record<string, string> }).params },
      query: ctx.query as Record<string, string | string[]>,
      headers: ctx.headers as Record<string, string>,
      body,
      rawBody,
      principal,
      requestId,
      ip: ctx.ip,
    };
    const cancel = new CancellationTokenSource();
    const onClose = () => {
      if (!ctx.res.writableEnded) cancel.cancel();
    };
    ctx.res.once('close', onClose);
    const timeoutMs = route.timeoutMs ?? record.manifest.aion?.resources?.requestTimeoutMs ?? this.config.server.requestTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    try {
      const host = await this.kernel.hostOf(extensionId, `onRoute:${routeKey}`);
      const call = host.request(HostProtocol.handleRoute, { extensionId, route: routeKey, request }, cancel.token);
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          cancel.cancel();
          reject(new AionError(ErrorCodes.TIMEOUT, `${routeKey} did not answer within ${timeoutMs} ms`));
        }, timeoutMs);
      });
      const response = (await Promise.race([call, timeout])) as HttpResponseData;
      clearTimeout(timer);
      if (response?.stream) await this.writeStream(ctx, response);
      else {
        ctx.status = response?.status ?? (response?.body === undefined ? 204 : 200);
        for (const [k, v] of Object.entries(response?.headers ?? {})) ctx.set(k, v);
        if (response?.body !== undefined) ctx.body = response.body;
      }
    } catch (err) {
      throw this.fromExtension(err, extensionId, requestId);
    } finally {
      clearTimeout(timer);
      ctx.res.off('close', onClose);
    }
  }

  /** Errors from extension code reach the client sanitized; the full text goes to the log. */
  private fromExtension(err: unknown, extensionId: string, requestId: string): AionError {
    if (!isAionError(err)) {
      this.logger.error({ requestId, extension: extensionId, err }, 'extension route failed');
      return new AionError(ErrorCodes.INTERNAL, `the extension ${extensionId} failed to handle the request (request ${requestId})`);
    }
    if (err.code === ErrorCodes.INTERNAL) {
      this.logger.error({ requestId, extension: extensionId, message: err.message }, 'extension route failed');
      return new AionError(ErrorCodes.INTERNAL, `the extension ${extensionId} failed to handle the request (request ${requestId})`);
    }
    return new AionError(err.code, sanitizeMessage(err.message), { details: err.details, status: err.status, headers: err.headers });
  }

  private async writeStream(ctx: Koa.Context, response: HttpResponseData): Promise<void> {
    const res = ctx.res;
    ctx.respond = false;
    res.writeHead(response.status ?? 200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
      'X-Request-Id': ctx.state.requestId as string,
      ...response.headers,
    });
    res.flushHeaders();
    const iterator = (response.stream as AsyncIterable<ServerSentEvent>)[Symbol.asyncIterator]();
    let closed = false;
    const onClose = () => {
      closed = true;
      void iterator.return?.();
    };
    res.once('close', onClose);
    try {
      for (;;) {
        const next = await iterator.next();
        if (next.done || closed) break;
        const e = next.value;
        let frame = '';
        if (e.id !== undefined) frame += `id: ${e.id}\n`;
        if (e.event) frame += `event: ${e.event}\n`;
        if (e.retry !== undefined) frame += `retry: ${e.retry}\n`;
        const data = typeof e.data === 'string' ? e.data : JSON.stringify(e.data);
        for (const line of data.split('\n')) frame += `data: ${line}\n`;
        if (!res.write(frame + '\n')) await new Promise<void>((resolve) => res.once('drain', resolve).once('close', resolve));
      }
    } catch (err) {
      const error = isAionError(err) ? err : new AionError(ErrorCodes.STREAM_ERROR, 'the stream failed');
      if (!closed) res.write(`event: error\ndata: ${JSON.stringify({ code: error.code, message: sanitizeMessage(error.message) })}\n\n`);
    } finally {
      res.off('close', onClose);
      if (!closed) res.end();
    }
  }

  async listen(): Promise<{ url: string; port: number }> {
    const server = createServer(this.app.callback());
    server.keepAliveTimeout = 5_000;
    this.server = server;
    this.io = new SocketServer(server, { serveClient: false, cors: { origin: false }, destroyUpgrade: false });
    this.realtime.attach(this.io);
    this.attachRealtime(this.io);
    if (this.socketRoutes.size > 0) {
      this.wss = new WebSocketServer({ noServer: true, maxPayload: this.config.server.bodyLimit });
      server.on('upgrade', (req, socket, head) => void this.handleUpgrade(req, socket, head));
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.config.server.port, this.config.server.host, () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    const host = this.config.server.host.includes(':') ? `[${this.config.server.host}]` : this.config.server.host;
    return { url: `http://${host}:${port}`, port };
  }

  private rejectUpgrade(socket: Duplex, error: AionError, requestId: string): void {
    const status = error.httpStatus;
    const body = JSON.stringify(errorBody(error));
    const headers = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`, 'Content-Type: application/json', `Content-Length: ${Buffer.byteLength(body)}`, `X-Request-Id: ${requestId}`, 'Connection: close'];
    for (const [k, v] of Object.entries(error.headers ?? {})) headers.push(`${k}: ${v}`);
    socket.end(`${headers.join('\r\n')}\r\n\r\n${body}`);
  }

  /** WebSocket routes: authorise like any route, then bridge frames to the extension as two streams. */
  private async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname.startsWith('/socket.io/')) return;
    const incomingId = String(req.headers['x-request-id'] ?? '');
    const requestId = REQUEST_ID.test(incomingId) ? incomingId : randomUUID();
    socket.on('error', () => undefined);
    const layer = this.socketRouter.match(url.pathname, 'GET').pathAndMethod[0];
    const target = layer && this.socketRoutes.get(layer.path as string);
    if (!layer || !target) return this.rejectUpgrade(socket, new AionError(ErrorCodes.NOT_FOUND, `no WebSocket route ${url.pathname}`), requestId);
    if (this.draining) return this.rejectUpgrade(socket, new AionError(ErrorCodes.SHUTTING_DOWN, 'the server is shutting down'), requestId);
    const ip = req.socket.remoteAddress ?? '';
    let principal: Principal | undefined;
    try {
      principal = await this.authorizeRoute(target.route, { headers: req.headers, method: 'GET', path: url.pathname, ip }, () => undefined);
    } catch (err) {
      return this.rejectUpgrade(socket, isAionError(err) ? err : new AionError(ErrorCodes.INTERNAL, 'authentication failed'), requestId);
    }
    this.wss!.handleUpgrade(req, socket, head, (ws) => void this.bridgeSocket(ws, target.extensionId, target.route, {
      method: 'GET',
      path: url.pathname,
      route: target.route.path,
      params: layer.params(url.pathname, layer.captures(url.pathname)) as Record<string, string>,
      query: Object.fromEntries(url.searchParams),
      headers: req.headers as Record<string, string>,
      principal,
      requestId,
      ip,
    }));
  }

  private async bridgeSocket(ws: WebSocket, extensionId: string, route: RouteContribution, request: HttpRequestData): Promise<void> {
    this.sockets.add(ws);
    const cancel = new CancellationTokenSource();
    const messages = new AsyncQueue<string>();
    let outgoing: AsyncIterator<unknown> | undefined;
    ws.on('message', (data, isBinary) => messages.push(isBinary ? Buffer.from(data as Buffer).toString('base64') : data.toString()));
    ws.on('close', () => {
      this.sockets.delete(ws);
      messages.end();
      cancel.cancel();
      void outgoing?.return?.();
    });
    ws.on('error', () => undefined);
    try {
      const host = await this.kernel.hostOf(extensionId, `onRoute:GET ${route.path}`);
      const response = (await host.request(HostProtocol.handleRoute, { extensionId, route: `GET ${route.path}`, request: { ...request, messages } }, cancel.token)) as HttpResponseData;
      if (!response?.stream) throw new AionError(ErrorCodes.INTERNAL, 'the WebSocket handler returned no stream');
      outgoing = (response.stream as AsyncIterable<unknown>)[Symbol.asyncIterator]();
      for (;;) {
        const next = await outgoing.next();
        if (next.done || ws.readyState !== ws.OPEN) break;
        const frame = typeof next.value === 'string' ? next.value : JSON.stringify(next.value);
        await new Promise<void>((resolve, reject) => ws.send(frame, (err) => (err ? reject(err) : resolve())));
      }
      if (ws.readyState === ws.OPEN) ws.close(1000, 'done');
    } catch (err) {
      const error = this.fromExtension(err, extensionId, request.requestId);
      if (ws.readyState === ws.OPEN) ws.close(1011, Buffer.from(`${error.code}: ${error.message}`).subarray(0, 120).toString());
    }
  }

  private attachRealtime(io: SocketServer): void {
    io.use(async (socket, next) => {
      try {
        const headers = { ...socket.handshake.headers } as Record<string, string>;
        const token = (socket.handshake.auth as { token?: string } | undefined)?.token;
        if (token && !headers.authorization) headers.authorization = `Bearer ${token}`;
        const result = (await this.kernel.callHook('http.authenticate', { headers, method: 'GET', path: '/socket.io', ip: socket.handshake.address })) as AuthResult;
        if (result?.error) return next(Object.assign(new Error(result.error.message), { data: { code: result.error.code } }));
        socket.data.principal = result?.principal;
        next();
      } catch (err) {
        next(err as Error);
      }
    });
    io.on('connection', (socket) => {
      socket.on('subscribe', async (msg: { room?: string }, ack?: (r: unknown) => void) => {
        const room = typeof msg?.room === 'string' ? msg.room : '';
        try {
          const allowed = room ? await this.kernel.callHook('realtime.authorize', { principal: socket.data.principal ?? null, room }) : false;
          if (allowed === true) {
            await socket.join(room);
            ack?.({ ok: true, room });
          } else ack?.({ ok: false, error: { code: ErrorCodes.FORBIDDEN, message: `not allowed to subscribe to ${room || 'an unnamed room'}` } });
        } catch (err) {
          ack?.({ ok: false, error: { code: isAionError(err) ? err.code : ErrorCodes.INTERNAL, message: 'subscription failed' } });
        }
      });
      socket.on('unsubscribe', async (msg: { room?: string }, ack?: (r: unknown) => void) => {
        if (typeof msg?.room === 'string') await socket.leave(msg.room);
        ack?.({ ok: true });
      });
    });
  }

  /** Stops taking requests and waits (bounded) for the ones in flight. */
  async drain(timeoutMs: number): Promise<boolean> {
    this.draining = true;
    this.server?.close();
    this.io?.disconnectSockets(true);
    for (const ws of this.sockets) ws.close(1001, 'server shutting down');
    if (this.inFlight === 0) return true;
    return new Promise<boolean>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.drained.delete(done);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.drained.delete(done);
        resolve(false);
      }, timeoutMs);
      this.drained.add(done);
    });
  }

  async close(): Promise<void> {
    for (const ws of this.sockets) ws.terminate();
    this.wss?.close();
    this.io?.close();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
