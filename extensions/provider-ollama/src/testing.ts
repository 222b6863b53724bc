/**
 * Testing utility, not used by the provider itself: a fake Ollama server on 127.0.0.1 that speaks
 * the real `/api/chat` wire format (NDJSON lines, a final `done: true` line with token counts, tool
 * calls with object arguments, `{"error": …}` bodies, `/api/tags`) and can misbehave on purpose.
 * Import it as `@aion/ext-provider-ollama/testing`.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
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

export interface FakeOllamaToolCall {
  name: string;
  arguments: Record<string, unknown>;
  /** Sent only when set: Ollama versions before tool-call ids send none. */
  id?: string;
}

export type FakeOllamaReply =
  /** A normal answer; an array of text is streamed one element per line. */
  | { kind: 'answer'; text?: string | string[]; toolCalls?: FakeOllamaToolCall[]; doneReason?: string; promptEvalCount?: number; evalCount?: number }
  /** An HTTP error; `body` defaults to `{"error": "…"}`. */
  | { kind: 'status'; status: number; body?: unknown; headers?: Record<string, string> }
  /** Accepts the request and never answers. */
  | { kind: 'hang' }
  /** Streams these lines, then destroys the socket. */
  | { kind: 'cut'; text: string[] }
  /** Streams these lines, then sends nothing more and keeps the connection open. */
  | { kind: 'stall'; text: string[] }
  /** Streams these lines, then one that is not JSON (`raw`). */
  | { kind: 'malformed'; text?: string[]; raw?: string }
  /** Streams these lines, then `{"error": error}`, as Ollama does when generation fails midway. */
  | { kind: 'streamError'; text?: string[]; error: string };

export interface FakeOllamaOptions {
  /** Answers to chat requests in order; the last one answers every later request. */
  replies?: FakeOllamaReply[];
  /** Computes each answer instead; wins over `replies`. */
  reply?: (request: RecordedRequest) => FakeOllamaReply;
  /** Names listed by `GET /api/tags`. */
  models?: string[];
  /** When set, requests without `Authorization: Bearer <apiKey>` get 401. */
  apiKey?: string;
  /** Pause between streamed lines. */
  chunkDelayMs?: number;
  /** Pause before the response head. */
  firstByteDelayMs?: number;
}

export interface FakeOllama {
  /** Base URL to configure: `http://127.0.0.1:<port>`. */
  url: string;
  /** Every request received, oldest first. */
  requests: RecordedRequest[];
  /** TCP connections accepted so far (fewer than requests when clients reuse connections). */
  readonly connections: number;
  close(): Promise<void>;
}

const defaultReply: FakeOllamaReply = { kind: 'answer', text: ['Hello', ' from', ' the', ' fake.'] };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startFakeOllama(options: FakeOllamaOptions = {}): Promise<FakeOllama> {
  const requests: RecordedRequest[] = [];
  let chatCount = 0;
  const nextReply = (request: RecordedRequest): FakeOllamaReply => {
    if (options.reply) return options.reply(request);
    const replies = options.replies?.length ? options.replies : [defaultReply];
    return replies[Math.min(chatCount++, replies.length - 1)]!;
  };

  const server = createServer(async (req, res) => {
    const recorded = await record(req, res);
    requests.push(recorded);
    if (options.firstByteDelayMs) await sleep(options.firstByteDelayMs);
    if (options.apiKey !== undefined && req.headers.authorization !== `Bearer ${options.apiKey}`) return json(res, 401, { error: 'unauthorized' });
    if (req.method === 'GET' && recorded.path === '/api/tags') {
      const models = (options.models ?? ['llama3.1:latest']).map((name) => ({
        name,
        model: name,
        modified_at: '2025-01-01T00:00:00.000000000Z',
        size: 4920753328,
        digest: 'sha256:fake',
        details: { parent_model: '', format: 'gguf', family: 'llama', families: ['llama'], parameter_size: '8.0B', quantization_level: 'Q4_K_M' },
      }));
      return json(res, 200, { models });
    }
    if (req.method !== 'POST' || recorded.path !== '/api/chat') return json(res, 404, { error: 'not found' }, { 'content-type': 'text/plain' });
    if (typeof recorded.body !== 'object' || recorded.body === null) return json(res, 400, { error: 'invalid character looking for beginning of value' });
    await answer(res, recorded, nextReply(recorded), options);
  });

  let connections = 0;
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
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

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(JSON.stringify(body));
}

function write(res: ServerResponse, text: string): Promise<void> {
  return new Promise((resolve) => (res.destroyed ? resolve() : res.write(text, () => resolve())));
}

async function answer(res: ServerResponse, request: RecordedRequest, reply: FakeOllamaReply, options: FakeOllamaOptions): Promise<void> {
  if (reply.kind === 'hang') return;
  if (reply.kind === 'status') return json(res, reply.status, reply.body ?? { error: `fake error ${reply.status}` }, reply.headers);
  const body = request.body as { model?: string; stream?: boolean; messages?: Array<{ content?: unknown }> };
  const model = body.model ?? 'llama3.1';
  const createdAt = () => new Date().toISOString();
  const texts = reply.kind === 'answer' ? (typeof reply.text === 'string' ? [reply.text] : reply.text ?? []) : reply.text ?? [];
  const toolCalls = reply.kind === 'answer' ? reply.toolCalls ?? [] : [];
  const wireCalls = toolCalls.map((c, index) => ({ ...(c.id ? { id: c.id } : {}), function: { index, name: c.name, arguments: c.arguments } }));
  const promptChars = (body.messages ?? []).reduce((n, m) => n + (typeof m.content === 'string' ? m.content.length : 0), 0);
  const final = {
    done_reason: reply.kind === 'answer' ? reply.doneReason ?? 'stop' : 'stop',
    done: true,
    total_duration: 1_000_000,
    load_duration: 100_000,
    prompt_eval_count: reply.kind === 'answer' && reply.promptEvalCount !== undefined ? reply.promptEvalCount : Math.ceil(promptChars / 4),
    prompt_eval_duration: 200_000,
    eval_count: reply.kind === 'answer' && reply.evalCount !== undefined ? reply.evalCount : texts.length + toolCalls.length,
    eval_duration: 700_000,
  };

  // Ollama defaults to streaming when `stream` is absent.
  if (body.stream === false) {
    if (reply.kind === 'cut') {
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
      await write(res, `{"model":"${model}","message":{"role":"assistant","content":"`);
      res.socket?.destroy();
      return;
    }
    if (reply.kind === 'malformed') {
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
      res.end(reply.raw ?? '{"model": oops');
      return;
    }
    if (reply.kind === 'streamError') return json(res, 500, { error: reply.error });
    if (reply.kind === 'stall') return;
    const message: Record<string, unknown> = { role: 'assistant', content: texts.join('') };
    if (wireCalls.length) message.tool_calls = wireCalls;
    return json(res, 200, { model, created_at: createdAt(), message, ...final });
  }

  res.writeHead(200, { 'content-type': 'application/x-ndjson' });
  res.flushHeaders();
  const send = async (line: unknown) => {
    if (options.chunkDelayMs) await sleep(options.chunkDelayMs);
    await write(res, `${typeof line === 'string' ? line : JSON.stringify(line)}\n`);
  };
  for (const text of texts) {
    if (request.clientDisconnected) return;
    await send({ model, created_at: createdAt(), message: { role: 'assistant', content: text }, done: false });
  }
  if (reply.kind === 'cut') {
    res.socket?.destroy();
    return;
  }
  if (reply.kind === 'stall') return;
  if (reply.kind === 'malformed') {
    await send(reply.raw ?? '{"model": oops');
    res.end();
    return;
  }
  if (reply.kind === 'streamError') {
    await send({ error: reply.error });
    res.end();
    return;
  }
  if (wireCalls.length) await send({ model, created_at: createdAt(), message: { role: 'assistant', content: '', tool_calls: wireCalls }, done: false });
  await send({ model, created_at: createdAt(), message: { role: 'assistant', content: '' }, ...final });
  res.end();
}
