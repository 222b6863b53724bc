import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import { parse as parseQuery } from 'node:querystring';
import type { Principal } from '@aion/extension-api';
import type { ErrorFormat } from './errorResponse.js';

/** Statuses that carry no body. */
const EMPTY_STATUSES = new Set([204, 205, 304]);
const LOOKS_LIKE_HTML = /^\s*</;

/**
 * One request at the edge and the answer being built for it: the request's parts as routes read
 * them, and a status, headers and body written once the route is done (`respond`). A route that
 * writes the response itself (an event stream) sets `responded`.
 */
export class EdgeExchange {
  /** 404 until a route answers. */
  status = 404;
  body: unknown = undefined;
  /** Response headers by lower-case name; sent with the status in one `writeHead`. */
  readonly responseHeaders: Record<string, string | string[]> = {};
  params: Record<string, string> = {};
  /** The declared route that matched (`/v1/things/:id`), for the access log, metrics and spans. */
  route?: string;
  principal?: Principal;
  /** How errors are answered: the matched route's `errorFormat`. */
  errorFormat?: ErrorFormat;
  /** True once the route wrote the response itself. */
  responded = false;
  private parsedQuery?: Record<string, string | string[]>;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly method: string,
    /** The request target's path, as sent (percent-encoded). */
    readonly path: string,
    /** The query string without its `?`. */
    readonly search: string,
    readonly requestId: string,
    /** The client, as `server.trustedProxies` resolves it. */
    readonly clientIp: string,
  ) {}

  get headers(): IncomingMessage['headers'] {
    return this.req.headers;
  }

  get query(): Record<string, string | string[]> {
    return (this.parsedQuery ??= this.search ? (parseQuery(this.search) as Record<string, string | string[]>) : {});
  }

  set(name: string, value: string | string[]): void {
    this.responseHeaders[name.toLowerCase()] = value;
  }

  setAll(headers: Record<string, string> | undefined): void {
    for (const name in headers) this.set(name, headers[name]!);
  }

  /** Forgets every response header but the request id. */
  clearHeaders(): void {
    for (const name of Object.keys(this.responseHeaders)) if (name !== 'x-request-id') delete this.responseHeaders[name];
  }

  get headersSent(): boolean {
    return this.res.headersSent;
  }

  /** Whether an answer can still be written: not ended, its socket still open. */
  get writable(): boolean {
    const res = this.res;
    if (res.writableEnded) return false;
    return !res.socket || res.socket.writable;
  }
}

/** A route's handler: it answers by setting the exchange's status, headers and body, or throws the error to answer with. */
export type RouteHandler = (exchange: EdgeExchange) => void | Promise<void>;

/**
 * Writes the exchange's answer, as a web framework would: an object as JSON (whatever type was set
 * before), a string as text (HTML when it looks like it) unless a type was set, bytes as `application/octet-stream`, no body as the status's reason; a
 * `null` body or an empty status sends nothing; a HEAD request gets the headers only.
 */
export function respond(exchange: EdgeExchange): void {
  if (exchange.responded || !exchange.writable) return;
  const headers = exchange.responseHeaders;
  let status = exchange.status;
  let body = exchange.body;
  if (body === null && !EMPTY_STATUSES.has(status)) exchange.status = status = 204;
  let payload: string | Uint8Array | undefined;
  if (EMPTY_STATUSES.has(status) || body === null) {
    delete headers['content-type'];
    delete headers['content-length'];
    delete headers['transfer-encoding'];
  } else {
    if (body === undefined) {
      body = STATUS_CODES[status] ?? String(status);
      headers['content-type'] = 'text/plain; charset=utf-8';
    }
    if (typeof body === 'string') {
      payload = body;
      headers['content-type'] ??= LOOKS_LIKE_HTML.test(body) ? 'text/html; charset=utf-8' : 'text/plain; charset=utf-8';
    } else if (body instanceof Uint8Array) {
      payload = body;
      headers['content-type'] ??= 'application/octet-stream';
    } else {
      // Always JSON: a type set earlier must not make a client read JSON as something else (HTML).
      payload = JSON.stringify(body);
      headers['content-type'] = 'application/json; charset=utf-8';
    }
    headers['content-length'] = String(typeof payload === 'string' ? Buffer.byteLength(payload) : payload.byteLength);
  }
  const res = exchange.res;
  res.writeHead(status, headers);
  if (payload === undefined || exchange.method === 'HEAD') res.end();
  else res.end(payload);
}
