/**
 * Testing utility, not used by the provider itself: a fake Anthropic Messages API on 127.0.0.1 that
 * speaks the real wire format (`message_start` … `message_stop` server-sent events, `ping`,
 * `input_json_delta` tool input, `error` events, error bodies, paginated `/v1/models`) and can
 * misbehave on purpose. Import it as `@aion/ext-provider-anthropic/testing`.
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

export interface FakeAnthropicToolUse {
  id?: string;
  name: string;
  input: Record<string, unknown>;
}

export type FakeAnthropicReply =
  /** A normal answer; an array of text is streamed one element per `text_delta`. */
  | { kind: 'answer'; text?: string | string[]; toolUses?: FakeAnthropicToolUse[]; stopReason?: string; inputTokens?: number; outputTokens?: number }
  /** An HTTP error; `body` defaults to an Anthropic error object whose type fits the status. */
  | { kind: 'status'; status: number; body?: unknown; headers?: Record<string, string> }
  /** Accepts the request and never answers. */
  | { kind: 'hang' }
  /** Streams these text deltas, then destroys the socket. */
  | { kind: 'cut'; text: string[] }
  /** Streams these text deltas, then sends nothing more and keeps the connection open. */
  | { kind: 'stall'; text: string[] }
  /** Streams these text deltas, then an event whose data is not JSON (`raw`). */
  | { kind: 'malformed'; text?: string[]; raw?: string }
  /** Streams these text deltas, then an `error` event (`overloaded_error` by default), as the API does midway. */
  | { kind: 'streamError'; text?: string[]; errorType?: string; message?: string };

export interface FakeAnthropicOptions {
  /** Answers to message requests in order; the last one answers every later request. */
  replies?: FakeAnthropicReply[];
  /** Computes each answer instead; wins over `replies`. */
  reply?: (request: RecordedRequest) => FakeAnthropicReply;
  /** Ids listed by `GET /v1/models`. */
  models?: string[];
  /** Models per page of `GET /v1/models` (the `limit` query parameter wins when smaller). */
  modelsPageSize?: number;
  /** When set, requests without this `x-api-key` get 401. */
  apiKey?: string;
  /** Pause between streamed events. */
  chunkDelayMs?: number;
  /** Pause before the response head. */
  firstByteDelayMs?: number;
  /** Pieces each tool input's JSON is streamed in (default 3). */
  inputFragments?: number;
}

export interface FakeAnthropic {
  /** Base URL to configure: `http://127.0.0.1:<port>`. */
  url: string;
  /** Every request received, oldest first. */
  requests: RecordedRequest[];
  /** TCP connections accepted so far (fewer than requests when clients reuse connections). */
  readonly connections: number;
  close(): Promise<void>;
}

const defaultReply: FakeAnthropicReply = { kind: 'answer', text: ['Hello', ' from', ' the', ' fake.'] };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const errorTypeByStatus: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  529: 'overloaded_error',
};

export async function startFakeAnthropic(options: FakeAnthropicOptions = {}): Promise<FakeAnthropic> {
  const requests: RecordedRequest[] = [];
  let messageCount = 0;
  const nextReply = (request: RecordedRequest): FakeAnthropicReply => {
    if (options.reply) return options.reply(request);
    const replies = options.replies?.length ? options.replies : [defaultReply];
    return replies[Math.min(messageCount++, replies.length - 1)]!;
  };

  const server = createServer(async (req, res) => {
    const recorded = await record(req, res);
    requests.push(recorded);
    if (options.firstByteDelayMs) await sleep(options.firstByteDelayMs);
    if (options.apiKey !== undefined && req.headers['x-api-key'] !== options.apiKey) return error(res, 401, 'invalid x-api-key');
    if (!req.headers['anthropic-version']) return error(res, 400, 'anthropic-version: header is required');
    if (req.method === 'GET' && recorded.path === '/v1/models') return listModels(res, recorded, options);
    if (req.method !== 'POST' || recorded.path !== '/v1/messages') return error(res, 404, `Not found: ${req.method} ${recorded.path}`);
    const body = recorded.body as { max_tokens?: unknown; messages?: unknown } | undefined;
    if (typeof body !== 'object' || body === null) return error(res, 400, 'The request body is not valid JSON.');
    if (typeof body.max_tokens !== 'number') return error(res, 400, 'max_tokens: Field required');
    if (!Array.isArray(body.messages) || body.messages.length === 0) return error(res, 400, 'messages: at least one message is required');
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
  res.writeHead(status, { 'content-type': 'application/json', 'request-id': 'req_fake', ...headers });
  res.end(JSON.stringify(body));
}

function error(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  json(res, status, { type: 'error', error: { type: errorTypeByStatus[status] ?? 'api_error', message }, request_id: 'req_fake' }, headers);
}

function write(res: ServerResponse, text: string): Promise<void> {
  return new Promise((resolve) => (res.destroyed ? resolve() : res.write(text, () => resolve())));
}

function pieces(text: string, count: number): string[] {
  const size = Math.max(1, Math.ceil(text.length / count));
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

function listModels(res: ServerResponse, request: RecordedRequest, options: FakeAnthropicOptions): void {
  const ids = options.models ?? ['claude-sonnet-4-5-20250929', 'claude-haiku-4-5-20251001'];
  const limit = Math.min(Number(request.query.limit ?? 20), options.modelsPageSize ?? Infinity);
  const start = request.query.after_id ? ids.indexOf(request.query.after_id) + 1 : 0;
  const page = ids.slice(start, start + limit);
  json(res, 200, {
    data: page.map((id) => ({ type: 'model', id, display_name: id.replace(/^claude-/, 'Claude ').replace(/-/g, ' '), created_at: '2025-01-01T00:00:00Z' })),
    has_more: start + limit < ids.length,
    first_id: page[0] ?? null,
    last_id: page[page.length - 1] ?? null,
  });
}

async function answer(res: ServerResponse, request: RecordedRequest, reply: FakeAnthropicReply, options: FakeAnthropicOptions): Promise<void> {
  if (reply.kind === 'hang') return;
  if (reply.kind === 'status') {
    return json(res, reply.status, reply.body ?? { type: 'error', error: { type: errorTypeByStatus[reply.status] ?? 'api_error', message: `fake error ${reply.status}` } }, reply.headers);
  }
  const body = request.body as { model?: string; stream?: boolean; system?: unknown; messages: Array<{ content?: unknown }> };
  const model = body.model ?? 'claude-sonnet-4-5';
  const texts = reply.kind === 'answer' ? (typeof reply.text === 'string' ? [reply.text] : reply.text ?? []) : reply.text ?? [];
  const toolUses = reply.kind === 'answer' ? (reply.toolUses ?? []).map((t, i) => ({ ...t, id: t.id ?? `toolu_fake${i}` })) : [];
  const promptChars = JSON.stringify(body.messages).length + (typeof body.system === 'string' ? body.system.length : 0);
  const inputTokens = reply.kind === 'answer' && reply.inputTokens !== undefined ? reply.inputTokens : Math.ceil(promptChars / 4);
  const outputTokens = reply.kind === 'answer' && reply.outputTokens !== undefined ? reply.outputTokens : texts.length + toolUses.length;
  const stopReason = reply.kind === 'answer' ? reply.stopReason ?? (toolUses.length ? 'tool_use' : 'end_turn') : 'end_turn';
  const message = { id: 'msg_fake', type: 'message', role: 'assistant', model, stop_sequence: null };

  if (body.stream !== true) {
    if (reply.kind === 'cut') {
      res.writeHead(200, { 'content-type': 'application/json' });
      await write(res, '{"id":"msg_fake","type":"message","content":[{"type":"text","text":"');
      res.socket?.destroy();
      return;
    }
    if (reply.kind === 'stall') return;
    if (reply.kind === 'malformed') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(reply.raw ?? '{"content": [ oops');
      return;
    }
    if (reply.kind === 'streamError') return error(res, 529, reply.message ?? 'Overloaded');
    const content: unknown[] = [];
    if (texts.length) content.push({ type: 'text', text: texts.join('') });
    for (const t of toolUses) content.push({ type: 'tool_use', id: t.id, name: t.name, input: t.input });
    return json(res, 200, { ...message, content, stop_reason: stopReason, usage: { input_tokens: inputTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: outputTokens } });
  }

  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'request-id': 'req_fake' });
  res.flushHeaders();
  const send = async (type: string, data: Record<string, unknown> | string) => {
    if (options.chunkDelayMs) await sleep(options.chunkDelayMs);
    await write(res, `event: ${type}\ndata: ${typeof data === 'string' ? data : JSON.stringify({ type, ...data })}\n\n`);
  };

  await send('message_start', { message: { ...message, content: [], stop_reason: null, usage: { input_tokens: inputTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1 } } });
  let index = 0;
  if (texts.length || reply.kind !== 'answer') {
    await send('content_block_start', { index, content_block: { type: 'text', text: '' } });
    await send('ping', {});
    for (const text of texts) {
      if (request.clientDisconnected) return;
      await send('content_block_delta', { index, delta: { type: 'text_delta', text } });
    }
    if (reply.kind === 'cut') {
      res.socket?.destroy();
      return;
    }
    if (reply.kind === 'stall') return;
    if (reply.kind === 'malformed') {
      await send('content_block_delta', reply.raw ?? '{"type": "content_block_delta", oops');
      res.end();
      return;
    }
    if (reply.kind === 'streamError') {
      await send('error', { error: { type: reply.errorType ?? 'overloaded_error', message: reply.message ?? 'Overloaded' } });
      res.end();
      return;
    }
    await send('content_block_stop', { index });
    index++;
  }
  for (const tool of toolUses) {
    await send('content_block_start', { index, content_block: { type: 'tool_use', id: tool.id, name: tool.name, input: {} } });
    await send('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: '' } });
    for (const fragment of pieces(JSON.stringify(tool.input), options.inputFragments ?? 3)) {
      if (request.clientDisconnected) return;
      await send('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: fragment } });
    }
    await send('content_block_stop', { index });
    index++;
  }
  await send('message_delta', { delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: outputTokens } });
  await send('message_stop', {});
  res.end();
}
