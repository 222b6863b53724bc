import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inject, injectable } from 'inversify';
import type { IncomingMessage, ServerResponse } from 'node:http';
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
import { errorBody, requestIdFrom } from './errorResponse.js';
import { EXTENSIONS_WRITE_SCOPE, extensionsRoute } from './extensionsRoute.js';
import { EXTENSIONS_READ_SCOPE } from './authentication.js';
import { NetworkIsolation } from '../hosts/networkIsolation.js';
import { healthRoutes } from './health.js';
import { RealtimeService } from './realtimeService.js';
import { createLimitedServer } from './serverLimits.js';
import { WebSocketBridge } from './webSocketBridge.js';
import { EdgeExchange, respond, type RouteHandler } from './exchange.js';
import { RouteTable, requestTarget } from './routeTable.js';
import { Telemetry } from '../telemetry/telemetry.js';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, propagation, trace } from '@opentelemetry/api';
import { REQUEST_ID_KEY } from '@aion/host-runtime';

const tracer = () => trace.getTracer('aion.kernel');

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

/** One http.Server carrying the routes (REST, SSE), WebSocket routes and socket.io; wires the edge's parts together. */
@injectable()
export class HttpEdge {
  private readonly routes = new RouteTable<RouteHandler>();
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

  /** Mounts the kernel's routes and every route declared by a usable extension. */
  build(): void {
    const routes = this.routes;
    const status = { config: this.config, registry: this.registry, contributions: this.contributions, hosts: this.hosts, network: this.network };
    this.contributions.addKernelRoutes(KERNEL_ROUTES);
    healthRoutes(routes, {
      ...status,
      authentication: this.authentication,
      readiness: () => ({ ready: this.ready, draining: this.admission.isDraining }),
      callHook: (hook, payload) => this.hookCalls.call(hook, payload),
    });
    extensionsRoute(routes, { ...status, authentication: this.authentication, activation: this.activation });
    for (const record of this.registry.all()) {
      if (record.state === 'skipped') continue;
      for (const route of record.manifest.contributes?.routes ?? []) {
        if (route.websocket) {
          this.webSockets.add(record.id, route);
          routes.add('GET', route.path, () => {
            throw new AionError('UPGRADE_REQUIRED', `${route.path} is a WebSocket endpoint: connect with a WebSocket client`, {
              status: 426,
              headers: { Upgrade: 'websocket' },
            });
          });
        } else routes.add(route.method, route.path, (exchange) => this.dispatcher.dispatch(exchange, record.id, route));
      }
    }
  }

  /**
   * One HTTP request: its id and client address, a span (when a tracer records), the route it
   * matches or the error it earns, then one access line, a metric and the span's end.
   */
  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = requestIdFrom(req.headers['x-request-id']);
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const clientIp = this.proxies.clientAddress(req.socket.remoteAddress, req.headers['x-forwarded-for']);
    const started = performance.now();
    // Without the query string: it may carry a token.
    const target = requestTarget(url);
    const exchange = new EdgeExchange(req, res, method, target?.path ?? url.split('?')[0]!, target?.search ?? '', requestId, clientIp);
    exchange.set('x-request-id', requestId);
    // The request id and (when a tracer is installed) the request's span follow every call it makes.
    const span = tracer().startSpan(
      method,
      { kind: SpanKind.SERVER, attributes: { 'http.request.method': method, 'aion.request_id': requestId } },
      propagation.extract(ROOT_CONTEXT, req.headers),
    );
    const recording = span.isRecording();
    let active = ROOT_CONTEXT.setValue(REQUEST_ID_KEY, requestId);
    if (recording) active = trace.setSpan(active, span);
    let failure: { code: string; cause: string } | undefined;
    try {
      if (!target) throw new AionError(ErrorCodes.BAD_REQUEST, 'the request target is not a valid path');
      await context.with(active, () => this.route(exchange));
    } catch (err) {
      failure = this.writeError(exchange, err);
    }
    const ms = performance.now() - started;
    // The kernel's own time, so a client can tell it from the network's and its own (W3C Server-Timing).
    if (!exchange.headersSent) exchange.set('server-timing', `app;dur=${ms.toFixed(2)}`);
    try {
      respond(exchange);
    } catch (err) {
      // A header an extension set that Node refuses to send: the client still gets an answer, without the route's headers.
      if (exchange.headersSent) res.destroy();
      else {
        exchange.clearHeaders();
        exchange.set('server-timing', `app;dur=${ms.toFixed(2)}`);
        failure = this.writeError(exchange, err);
        respond(exchange);
      }
    }
    const route = exchange.route;
    const errorCode = failure?.code;
    // One access line per request; a failed one also says why.
    const entry = {
      requestId,
      ip: clientIp,
      method,
      path: exchange.path,
      route: route ?? null,
      status: exchange.status,
      ms: Math.round(ms * 10) / 10,
      principal: exchange.principal?.sub ?? null,
      ...(failure ? { code: failure.code, cause: failure.cause } : {}),
    };
    if (exchange.status >= 500) this.logger.warn(entry, 'request failed');
    else this.logger.info(entry, 'request');
    this.telemetry.recordHttp(method, route ?? 'unmatched', exchange.status, ms, errorCode);
    if (recording) {
      if (route) span.updateName(`${method} ${route}`);
      span.setAttributes({
        'http.route': route ?? 'unmatched',
        'http.response.status_code': exchange.status,
        ...(errorCode ? { 'aion.error.code': errorCode } : {}),
      });
      if (exchange.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: errorCode });
    }
    span.end();
  }

  /** A failure outside every answer path (the access log, metrics): logged, and the connection closed rather than the process. */
  private lastResort(res: ServerResponse, err: unknown): void {
    try {
      this.logger.error({ err }, 'handling a request failed');
      if (res.headersSent) return void res.destroy();
      const body = JSON.stringify(errorBody({ code: ErrorCodes.INTERNAL, message: 'internal error' }));
      res.writeHead(500, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' }).end(body);
    } catch {
      res.destroy();
    }
  }

  /** The matched route's handler; 405 with `Allow` for a known path and another method (OPTIONS: 204 with `Allow`), else 404. */
  private route(exchange: EdgeExchange): void | Promise<void> {
    this.admission.refuseIfDraining();
    const match = this.routes.match(exchange.method, exchange.path);
    if (match && 'handler' in match) {
      exchange.route = match.route;
      exchange.params = match.params;
      return match.handler(exchange);
    }
    if (match) {
      exchange.set('allow', match.allowed.join(', '));
      if (exchange.method === 'OPTIONS') {
        exchange.status = 204;
        return;
      }
      throw new AionError(ErrorCodes.METHOD_NOT_ALLOWED, `${exchange.method} is not allowed on ${exchange.path}: use ${match.allowed.join(', ')}`, {
        details: { allowed: match.allowed },
      });
    }
    throw new AionError(ErrorCodes.NOT_FOUND, `no route ${exchange.method} ${exchange.path}`);
  }

  /** Sets the error's status and JSON shape (the route's error format) as the answer; returns its stable code and message for the access log. */
  private writeError(exchange: EdgeExchange, err: unknown): { code: string; cause: string } {
    let error: AionError;
    if (isAionError(err)) error = err;
    else {
      this.logger.error({ requestId: exchange.requestId, err }, 'unexpected error');
      error = new AionError(ErrorCodes.INTERNAL, `internal error (request ${exchange.requestId})`);
    }
    const failure = { code: error.code, cause: error.message };
    if (exchange.headersSent || !exchange.writable) {
      exchange.responded = true;
      return failure;
    }
    exchange.responded = false;
    exchange.status = error.httpStatus;
    for (const [k, v] of Object.entries(error.headers ?? {})) exchange.set(k, v);
    // A body left unread would keep the connection busy after the answer: close it instead.
    if (!exchange.req.complete) exchange.set('connection', 'close');
    exchange.set('content-type', 'application/json; charset=utf-8');
    exchange.body = errorBody(error, exchange.errorFormat, exchange.status);
    return failure;
  }

  async listen(): Promise<{ url: string; port: number }> {
    const server = createLimitedServer((req, res) => void this.handle(req, res).catch((err: unknown) => this.lastResort(res, err)), {
      config: this.config.server,
      proxies: this.proxies,
      logger: this.logger,
    });
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
