import { randomUUID } from 'node:crypto';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { AionError, type HttpRequestData, type HttpResponseData, type ServerSentEvent } from '@aion/extension-api';
import { callerKey } from '../gatekeeper.js';

export interface McpHttpOptions {
  /** Browser origins allowed besides the server's own; a request without Origin is not from a browser. */
  allowedOrigins: readonly string[];
  sessionIdleMs: number;
  maxSessions: number;
}

interface Session {
  transport: WebStandardStreamableHTTPServerTransport;
  server: Server;
  owner: string;
  lastSeen: number;
}

const FORWARDED_HEADERS = ['accept', 'content-type', 'mcp-session-id', 'mcp-protocol-version', 'last-event-id'];

function jsonRpcError(status: number, code: number, message: string): HttpResponseData {
  return { status, body: { jsonrpc: '2.0', error: { code, message }, id: null } };
}

/** Server-sent events out of an SSE byte stream (comments, such as keep-alives, are dropped). */
async function* readEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<ServerSentEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event: ServerSentEvent = { data: '' };
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (!line || line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'data') data.push(value);
          else if (field === 'event') event.event = value;
          else if (field === 'id') event.id = value;
          else if (field === 'retry' && /^\d+$/.test(value)) event.retry = Number(value);
        }
        if (data.length === 0) continue;
        event.data = data.join('\n');
        yield event;
      }
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

/**
 * The MCP Streamable HTTP endpoint on `/mcp`, over the kernel's routes: each session has its own
 * SDK transport and server, bound to the principal that opened it. POST answers JSON; GET opens the
 * session's event stream (where `notifications/tools/list_changed` arrives); DELETE ends it.
 */
export class McpHttpEndpoint {
  private readonly sessions = new Map<string, Session>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly createServer: () => Server,
    private readonly options: McpHttpOptions,
  ) {
    this.sweeper = setInterval(() => this.sweep(), Math.min(60_000, options.sessionIdleMs));
    this.sweeper.unref();
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  async handle(request: HttpRequestData): Promise<HttpResponseData> {
    this.checkOrigin(request);
    const principal = request.principal;
    if (!principal) throw new AionError('UNAUTHENTICATED', '/mcp requires authentication.');
    const owner = callerKey(principal);
    const sessionId = request.headers['mcp-session-id'];
    let session: Session | undefined;
    if (sessionId) {
      session = this.sessions.get(sessionId);
      if (!session || session.owner !== owner) return jsonRpcError(404, -32001, 'Session not found');
    } else if (request.method === 'POST' && isInitializeRequest(request.body)) {
      if (this.sessions.size >= this.options.maxSessions) this.sweep(true);
      if (this.sessions.size >= this.options.maxSessions)
        throw new AionError('SERVICE_UNAVAILABLE', 'Too many MCP sessions are open; retry later.', { headers: { 'Retry-After': '5' } });
      session = await this.open(owner);
    } else {
      return jsonRpcError(400, -32000, 'Bad Request: send initialize first, or the Mcp-Session-Id header of an open session');
    }
    session.lastSeen = Date.now();

    const headers = new Headers();
    for (const name of FORWARDED_HEADERS) if (request.headers[name]) headers.set(name, request.headers[name]!);
    const hasBody = request.method === 'POST';
    const webRequest = new Request(`http://aion.local${request.path}`, {
      method: request.method,
      headers,
      ...(hasBody ? { body: request.body !== undefined ? JSON.stringify(request.body) : (request.rawBody ?? '') } : {}),
    });
    const response = await session.transport.handleRequest(webRequest, {
      ...(request.body !== undefined ? { parsedBody: request.body } : {}),
      authInfo: { token: '', clientId: principal.sub, scopes: principal.scopes, extra: { principal } },
    });
    return this.toResponse(response);
  }

  /** Tells every open session that the tool list changed. */
  async notifyToolsChanged(): Promise<void> {
    await Promise.all([...this.sessions.values()].map((s) => s.server.sendToolListChanged().catch(() => undefined)));
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    const all = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(all.map((s) => s.transport.close().catch(() => undefined)));
  }

  private async open(owner: string): Promise<Session> {
    const server = this.createServer();
    let session!: Session;
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      enableJsonResponse: true,
      onsessioninitialized: (id) => void this.sessions.set(id, session),
      onsessionclosed: (id) => void this.sessions.delete(id),
    });
    session = { transport, server, owner, lastSeen: Date.now() };
    transport.onclose = () => {
      if (transport.sessionId) this.sessions.delete(transport.sessionId);
    };
    await server.connect(transport);
    return session;
  }

  private async toResponse(response: Response): Promise<HttpResponseData> {
    const headers: Record<string, string> = {};
    response.headers.forEach((value, name) => {
      if (name !== 'content-type' && name !== 'content-length' && name !== 'connection') headers[name] = value;
    });
    if ((response.headers.get('content-type') ?? '').startsWith('text/event-stream') && response.body) {
      return { status: response.status, headers, stream: readEvents(response.body) };
    }
    const text = await response.text();
    if (!text) return { status: response.status, headers };
    return { status: response.status, headers, body: JSON.parse(text) };
  }

  private checkOrigin(request: HttpRequestData): void {
    const origin = request.headers.origin;
    if (!origin) return;
    let host: string;
    try {
      host = new URL(origin).host;
    } catch {
      throw new AionError('FORBIDDEN', 'The Origin header is not a valid origin.');
    }
    // The server's own page on a loopback address; a rebound DNS name never passes this.
    const loopback = /^(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/.test(host);
    if ((loopback && host === request.headers.host) || this.options.allowedOrigins.includes(origin)) return;
    throw new AionError('FORBIDDEN', `Requests from origin ${origin} are not allowed on /mcp; add it to mcp.allowedOrigins.`);
  }

  private sweep(force = false): void {
    const cutoff = Date.now() - (force ? this.options.sessionIdleMs / 4 : this.options.sessionIdleMs);
    for (const [id, s] of this.sessions) {
      if (s.lastSeen < cutoff) {
        this.sessions.delete(id);
        void s.transport.close().catch(() => undefined);
      }
    }
  }
}
