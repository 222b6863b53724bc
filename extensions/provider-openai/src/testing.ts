/**
 * Testing utility, not used by the provider itself: a fake OpenAI-compatible server on 127.0.0.1
 * that speaks the real Chat Completions wire format (SSE chunks, `data: [DONE]`, usage chunks, tool
 * call deltas, error bodies, the Azure deployment paths) and can misbehave on purpose. Import it as
 * `@aion/ext-provider-openai/testing`.
 */
import { embeddingFailure, fakeEmbedding, misbehaveWhole, pieces, sendJson as json, startFakeServer } from '@aion/provider-kit/testing';
import type { CommonFakeReply, FakeExchange, FakeServer, FakeServerOptions } from '@aion/provider-kit/testing';

export type { RecordedRequest } from '@aion/provider-kit/testing';

export interface FakeToolCall {
  id?: string;
  name: string;
  /** JSON text; streamed in `argumentFragments` pieces. */
  arguments: string;
}

export type FakeOpenAIReply =
  /** A normal answer; an array of text is streamed one element per chunk. */
  | {
      kind: 'answer';
      text?: string | string[];
      toolCalls?: FakeToolCall[];
      finishReason?: string;
      usage?: { prompt_tokens: number; completion_tokens: number };
    }
  /** Streams these chunks, then a line that is not JSON (`raw`), then `[DONE]`. */
  | { kind: 'malformed'; text?: string[]; raw?: string }
  /** `hang`, `cut`, `stall`, and `status`, whose body defaults to an OpenAI error object. */
  | CommonFakeReply;

export interface FakeOpenAIOptions extends FakeServerOptions<FakeOpenAIReply> {
  /** Ids listed by `GET …/models`. */
  models?: string[];
  /** When set, requests without this key (Bearer, or `api-key` for Azure) get 401. */
  apiKey?: string;
  /** Serve Azure OpenAI's `/openai/deployments/{deployment}/chat/completions?api-version=` instead. */
  azure?: { deployment: string; apiVersion: string };
  /** Pieces each tool call's arguments are streamed in (default 3). */
  argumentFragments?: number;
}

/** `url` is `http://127.0.0.1:<port>/v1`; `origin`, without `/v1`, is the base URL of the Azure variant. */
export type FakeOpenAI = FakeServer;

const defaultReply: FakeOpenAIReply = { kind: 'answer', text: ['Hello', ' from', ' the', ' fake.'] };

export function startFakeOpenAI(options: FakeOpenAIOptions = {}): Promise<FakeOpenAI> {
  return startFakeServer({ ...options, defaultReply, basePath: '/v1', handle: (exchange) => handle(exchange, options) });
}

async function handle(exchange: FakeExchange<FakeOpenAIReply>, options: FakeOpenAIOptions): Promise<void> {
  const { request, res } = exchange;
  const azure = options.azure;
  const key = azure ? request.headers['api-key'] : request.headers.authorization?.replace(/^Bearer /, '');
  if (options.apiKey !== undefined && key !== options.apiKey) {
    return json(res, 401, { error: { message: 'Incorrect API key provided.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
  }
  if (request.method === 'GET' && request.path.endsWith('/models')) {
    return json(res, 200, {
      object: 'list',
      data: (options.models ?? ['gpt-4o-mini']).map((id) => ({ id, object: 'model', created: 1700000000, owned_by: 'system' })),
    });
  }
  if (request.method === 'POST' && request.path === '/v1/embeddings' && !azure) return embeddings(exchange);
  const chatPath = azure ? `/openai/deployments/${azure.deployment}/chat/completions` : '/v1/chat/completions';
  if (request.method !== 'POST' || request.path !== chatPath || (azure && request.query['api-version'] !== azure.apiVersion)) {
    return json(res, 404, { error: { code: azure ? 'DeploymentNotFound' : 'unknown_url', message: `Unknown request URL: ${request.method} ${request.url}` } });
  }
  if (typeof request.body !== 'object' || request.body === null) {
    return json(res, 400, { error: { message: 'We could not parse the JSON body of your request.', type: 'invalid_request_error', param: null, code: null } });
  }
  await answer(exchange, exchange.nextReply(), options);
}

async function answer(exchange: FakeExchange<FakeOpenAIReply>, reply: FakeOpenAIReply, options: FakeOpenAIOptions): Promise<void> {
  const { request, res } = exchange;
  if (reply.kind === 'hang') return;
  if (reply.kind === 'status') {
    const body = reply.body ?? {
      error: { message: `fake error ${reply.status}`, type: reply.status === 429 ? 'rate_limit_exceeded' : 'server_error', param: null, code: null },
    };
    return json(res, reply.status, body, reply.headers);
  }
  const body = request.body as { model?: string; stream?: boolean; stream_options?: { include_usage?: boolean }; messages?: Array<{ content?: unknown }> };
  const model = body.model ?? 'gpt-4o-mini';
  const base = { id: 'chatcmpl-fake', created: Math.floor(Date.now() / 1000), model, system_fingerprint: 'fp_fake' };
  const texts = reply.kind === 'answer' ? (typeof reply.text === 'string' ? [reply.text] : (reply.text ?? [])) : (reply.text ?? []);
  const toolCalls = reply.kind === 'answer' ? (reply.toolCalls ?? []).map((c, i) => ({ ...c, id: c.id ?? `call_fake${i}` })) : [];
  const promptChars = (body.messages ?? []).reduce((n, m) => n + (typeof m.content === 'string' ? m.content.length : 0), 0);
  const usage =
    reply.kind === 'answer' && reply.usage
      ? { ...reply.usage, total_tokens: reply.usage.prompt_tokens + reply.usage.completion_tokens }
      : {
          prompt_tokens: Math.ceil(promptChars / 4),
          completion_tokens: texts.length + toolCalls.length,
          total_tokens: Math.ceil(promptChars / 4) + texts.length + toolCalls.length,
        };
  const finishReason = reply.kind === 'answer' ? (reply.finishReason ?? (toolCalls.length ? 'tool_calls' : 'stop')) : 'stop';

  if (body.stream !== true) {
    if (await misbehaveWhole(exchange, reply, MISBEHAVING_WHOLE_ANSWER)) return;
    const message: Record<string, unknown> = { role: 'assistant', content: toolCalls.length && !texts.length ? null : texts.join(''), refusal: null };
    if (toolCalls.length) message.tool_calls = toolCalls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } }));
    return json(res, 200, { ...base, object: 'chat.completion', choices: [{ index: 0, message, logprobs: null, finish_reason: finishReason }], usage });
  }

  const stream = exchange.stream({ 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
  const send = (payload: unknown) => stream.send(`data: ${typeof payload === 'string' ? payload : JSON.stringify(payload)}\n\n`);
  const chunk = (delta: Record<string, unknown>, finish: string | null = null) => ({
    ...base,
    object: 'chat.completion.chunk',
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    usage: null,
  });

  if (options.azure)
    await send({ id: '', object: '', created: 0, model: '', choices: [], prompt_filter_results: [{ prompt_index: 0, content_filter_results: {} }] });
  await send(chunk({ role: 'assistant', content: '', refusal: null }));
  for (const text of texts) {
    if (request.clientDisconnected) return;
    await send(chunk({ content: text }));
  }
  if (reply.kind === 'cut') return stream.cut();
  if (reply.kind === 'stall') return;
  if (reply.kind === 'malformed') {
    await send(reply.raw ?? '{"choices": [ {"delta": oops');
    await send('[DONE]');
    return stream.end();
  }
  for (const [index, call] of toolCalls.entries()) {
    const fragments = pieces(call.arguments, options.argumentFragments ?? 3);
    await send(chunk({ tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } }] }));
    for (const fragment of fragments) {
      if (request.clientDisconnected) return;
      await send(chunk({ tool_calls: [{ index, function: { arguments: fragment } }] }));
    }
  }
  await send(chunk({}, finishReason));
  if (body.stream_options?.include_usage) await send({ ...base, object: 'chat.completion.chunk', choices: [], usage });
  await send('[DONE]');
  stream.end();
}

/** `POST /v1/embeddings`: one `fakeEmbedding` per input (float arrays; base64 when asked), usage, or the status an input asks for. */
function embeddings(exchange: FakeExchange<FakeOpenAIReply>): void {
  const { request, res } = exchange;
  const body = request.body as { model?: unknown; input?: unknown; dimensions?: number; encoding_format?: string } | null;
  if (typeof body?.model !== 'string' || (typeof body.input !== 'string' && !Array.isArray(body.input))) {
    return json(res, 400, { error: { message: "'model' and 'input' are required properties.", type: 'invalid_request_error', param: null, code: null } });
  }
  const inputs = (Array.isArray(body.input) ? body.input : [body.input]) as string[];
  const status = embeddingFailure(inputs, 'openai');
  if (status)
    return json(
      res,
      status,
      { error: { message: `fake error ${status}`, type: status === 429 ? 'rate_limit_exceeded' : 'server_error', param: null, code: null } },
      status === 429 ? { 'retry-after': '2' } : {},
    );
  const data = inputs.map((text, index) => {
    const vector = fakeEmbedding(String(text), body.dimensions);
    return {
      object: 'embedding',
      index,
      embedding: body.encoding_format === 'base64' ? Buffer.from(new Float32Array(vector).buffer).toString('base64') : vector,
    };
  });
  const tokens = inputs.reduce((n, t) => n + Math.ceil(String(t).length / 4), 0);
  return json(res, 200, { object: 'list', data, model: body.model, usage: { prompt_tokens: tokens, total_tokens: tokens } });
}

/** The bodies of a whole answer asked to be cut or malformed. */
const MISBEHAVING_WHOLE_ANSWER = {
  contentType: 'application/json',
  partial: '{"id":"chatcmpl-fake","choices":[{"index":0,"message":{"role":"assistant","content":"',
  malformed: '{"choices": [ oops',
};
