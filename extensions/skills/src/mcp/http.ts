import { randomUUID } from 'node:crypto';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { EventSourceParserStream } from 'eventsource-parser/stream';
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
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
  /** When the shared record's `seenAt` was last renewed from here. */
  sharedAt: number;
}

/** What every kernel needs to go on with a session another opened: whose it is and how it was initialized. */
export interface SharedSession {
  owner: string;
  /** The `initialize` request's params, replayed to a kernel that takes the session up. */
  init: unknown;
  seenAt: number;
}

/**
 * Sessions as every kernel sharing the store sees them (the extension's `ctx.state` in aion.storage):
 * a session opened on one kernel goes on on another, and one ended anywhere is ended everywhere.
 */
export interface SharedSessions {
  get(id: string): Promise<SharedSession | undefined>;
  put(id: string, session: SharedSession): Promise<void>;
  delete(id: string): Promise<void>;
}

const FORWARDED_HEADERS = ['accept', 'content-type', 'mcp-session-id', 'mcp-protocol-version', 'last-event-id'];

function jsonRpcError(status: number, code: number, message: string): HttpResponseData {
  return { status, body: { jsonrpc: '2.0', error: { code, message }, id: null } };
}

/** Server-sent events out of an SSE byte stream (comments, such as keep-alives, are dropped). */
async function* readEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<ServerSentEvent> {
  const reader = body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream()).getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      yield { data: value.data, ...(value.event ? { event: value.event } : {}), ...(value.id ? { id: value.id } : {}) };
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
  /** Sessions being taken up from the shared store: concurrent requests share one replay. */
  private readonly resuming = new Map<string, Promise<Session | undefined>>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly createServer: () => Server,
    private readonly options: McpHttpOptions,
    private readonly shared?: SharedSessions,
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
    const authInfo = { token: '', clientId: principal.sub, scopes: principal.scopes, extra: { principal } };
    let session: Session | undefined;
    if (sessionId) {
      session = await this.find(sessionId, owner, authInfo);
      if (!session || session.owner !== owner) return jsonRpcError(404, -32001, 'Session not found');
    } else if (request.method === 'POST' && isInitializeRequest(request.body)) {
      this.makeRoom();
      session = await this.open(owner, () => randomUUID());
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
    const response = await session.transport.handleRequest(webRequest, { ...(request.body !== undefined ? { parsedBody: request.body } : {}), authInfo });
    const opened = !sessionId && session.transport.sessionId;
    if (opened && this.shared && response.ok) {
      await this.shared.put(opened, { owner, init: (request.body as { params?: unknown }).params, seenAt: session.lastSeen });
    }
    return this.toResponse(response);
  }

  /**
   * The session `id`: this kernel's own, or one opened on another kernel sharing the store, taken up
   * here by replaying its `initialize`. With a shared store a session ended or expired anywhere is gone here too.
   */
  private async find(id: string, owner: string, authInfo: AuthInfo): Promise<Session | undefined> {
    const local = this.sessions.get(id);
    if (!this.shared) return local;
    const record = await this.shared.get(id);
    if (!record || record.owner !== owner || record.seenAt < Date.now() - this.options.sessionIdleMs) {
      if (local) this.drop(id, local);
      if (record && record.owner === owner) await this.shared.delete(id);
      return undefined;
    }
    const now = Date.now();
    if (local) {
      // Renewed now and then, not on every request: a session idles out everywhere at about the same time.
      if (now - local.sharedAt > this.options.sessionIdleMs / 4) {
        local.sharedAt = now;
        await this.shared.put(id, { ...record, seenAt: now });
      }
      return local;
    }
    let resume = this.resuming.get(id);
    if (!resume) {
      resume = this.resume(id, owner, record.init, authInfo).finally(() => this.resuming.delete(id));
      this.resuming.set(id, resume);
    }
    return resume;
  }

  /** Opens session `id` here as its `initialize` opened it elsewhere, without the client seeing the replay. */
  private async resume(id: string, owner: string, init: unknown, authInfo: AuthInfo): Promise<Session | undefined> {
    this.makeRoom();
    const session = await this.open(owner, () => id);
    const post = (message: Record<string, unknown>, headers: Record<string, string> = {}) =>
      session.transport.handleRequest(
        new Request('http://aion.local/mcp', {
          method: 'POST',
          headers: { accept: 'application/json, text/event-stream', 'content-type': 'application/json', ...headers },
          body: JSON.stringify(message),
        }),
        { parsedBody: message, authInfo },
      );
    const initialize = { jsonrpc: '2.0', id: `aion-resume-${id}`, method: 'initialize', params: init };
    const answer = await post(initialize);
    const body = (await answer.json().catch(() => undefined)) as { result?: { protocolVersion?: string } } | undefined;
    if (!answer.ok || !body?.result) {
      this.drop(id, session);
      return undefined;
    }
    const version = body.result.protocolVersion;
    await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, { 'mcp-session-id': id, ...(version ? { 'mcp-protocol-version': version } : {}) });
    return session;
  }

  private makeRoom(): void {
    if (this.sessions.size >= this.options.maxSessions) this.sweep(true);
    if (this.sessions.size >= this.options.maxSessions)
      throw new AionError('SERVICE_UNAVAILABLE', 'Too many MCP sessions are open; retry later.', { headers: { 'Retry-After': '5' } });
  }

  private drop(id: string, session: Session): void {
    this.sessions.delete(id);
    void session.transport.close().catch(() => undefined);
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

  private async open(owner: string, sessionId: () => string): Promise<Session> {
    const server = this.createServer();
    let session!: Session;
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: sessionId,
      enableJsonResponse: true,
      onsessioninitialized: (id) => void this.sessions.set(id, session),
      onsessionclosed: (id) => {
        this.sessions.delete(id);
        // A DELETE from the client ends the session on every kernel.
        void this.shared?.delete(id).catch(() => undefined);
      },
    });
    session = { transport, server, owner, lastSeen: Date.now(), sharedAt: Date.now() };
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
