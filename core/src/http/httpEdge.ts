import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inject, injectable } from 'inversify';
import Koa from 'koa';
import Router from '@koa/router';
import { Server as SocketServer } from 'socket.io';
import { joinRealtimeCluster } from './realtimeCluster.js';
import { AionError, ErrorCodes, isAionError, type RouteContribution } from '@aion/extension-api';
import { ActivationService } from '../activation/activationService.js';
import type { AionConfig } from '../config/configuration.js';
import { ContributionRegistry } from '../contributions/contributionRegistry.js';
import { HookRegistry } from '../hooks/hookRegistry.js';
import { HostManager } from '../hosts/hostManager.js';
import { HooksChannel } from '../hooks/hooksChannel.js';
import type { Logger } from '../logging.js';
import { ExtensionRegistry } from '../registry/extensionRegistry.js';
import { TYPES } from '../tokens.js';
import { Admission } from './admission.js';
import { EdgeAuthentication } from './authentication.js';
import { TrustedProxies } from './clientAddress.js';
import { RouteDispatcher } from './dispatch.js';
import { errorBody, requestIdFrom, type ErrorFormat } from './errorResponse.js';
import { EXTENSIONS_WRITE_SCOPE, extensionsRoute } from './extensionsRoute.js';
import { EXTENSIONS_READ_SCOPE } from './authentication.js';
import { NetworkIsolation } from '../hosts/networkIsolation.js';
import { healthRoutes } from './health.js';
import { RealtimeService } from './realtimeService.js';
import { createLimitedServer } from './serverLimits.js';
import { WebSocketBridge } from './webSocketBridge.js';
import { Telemetry } from '../telemetry/telemetry.js';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, propagation, trace } from '@opentelemetry/api';
import { REQUEST_ID_KEY } from '@aion/host-runtime';

const tracer = () => trace.getTracer('aion.kernel');

/** The request's path; a target koa cannot parse (`http://[::1`) is the client's error, not ours. */
function pathOf(ctx: Koa.Context): string {
  try {
    return ctx.path;
  } catch {
    throw new AionError(ErrorCodes.BAD_REQUEST, 'the request target is not a valid path');
  }
}

/** What the kernel's own routes require, as an extension would declare them (they are listed in the API document). */
const KERNEL_ROUTES: RouteContribution[] = [
  {
    method: 'GET',
    path: '/healthz',
    auth: 'optional',
    description: 'Liveness: ok or degraded with counts; an admin also sees each host and what degrades the server.',
    responseSchema: { type: 'object', required: ['status'], properties: { status: { enum: ['ok', 'degraded'] }, counts: { type: 'object' } } },
  },
  {
    method: 'GET',
    path: '/readyz',
    auth: 'none',
    description: 'Readiness: 200 once start-up activations are done and while not draining, 503 otherwise.',
    responseSchema: { type: 'object', required: ['status'], properties: { status: { enum: ['ready', 'degraded'] }, degraded: { type: 'integer' } } },
  },
  {
    method: 'GET',
    path: '/v1/extensions',
    scopes: [EXTENSIONS_READ_SCOPE],
    description: 'Every extension with its state, host, placement, permissions, activation and contributions.',
    responseSchema: { type: 'object', required: ['extensions'], properties: { extensions: { type: 'array', items: { type: 'object' } } } },
  },
  {
    method: 'POST',
    path: '/v1/extensions/:id/enable',
    scopes: [EXTENSIONS_WRITE_SCOPE],
    description: 'Enables an extension (and a host the crash policy disabled).',
  },
  { method: 'POST', path: '/v1/extensions/:id/disable', scopes: [EXTENSIONS_WRITE_SCOPE], description: 'Disables an extension until it is enabled again.' },
];

/** One http.Server carrying koa (REST, SSE), WebSocket routes and socket.io; wires the edge's parts together. */
@injectable()
export class HttpEdge {
  readonly app = new Koa();
  server?: Server;
  io?: SocketServer;
  private realtimeCluster?: { close(): Promise<void> };
  private ready = false;
  private readonly admission: Admission;
  private readonly proxies: TrustedProxies;
  private readonly authentication: EdgeAuthentication;
  private readonly dispatcher: RouteDispatcher;
  private readonly webSockets: WebSocketBridge;

  constructor(
    @inject(TYPES.KernelOptions) private readonly config: AionConfig,
    @inject(TYPES.Logger) private readonly logger: Logger,
    @inject(ExtensionRegistry) private readonly registry: ExtensionRegistry,
    @inject(ContributionRegistry) private readonly contributions: ContributionRegistry,
    @inject(HookRegistry) hooks: HookRegistry,
    @inject(HostManager) private readonly hosts: HostManager,
    @inject(HooksChannel) private readonly hookCalls: HooksChannel,
    @inject(ActivationService) private readonly activation: ActivationService,
    @inject(NetworkIsolation) private readonly network: NetworkIsolation,
    @inject(RealtimeService) private readonly realtime: RealtimeService,
    @inject(Telemetry) private readonly telemetry: Telemetry,
  ) {
    const server = config.server;
    this.admission = new Admission(server.maxInFlight);
    this.proxies = new TrustedProxies(server.trustedProxies);
    this.authentication = new EdgeAuthentication({ hookCalls, hooks, activation });
    this.dispatcher = new RouteDispatcher({ config: server, logger, registry, activation, authentication: this.authentication, admission: this.admission });
    this.webSockets = new WebSocketBridge({
      config: server,
      activation,
      authentication: this.authentication,
      admission: this.admission,
      proxies: this.proxies,
      fromExtension: (err, id, requestId) => this.dispatcher.fromExtension(err, id, requestId),
    });
  }

  get inFlightRequests(): number {
    return this.admission.count;
  }

  /** What `/readyz` answers: start-up activations done, and not draining. */
  get readiness(): { ready: boolean; draining: boolean } {
    return { ready: this.ready, draining: this.admission.isDraining };
  }

  markReady(): void {
    this.ready = true;
  }

  /** Builds the middleware chain and mounts every route declared by a usable extension. */
  build(): void {
    const app = this.app;
    app.proxy = false;
    app.use(async (ctx, next) => {
      const requestId = requestIdFrom(ctx.get('x-request-id'));
      ctx.state.requestId = requestId;
      ctx.state.clientIp = this.proxies.clientAddress(ctx.req.socket.remoteAddress, ctx.req.headers['x-forwarded-for']);
      ctx.set('X-Request-Id', requestId);
      const started = performance.now();
      // The request id and (when a tracer is installed) the request's span follow every call it makes.
      const span = tracer().startSpan(
        `${ctx.method}`,
        { kind: SpanKind.SERVER, attributes: { 'http.request.method': ctx.method, 'aion.request_id': requestId } },
        propagation.extract(ROOT_CONTEXT, ctx.headers),
      );
      const recording = span.isRecording();
      let active = ROOT_CONTEXT.setValue(REQUEST_ID_KEY, requestId);
      if (recording) active = trace.setSpan(active, span);
      // Without the query string: it may carry a token.
      let path = ctx.url.split('?')[0]!;
      let failure: { code: string; cause: string } | undefined;
      try {
        path = pathOf(ctx);
        await context.with(active, next);
      } catch (err) {
        failure = this.writeError(ctx, err);
      } finally {
        const ms = performance.now() - started;
        // The kernel's own time, so a client can tell it from the network's and its own (W3C Server-Timing).
        if (!ctx.headerSent) ctx.set('Server-Timing', `app;dur=${ms.toFixed(2)}`);
        const route = (ctx as unknown as { _matchedRoute?: string })._matchedRoute;
        const errorCode = failure?.code;
        // One access line per request; a failed one also says why.
        const principal = (ctx.state.principal as { sub?: string } | undefined)?.sub ?? null;
        const entry = {
          requestId,
          ip: ctx.state.clientIp,
          method: ctx.method,
          path,
          route: route ?? null,
          status: ctx.status,
          ms: Math.round(ms * 10) / 10,
          principal,
          ...(failure ? { code: failure.code, cause: failure.cause } : {}),
        };
        if (ctx.status >= 500) this.logger.warn(entry, 'request failed');
        else this.logger.info(entry, 'request');
        this.telemetry.recordHttp(ctx.method, route ?? 'unmatched', ctx.status, ms, errorCode);
        if (recording) {
          if (route) span.updateName(`${ctx.method} ${route}`);
          span.setAttributes({
            'http.route': route ?? 'unmatched',
            'http.response.status_code': ctx.status,
            ...(errorCode ? { 'aion.error.code': errorCode } : {}),
          });
          if (ctx.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: errorCode });
        }
        span.end();
      }
    });
    app.use((_ctx, next) => {
      this.admission.refuseIfDraining();
      return next();
    });
    const router = new Router();
    const status = { config: this.config, registry: this.registry, contributions: this.contributions, hosts: this.hosts, network: this.network };
    this.contributions.addKernelRoutes(KERNEL_ROUTES);
    healthRoutes(router, {
      ...status,
      authentication: this.authentication,
      readiness: () => ({ ready: this.ready, draining: this.admission.isDraining }),
      callHook: (hook, payload) => this.hookCalls.call(hook, payload),
    });
    extensionsRoute(router, { ...status, authentication: this.authentication, activation: this.activation });
    for (const record of this.registry.all()) {
      if (record.state === 'skipped') continue;
      for (const route of record.manifest.contributes?.routes ?? []) {
        const method = route.method.toLowerCase() as 'get' | 'post' | 'put' | 'patch' | 'delete';
        if (route.websocket) {
          this.webSockets.add(record.id, route);
          router.get(route.path, () => {
            throw new AionError('UPGRADE_REQUIRED', `${route.path} is a WebSocket endpoint: connect with a WebSocket client`, {
              status: 426,
              headers: { Upgrade: 'websocket' },
            });
          });
        } else router[method](route.path, (ctx) => this.dispatcher.dispatch(ctx, record.id, route));
      }
    }
    app.use(router.routes());
    app.use(router.allowedMethods({ throw: false }));
    app.use((ctx) => {
      if (ctx.status === 405) throw new AionError(ErrorCodes.METHOD_NOT_ALLOWED, `${ctx.method} is not allowed on ${ctx.path}`);
      throw new AionError(ErrorCodes.NOT_FOUND, `no route ${ctx.method} ${ctx.path}`);
    });
  }

  /** Answers with the error's status and JSON shape (the route's error format); returns its stable code and message for the access log. */
  private writeError(ctx: Koa.Context, err: unknown): { code: string; cause: string } {
    const requestId = ctx.state.requestId as string;
    let error: AionError;
    if (isAionError(err)) error = err;
    else {
      this.logger.error({ requestId, err }, 'unexpected error');
      error = new AionError(ErrorCodes.INTERNAL, `internal error (request ${requestId})`);
    }
    const failure = { code: error.code, cause: error.message };
    if (ctx.headerSent || !ctx.writable) return failure;
    ctx.status = error.httpStatus;
    for (const [k, v] of Object.entries(error.headers ?? {})) ctx.set(k, v);
    // A body left unread would keep the connection busy after the answer: close it instead.
    if (!ctx.req.complete) ctx.set('Connection', 'close');
    ctx.body = errorBody(error, ctx.state.errorFormat as ErrorFormat | undefined, ctx.status);
    return failure;
  }

  async listen(): Promise<{ url: string; port: number }> {
    const server = createLimitedServer(this.app.callback(), { config: this.config.server, proxies: this.proxies, logger: this.logger });
    this.server = server;
    this.io = new SocketServer(server, { serveClient: false, cors: { origin: false }, destroyUpgrade: false });
    if (this.config.server.redisUrl) this.realtimeCluster = await joinRealtimeCluster(this.io, this.config.server.redisUrl, this.logger);
    this.realtime.attach(this.io, {
      authenticate: (request) => this.authentication.authenticate(request),
      authenticationInstalled: () => this.authentication.installed,
      authorizeRoom: (principal, room) => this.hookCalls.call('realtime.authorize', { principal: principal ?? null, room }),
      clientAddress: (peer, forwardedFor) => this.proxies.clientAddress(peer, forwardedFor),
      limits: this.config.server.realtime,
      logger: this.logger,
    });
    if (!this.authentication.installed)
      this.logger.warn('no authentication extension is installed: socket.io accepts anonymous clients, and routes that require authentication answer 401');
    this.webSockets.attach(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.config.server.port, this.config.server.host, () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    const host = this.config.server.host.includes(':') ? `[${this.config.server.host}]` : this.config.server.host;
    return { url: `http://${host}:${port}`, port };
  }

  /** Stops taking requests and waits (bounded) for the ones in flight. */
  async drain(timeoutMs: number): Promise<boolean> {
    const drained = this.admission.drain(timeoutMs);
    this.server?.close();
    this.io?.disconnectSockets(true);
    this.webSockets.closeAll(1001, 'server shutting down');
    return drained;
  }

  async close(): Promise<void> {
    this.webSockets.terminate();
    this.io?.close();
    await this.realtimeCluster?.close();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
