import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, createServer as createListener, type Server as Listener, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AionError, ErrorCodes } from '@aion/extension-api';
import type { Logger } from '../logging.js';
import { decideEgress, type NetworkPolicy, type Resolver } from './egressPolicy.js';

export interface EgressLimits {
  /** Connections one host may hold open to its proxy at once; more are answered 503. */
  maxConnections: number;
  /** A tunnel or request with no traffic either way for this long is closed. */
  idleTimeoutMs: number;
  /** Resolving and connecting to the target, together. */
  connectTimeoutMs: number;
}

export const defaultEgressLimits: EgressLimits = { maxConnections: 256, idleTimeoutMs: 120_000, connectTimeoutMs: 10_000 };

export interface EgressProxyOptions {
  extensionId: string;
  policy: NetworkPolicy;
  logger: Logger;
  limits?: Partial<EgressLimits>;
  resolve?: Resolver;
}

/** Headers that describe one hop, not the message: never forwarded. */
const hopByHop = new Set(['connection', 'proxy-connection', 'proxy-authorization', 'proxy-authenticate', 'keep-alive', 'te', 'trailer', 'upgrade']);

function forwardedHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const named = String(headers.connection ?? '')
    .split(',')
    .map((h) => h.trim().toLowerCase());
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !hopByHop.has(name) && !named.includes(name)));
}

/** `host:port` of a CONNECT request; IPv6 literals in brackets. */
function parseAuthority(authority: string): { host: string; port: number } | undefined {
  const match = /^(\[[^\]]+\]|[^:[\]]+):(\d{1,5})$/.exec(authority);
  return match ? { host: match[1]!, port: Number(match[2]) } : undefined;
}

/**
 * The kernel's egress proxy for one isolated host: an HTTP proxy (CONNECT tunnels, absolute-form
 * plain HTTP) on a unix socket only that host is told about, so every connection on it speaks for
 * one extension. Each target is checked against the extension's allow-list, resolved here, and
 * dialled at the address that was checked.
 */
export class EgressProxy {
  readonly socketPath: string;
  private readonly directory: string;
  private readonly listener: Listener;
  private readonly server: Server;
  private readonly upstreamAgent: Agent;
  private readonly limits: EgressLimits;
  /** Every connection on the socket, admitted or being refused. */
  private readonly connections = new Set<Socket>();
  private readonly clients = new Set<Socket>();
  private readonly tunnels = new Set<Socket>();

  private constructor(private readonly options: EgressProxyOptions) {
    this.limits = { ...defaultEgressLimits, ...options.limits };
    // A private directory (0700) and an unguessable name: the socket is reachable by path from inside the namespace.
    this.directory = mkdtempSync(join(tmpdir().length > 60 ? '/tmp' : tmpdir(), 'aion-egress-'));
    this.socketPath = join(this.directory, `${randomBytes(8).toString('hex')}.sock`);
    this.upstreamAgent = new Agent({ keepAlive: true, maxSockets: this.limits.maxConnections });
    this.server = createServer({ requestTimeout: 0 }, (req, res) => void this.forward(req, res));
    this.server.timeout = this.limits.idleTimeoutMs;
    this.server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => void this.tunnel(req, socket, head));
    this.server.on('clientError', (_err, socket: Socket) => socket.destroy());
    // Connections are counted before the HTTP server sees them, so one over the limit never reaches a target.
    this.listener = createListener((socket) => this.admit(socket));
  }

  static async start(options: EgressProxyOptions): Promise<EgressProxy> {
    const proxy = new EgressProxy(options);
    await new Promise<void>((resolve, reject) => {
      proxy.listener.once('error', reject);
      proxy.listener.listen(proxy.socketPath, () => resolve());
    });
    return proxy;
  }

  /** Stops listening, cuts every open connection and removes the socket. */
  async close(): Promise<void> {
    for (const socket of [...this.connections, ...this.tunnels]) socket.destroy();
    this.upstreamAgent.destroy();
    await new Promise<void>((resolve) => this.listener.close(() => resolve()));
    rmSync(this.directory, { recursive: true, force: true });
  }

  private admit(socket: Socket): void {
    socket.on('error', () => socket.destroy());
    this.connections.add(socket);
    socket.once('close', () => this.connections.delete(socket));
    if (this.clients.size < this.limits.maxConnections) {
      this.clients.add(socket);
      socket.once('close', () => this.clients.delete(socket));
      return void this.server.emit('connection', socket);
    }
    const error = new AionError(
      ErrorCodes.SERVICE_UNAVAILABLE,
      `${this.options.extensionId} holds ${this.limits.maxConnections} connections through the egress proxy, the most it may; close some and retry`,
    );
    this.options.logger.warn({ extension: this.options.extensionId, code: error.code }, error.message);
    // Read and drop whatever the client sends until it has the answer and goes.
    socket.resume();
    socket.setTimeout(this.limits.connectTimeoutMs, () => socket.destroy());
    socket.end(rawResponse(503, 'Service Unavailable', error));
  }

  private refusal(host: string, port: number, reason: string): AionError {
    const target = `${host}:${port}`;
    const { extensionId } = this.options;
    const error = new AionError(
      ErrorCodes.NETWORK_DENIED,
      `${extensionId} may not connect to ${target}: ${reason}. Add it to aion.permissions.network in the extension's manifest, or grant it with permissions.grants["${extensionId}"].network in the server configuration`,
      {
        details: { extension: extensionId, host, port },
      },
    );
    this.options.logger.warn({ extension: extensionId, code: error.code, target }, `egress refused: ${error.message}`);
    return error;
  }

  private async dial(host: string, port: number): Promise<Socket | AionError> {
    const decision = await decideEgress(this.options.policy, host, port, this.options.resolve);
    if (!decision.allowed) return this.refusal(host, port, decision.reason);
    let lastError: Error | undefined;
    for (const address of decision.addresses) {
      try {
        return await this.connectTo(address, port);
      } catch (err) {
        lastError = err as Error;
      }
    }
    return new AionError(
      ErrorCodes.NETWORK_UNREACHABLE,
      `could not connect to ${host}:${port} (${(lastError as NodeJS.ErrnoException | undefined)?.code ?? lastError?.message ?? 'no address'})`,
      { details: { host, port } },
    );
  }

  private connectTo(address: string, port: number): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: address, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(Object.assign(new Error(`no connection within ${this.limits.connectTimeoutMs} ms`), { code: 'ETIMEDOUT' }));
      }, this.limits.connectTimeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(socket);
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  private async tunnel(req: IncomingMessage, client: Socket, head: Buffer): Promise<void> {
    client.on('error', () => client.destroy());
    const target = parseAuthority(req.url ?? '');
    if (!target) {
      client.end(rawResponse(400, 'Bad Request', new AionError(ErrorCodes.BAD_REQUEST, `CONNECT needs host:port, got "${req.url}"`)));
      return;
    }
    const upstream = await this.dial(target.host, target.port);
    if (upstream instanceof AionError) {
      client.end(rawResponse(upstream.httpStatus, upstream.code === ErrorCodes.NETWORK_DENIED ? 'Forbidden' : 'Bad Gateway', upstream));
      return;
    }
    if (client.destroyed) return void upstream.destroy();
    this.tunnels.add(upstream);
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    upstream.once('close', () => {
      this.tunnels.delete(upstream);
      client.destroy();
    });
    upstream.on('error', closeBoth);
    client.once('close', () => upstream.destroy());
    for (const side of [client, upstream]) side.setTimeout(this.limits.idleTimeoutMs, closeBoth);
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) upstream.write(head);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  private async forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? '');
    } catch {
      return sendError(res, new AionError(ErrorCodes.BAD_REQUEST, `the egress proxy takes absolute-form http:// requests and CONNECT, not "${req.url}"`));
    }
    if (url.protocol !== 'http:')
      return sendError(res, new AionError(ErrorCodes.BAD_REQUEST, `the egress proxy forwards plain http:// requests; use CONNECT for ${url.protocol}`));
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(url.port || 80);
    const decision = await decideEgress(this.options.policy, host, port, this.options.resolve);
    if (!decision.allowed) return sendError(res, this.refusal(host, port, decision.reason));
    const upstream = httpRequest({
      host: decision.addresses[0],
      port,
      method: req.method,
      path: `${url.pathname}${url.search}`,
      headers: forwardedHeaders(req.headers),
      agent: this.upstreamAgent,
    });
    upstream.setTimeout(this.limits.idleTimeoutMs, () =>
      upstream.destroy(Object.assign(new Error(`no traffic for ${this.limits.idleTimeoutMs} ms`), { code: 'ETIMEDOUT' })),
    );
    upstream.on('response', (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, forwardedHeaders(answer.headers));
      answer.pipe(res);
    });
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (res.headersSent) return void res.destroy();
      sendError(
        res,
        new AionError(ErrorCodes.NETWORK_UNREACHABLE, `could not reach ${host}:${port} (${err.code ?? err.message})`, { details: { host, port } }),
      );
    });
    res.once('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  }
}

function sendError(res: ServerResponse, error: AionError): void {
  const body = JSON.stringify({ error: error.toJSON() });
  res.writeHead(error.httpStatus, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function rawResponse(status: number, statusText: string, error: AionError): string {
  const body = JSON.stringify({ error: error.toJSON() });
  return `HTTP/1.1 ${status} ${statusText}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}
