/**
 * Testing utility, not used by the provider itself: a fake Ollama server on 127.0.0.1 that speaks
 * the real `/api/chat` wire format (NDJSON lines, a final `done: true` line with token counts, tool
 * calls with object arguments, `{"error": …}` bodies, `/api/tags`) and can misbehave on purpose.
 * Import it as `@aion/ext-provider-ollama/testing`.
 */
import type { ServerResponse } from 'node:http';
import { embeddingFailure, fakeEmbedding, misbehaveWhole, sendJson, startFakeServer } from '@aion/provider-kit/testing';
import type { CommonFakeReply, FakeExchange, FakeServer, FakeServerOptions } from '@aion/provider-kit/testing';

export type { RecordedRequest } from '@aion/provider-kit/testing';

export interface FakeOllamaToolCall {
  name: string;
  arguments: Record<string, unknown>;
  /** Sent only when set: Ollama versions before tool-call ids send none. */
  id?: string;
}

export type FakeOllamaReply =
  /** A normal answer; an array of text is streamed one element per line. */
  | { kind: 'answer'; text?: string | string[]; toolCalls?: FakeOllamaToolCall[]; doneReason?: string; promptEvalCount?: number; evalCount?: number }
  /** Streams these lines, then one that is not JSON (`raw`). */
  | { kind: 'malformed'; text?: string[]; raw?: string }
  /** Streams these lines, then `{"error": error}`, as Ollama does when generation fails midway. */
  | { kind: 'streamError'; text?: string[]; error: string }
  /** `hang`, `cut`, `stall`, and `status`, whose body defaults to `{"error": "…"}`. */
  | CommonFakeReply;

export interface FakeOllamaOptions extends FakeServerOptions<FakeOllamaReply> {
  /** Names listed by `GET /api/tags`. */
  models?: string[];
  /** When set, requests without `Authorization: Bearer <apiKey>` get 401. */
  apiKey?: string;
}

/** `url` is `http://127.0.0.1:<port>`, the base URL to configure. */
export type FakeOllama = FakeServer;

const defaultReply: FakeOllamaReply = { kind: 'answer', text: ['Hello', ' from', ' the', ' fake.'] };

export function startFakeOllama(options: FakeOllamaOptions = {}): Promise<FakeOllama> {
  return startFakeServer({ ...options, defaultReply, handle: (exchange) => handle(exchange, options) });
}

async function handle(exchange: FakeExchange<FakeOllamaReply>, options: FakeOllamaOptions): Promise<void> {
  const { request, res } = exchange;
  if (options.apiKey !== undefined && request.headers.authorization !== `Bearer ${options.apiKey}`) return json(res, 401, { error: 'unauthorized' });
  if (request.method === 'GET' && request.path === '/api/tags') {
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
  if (request.method === 'POST' && request.path === '/api/embed') return embed(exchange);
  if (request.method !== 'POST' || request.path !== '/api/chat') return json(res, 404, { error: 'not found' }, { 'content-type': 'text/plain' });
  if (typeof request.body !== 'object' || request.body === null) return json(res, 400, { error: 'invalid character looking for beginning of value' });
  await answer(exchange, exchange.nextReply(), options);
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  sendJson(res, status, body, { 'content-type': 'application/json; charset=utf-8', ...headers });
}

async function answer(exchange: FakeExchange<FakeOllamaReply>, reply: FakeOllamaReply, _options: FakeOllamaOptions): Promise<void> {
  const { request, res } = exchange;
  if (reply.kind === 'hang') return;
  if (reply.kind === 'status') return json(res, reply.status, reply.body ?? { error: `fake error ${reply.status}` }, reply.headers);
  const body = request.body as { model?: string; stream?: boolean; messages?: Array<{ content?: unknown }> };
  const model = body.model ?? 'llama3.1';
  const createdAt = () => new Date().toISOString();
  const texts = reply.kind === 'answer' ? (typeof reply.text === 'string' ? [reply.text] : (reply.text ?? [])) : (reply.text ?? []);
  const toolCalls = reply.kind === 'answer' ? (reply.toolCalls ?? []) : [];
  const wireCalls = toolCalls.map((c, index) => ({ ...(c.id ? { id: c.id } : {}), function: { index, name: c.name, arguments: c.arguments } }));
  const promptChars = (body.messages ?? []).reduce((n, m) => n + (typeof m.content === 'string' ? m.content.length : 0), 0);
  const final = {
    done_reason: reply.kind === 'answer' ? (reply.doneReason ?? 'stop') : 'stop',
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
    if (reply.kind === 'streamError') return json(res, 500, { error: reply.error });
    if (
      await misbehaveWhole(exchange, reply, {
        contentType: 'application/json; charset=utf-8',
        partial: `{"model":"${model}","message":{"role":"assistant","content":"`,
        malformed: '{"model": oops',
      })
    )
      return;
    const message: Record<string, unknown> = { role: 'assistant', content: texts.join('') };
    if (wireCalls.length) message.tool_calls = wireCalls;
    return json(res, 200, { model, created_at: createdAt(), message, ...final });
  }

  const stream = exchange.stream({ 'content-type': 'application/x-ndjson' });
  const send = (line: unknown) => stream.send(`${typeof line === 'string' ? line : JSON.stringify(line)}\n`);
  for (const text of texts) {
    if (request.clientDisconnected) return;
    await send({ model, created_at: createdAt(), message: { role: 'assistant', content: text }, done: false });
  }
  if (reply.kind === 'cut') return stream.cut();
  if (reply.kind === 'stall') return;
  if (reply.kind === 'malformed') {
    await send(reply.raw ?? '{"model": oops');
    return stream.end();
  }
  if (reply.kind === 'streamError') {
    await send({ error: reply.error });
    return stream.end();
  }
  if (wireCalls.length) await send({ model, created_at: createdAt(), message: { role: 'assistant', content: '', tool_calls: wireCalls }, done: false });
  await send({ model, created_at: createdAt(), message: { role: 'assistant', content: '' }, ...final });
  stream.end();
}

/** `POST /api/embed`: one `fakeEmbedding` per input, or the status an input asks for (`[ollama:500]`). */
function embed(exchange: FakeExchange<FakeOllamaReply>): void {
  const { request, res } = exchange;
  const body = request.body as { model?: unknown; input?: unknown; dimensions?: number } | null;
  if (typeof body?.model !== 'string' || (typeof body.input !== 'string' && !Array.isArray(body.input)))
    return json(res, 400, { error: 'model and input are required' });
  const inputs = (Array.isArray(body.input) ? body.input : [body.input]) as string[];
  const status = embeddingFailure(inputs, 'ollama');
  if (status) return json(res, status, { error: `fake error ${status}` });
  const tokens = inputs.reduce((n, t) => n + Math.ceil(String(t).length / 4), 0);
  return json(res, 200, {
    model: body.model,
    embeddings: inputs.map((t) => fakeEmbedding(String(t), body.dimensions)),
    total_duration: 1000,
    load_duration: 10,
    prompt_eval_count: tokens,
  });
}
