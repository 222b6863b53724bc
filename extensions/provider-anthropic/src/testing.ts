/**
 * Testing utility, not used by the provider itself: a fake Anthropic Messages API on 127.0.0.1 that
 * speaks the real wire format (`message_start` … `message_stop` server-sent events, `ping`,
 * `input_json_delta` tool input, `error` events, error bodies, paginated `/v1/models`) and can
 * misbehave on purpose. Import it as `@aion/ext-provider-anthropic/testing`.
 */
import type { ServerResponse } from 'node:http';
import { misbehaveWhole, pieces, sendJson, startFakeServer } from '@aion/provider-kit/testing';
import type { CommonFakeReply, FakeExchange, FakeServer, FakeServerOptions, RecordedRequest } from '@aion/provider-kit/testing';

export type { RecordedRequest } from '@aion/provider-kit/testing';

export interface FakeAnthropicToolUse {
  id?: string;
  name: string;
  input: Record<string, unknown>;
}

export type FakeAnthropicReply =
  /** A normal answer; an array of text is streamed one element per `text_delta`. */
  | { kind: 'answer'; text?: string | string[]; toolUses?: FakeAnthropicToolUse[]; stopReason?: string; inputTokens?: number; outputTokens?: number }
  /** Streams these text deltas, then an event whose data is not JSON (`raw`). */
  | { kind: 'malformed'; text?: string[]; raw?: string }
  /** Streams these text deltas, then an `error` event (`overloaded_error` by default), as the API does midway. */
  | { kind: 'streamError'; text?: string[]; errorType?: string; message?: string }
  /** `hang`, `cut`, `stall`, and `status`, whose body defaults to an Anthropic error object whose type fits the status. */
  | CommonFakeReply;

export interface FakeAnthropicOptions extends FakeServerOptions<FakeAnthropicReply> {
  /** Ids listed by `GET /v1/models`. */
  models?: string[];
  /** Models per page of `GET /v1/models` (the `limit` query parameter wins when smaller). */
  modelsPageSize?: number;
  /** When set, requests without this `x-api-key` get 401. */
  apiKey?: string;
  /** Pieces each tool input's JSON is streamed in (default 3). */
  inputFragments?: number;
}

/** `url` is `http://127.0.0.1:<port>`, the base URL to configure. */
export type FakeAnthropic = FakeServer;

const defaultReply: FakeAnthropicReply = { kind: 'answer', text: ['Hello', ' from', ' the', ' fake.'] };

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

export function startFakeAnthropic(options: FakeAnthropicOptions = {}): Promise<FakeAnthropic> {
  return startFakeServer({ ...options, defaultReply, handle: (exchange) => handle(exchange, options) });
}

async function handle(exchange: FakeExchange<FakeAnthropicReply>, options: FakeAnthropicOptions): Promise<void> {
  const { request, res } = exchange;
  if (options.apiKey !== undefined && request.headers['x-api-key'] !== options.apiKey) return error(res, 401, 'invalid x-api-key');
  if (!request.headers['anthropic-version']) return error(res, 400, 'anthropic-version: header is required');
  if (request.method === 'GET' && request.path === '/v1/models') return listModels(res, request, options);
  if (request.method !== 'POST' || request.path !== '/v1/messages') return error(res, 404, `Not found: ${request.method} ${request.path}`);
  const body = request.body as { max_tokens?: unknown; messages?: unknown } | undefined;
  if (typeof body !== 'object' || body === null) return error(res, 400, 'The request body is not valid JSON.');
  if (typeof body.max_tokens !== 'number') return error(res, 400, 'max_tokens: Field required');
  if (!Array.isArray(body.messages) || body.messages.length === 0) return error(res, 400, 'messages: at least one message is required');
  await answer(exchange, exchange.nextReply(), options);
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  sendJson(res, status, body, { 'request-id': 'req_fake', ...headers });
}

function error(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  json(res, status, { type: 'error', error: { type: errorTypeByStatus[status] ?? 'api_error', message }, request_id: 'req_fake' }, headers);
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

async function answer(exchange: FakeExchange<FakeAnthropicReply>, reply: FakeAnthropicReply, options: FakeAnthropicOptions): Promise<void> {
  const { request, res } = exchange;
  if (reply.kind === 'hang') return;
  if (reply.kind === 'status') {
    return json(
      res,
      reply.status,
      reply.body ?? { type: 'error', error: { type: errorTypeByStatus[reply.status] ?? 'api_error', message: `fake error ${reply.status}` } },
      reply.headers,
    );
  }
  const body = request.body as { model?: string; stream?: boolean; system?: unknown; messages: Array<{ content?: unknown }> };
  const model = body.model ?? 'claude-sonnet-4-5';
  const texts = reply.kind === 'answer' ? (typeof reply.text === 'string' ? [reply.text] : (reply.text ?? [])) : (reply.text ?? []);
  const toolUses = reply.kind === 'answer' ? (reply.toolUses ?? []).map((t, i) => ({ ...t, id: t.id ?? `toolu_fake${i}` })) : [];
  const promptChars = JSON.stringify(body.messages).length + (typeof body.system === 'string' ? body.system.length : 0);
  const inputTokens = reply.kind === 'answer' && reply.inputTokens !== undefined ? reply.inputTokens : Math.ceil(promptChars / 4);
  const outputTokens = reply.kind === 'answer' && reply.outputTokens !== undefined ? reply.outputTokens : texts.length + toolUses.length;
  const stopReason = reply.kind === 'answer' ? (reply.stopReason ?? (toolUses.length ? 'tool_use' : 'end_turn')) : 'end_turn';
  const message = { id: 'msg_fake', type: 'message', role: 'assistant', model, stop_sequence: null };

  if (body.stream !== true) {
    if (await misbehaveWhole(exchange, reply, MISBEHAVING_WHOLE_ANSWER)) return;
    if (reply.kind === 'streamError') return error(res, 529, reply.message ?? 'Overloaded');
    const content: unknown[] = [];
    if (texts.length) content.push({ type: 'text', text: texts.join('') });
    for (const t of toolUses) content.push({ type: 'tool_use', id: t.id, name: t.name, input: t.input });
    return json(res, 200, {
      ...message,
      content,
      stop_reason: stopReason,
      usage: { input_tokens: inputTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: outputTokens },
    });
  }

  const stream = exchange.stream({ 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'request-id': 'req_fake' });
  const send = (type: string, data: Record<string, unknown> | string) =>
    stream.send(`event: ${type}\ndata: ${typeof data === 'string' ? data : JSON.stringify({ type, ...data })}\n\n`);

  await send('message_start', {
    message: {
      ...message,
      content: [],
      stop_reason: null,
      usage: { input_tokens: inputTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1 },
    },
  });
  let index = 0;
  if (texts.length || reply.kind !== 'answer') {
    await send('content_block_start', { index, content_block: { type: 'text', text: '' } });
    await send('ping', {});
    for (const text of texts) {
      if (request.clientDisconnected) return;
      await send('content_block_delta', { index, delta: { type: 'text_delta', text } });
    }
    if (reply.kind === 'cut') return stream.cut();
    if (reply.kind === 'stall') return;
    if (reply.kind === 'malformed') {
      await send('content_block_delta', reply.raw ?? '{"type": "content_block_delta", oops');
      return stream.end();
    }
    if (reply.kind === 'streamError') {
      await send('error', { error: { type: reply.errorType ?? 'overloaded_error', message: reply.message ?? 'Overloaded' } });
      return stream.end();
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
  stream.end();
}

/** The bodies of a whole answer asked to be cut or malformed. */
const MISBEHAVING_WHOLE_ANSWER = {
  contentType: 'application/json',
  partial: '{"id":"msg_fake","type":"message","content":[{"type":"text","text":"',
  malformed: '{"content": [ oops',
};
