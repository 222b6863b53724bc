/**
 * Testing utility, not used by providers at run time: the vendor-independent half of a fake vendor
 * server on 127.0.0.1 — start and stop, request recording, connection counting, replies in order,
 * and the means to misbehave (never answer, stall, cut the connection). Each provider's
 * `src/testing.ts` adds its vendor's wire format on top. Import it as `@aion/provider-kit/testing`.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  /** The request target as sent: path and query string. */
  url: string;
  /** Without the query string. */
  path: string;
  query: Record<string, string>;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body, when there was one. */
  body: any;
  /** Resolves when the client closed the connection before the answer was complete. */
  disconnected: Promise<void>;
  readonly clientDisconnected: boolean;
}

/** Replies every fake server understands; each vendor adds its answer kinds and its error body. */
export type CommonFakeReply =
  /** An HTTP error; `body` defaults to the vendor's error object. */
  | { kind: 'status'; status: number; body?: unknown; headers?: Record<string, string> }
  /** Accepts the request and never answers. */
  | { kind: 'hang' }
  /** Streams these pieces of text, then destroys the socket. */
  | { kind: 'cut'; text: string[] }
  /** Streams these pieces of text, then sends nothing more and keeps the connection open. */
  | { kind: 'stall'; text: string[] };

/** What every fake server accepts, whatever its vendor. */
export interface FakeServerOptions<Reply> {
  /** Answers in order; the last one answers every later request. */
  replies?: Reply[];
  /** Computes each answer instead; wins over `replies`. */
  reply?: (request: RecordedRequest) => Reply;
  /** Pause between streamed chunks. */
  chunkDelayMs?: number;
  /** Pause before the response head. */
  firstByteDelayMs?: number;
}

export interface FakeServer {
  /** Base URL to configure: the origin and `basePath`. */
  url: string;
  /** `http://127.0.0.1:<port>`. */
  origin: string;
  /** Every request received, oldest first. */
  requests: RecordedRequest[];
  /** TCP connections accepted so far (fewer than requests when clients reuse connections). */
  readonly connections: number;
  close(): Promise<void>;
}

/** A streamed 200 answer in progress. */
export interface FakeStream {
  /** One streamed chunk: waits `chunkDelayMs`, then writes; resolves once written, or at once when the connection is gone. */
  send(text: string): Promise<void>;
  /** Writes at once, without the pause. */
  write(text: string): Promise<void>;
  /** Destroys the socket: the client sees the connection close before the answer is complete. */
  cut(): void;
  end(): void;
}

/** One request being answered. To hang, return without answering; to stall, stop sending. */
export interface FakeExchange<Reply> {
  request: RecordedRequest;
  res: ServerResponse;
  /** The next reply of `replies` (or `reply`'s answer); called only for the requests that consume one. */
  nextReply(): Reply;
  /** Sends the head of a 200 answer with these headers, then streams its body. */
  stream(headers: Record<string, string>): FakeStream;
}

export interface FakeServerSetup<Reply> extends FakeServerOptions<Reply> {
  /** Answers every request when neither `replies` nor `reply` is set. */
  defaultReply: Reply;
  /** Appended to the origin to make `url`, e.g. `/v1` where clients configure the version segment. */
  basePath?: string;
  handle(exchange: FakeExchange<Reply>): void | Promise<void>;
}

/**
 * A whole (not streamed) answer that misbehaves as `reply` asks: `cut` writes the start of `bodies.partial`
 * and drops the connection, `stall` never answers, `malformed` answers 200 with its `raw` (else
 * `bodies.malformed`). Answers false for any other reply, which the vendor then answers itself.
 */
export async function misbehaveWhole(
  exchange: FakeExchange<unknown>,
  reply: { kind: string; raw?: string },
  bodies: { contentType: string; partial: string; malformed: string },
): Promise<boolean> {
  if (reply.kind === 'cut') {
    const partial = exchange.stream({ 'content-type': bodies.contentType });
    await partial.write(bodies.partial);
    partial.cut();
    return true;
  }
  if (reply.kind === 'malformed') {
    exchange.res.writeHead(200, { 'content-type': bodies.contentType });
    exchange.res.end(reply.raw ?? bodies.malformed);
    return true;
  }
  return reply.kind === 'stall';
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Starts a server on 127.0.0.1 port 0 that records every request and hands it to `setup.handle`. */
export async function startFakeServer<Reply>(setup: FakeServerSetup<Reply>): Promise<FakeServer> {
  const requests: RecordedRequest[] = [];
  let replyCount = 0;
  const nextReply = (request: RecordedRequest): Reply => {
    if (setup.reply) return setup.reply(request);
    const replies = setup.replies?.length ? setup.replies : [setup.defaultReply];
    return replies[Math.min(replyCount++, replies.length - 1)]!;
  };

  const server = createServer(async (req, res) => {
    const request = await record(req, res);
    requests.push(request);
    if (setup.firstByteDelayMs) await sleep(setup.firstByteDelayMs);
    await setup.handle({ request, res, nextReply: () => nextReply(request), stream: (headers) => startStream(res, headers, setup.chunkDelayMs) });
  });

  let connections = 0;
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `${origin}${setup.basePath ?? ''}`,
    origin,
    requests,
    get connections() {
      return connections;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function record(req: IncomingMessage, res: ServerResponse): Promise<RecordedRequest> {
  let clientDisconnected = false;
  let markDisconnected!: () => void;
  const disconnected = new Promise<void>((resolve) => (markDisconnected = resolve));
  res.on('close', () => {
    if (res.writableFinished) return;
    clientDisconnected = true;
    markDisconnected();
  });
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = text;
  }
  const url = new URL(req.url ?? '/', 'http://fake');
  return {
    method: req.method ?? 'GET',
    url: req.url ?? '/',
    path: url.pathname,
    query: Object.fromEntries(url.searchParams),
    headers: req.headers,
    body,
    disconnected,
    get clientDisconnected() {
      return clientDisconnected;
    },
  };
}

function startStream(res: ServerResponse, headers: Record<string, string>, chunkDelayMs = 0): FakeStream {
  res.writeHead(200, headers);
  res.flushHeaders();
  const write = (text: string) => new Promise<void>((resolve) => (res.destroyed ? resolve() : res.write(text, () => resolve())));
  return {
    send: async (text) => {
      if (chunkDelayMs) await sleep(chunkDelayMs);
      await write(text);
    },
    write,
    cut: () => res.socket?.destroy(),
    end: () => res.end(),
  };
}

/** A whole JSON answer; `headers` add to or replace `content-type: application/json`. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

/** `text` in `count` pieces of about equal length (one empty piece for empty text), for streaming a value in fragments. */
export function pieces(text: string, count: number): string[] {
  const size = Math.max(1, Math.ceil(text.length / count));
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out.length ? out : [''];
}

/**
 * A deterministic embedding of `text` with `dimensions` numbers (default 4), so tests can check which
 * input landed where: the first is the text's length, the rest its character codes folded in.
 */
export function fakeEmbedding(text: string, dimensions = 4): number[] {
  const vector = new Array<number>(dimensions).fill(0);
  vector[0] = text.length;
  for (let i = 0; i < text.length; i++) vector[1 + (i % Math.max(1, dimensions - 1))]! += text.charCodeAt(i) / 1000;
  return vector.map((x) => Math.round(x * 1000) / 1000);
}

/** `[vendor:NNN]` in any input asks a fake server to answer the embedding request with that status. */
export function embeddingFailure(inputs: unknown, vendor: string): number | undefined {
  const re = new RegExp(`\\[${vendor}:(\\d{3})\\]`);
  for (const text of Array.isArray(inputs) ? inputs : [inputs]) {
    const found = typeof text === 'string' ? re.exec(text) : null;
    if (found) return Number(found[1]);
  }
  return undefined;
}
