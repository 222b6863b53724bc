/**
 * Testing utility, not used by the provider itself: a fake OpenAI-compatible server on 127.0.0.1
 * that speaks the real Chat Completions wire format (SSE chunks, `data: [DONE]`, usage chunks, tool
 * call deltas, error bodies, the Azure deployment paths) and can misbehave on purpose. Import it as
 * `@aion/ext-provider-openai/testing`.
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

export interface FakeToolCall {
  id?: string;
  name: string;
  /** JSON text; streamed in `argumentFragments` pieces. */
  arguments: string;
}

export type FakeOpenAIReply =
  /** A normal answer; an array of text is streamed one element per chunk. */
  | { kind: 'answer'; text?: string | string[]; toolCalls?: FakeToolCall[]; finishReason?: string; usage?: { prompt_tokens: number; completion_tokens: number } }
  /** An HTTP error; `body` defaults to an OpenAI error object. */
  | { kind: 'status'; status: number; body?: unknown; headers?: Record<string, string> }
  /** Accepts the request and never answers. */
  | { kind: 'hang' }
  /** Streams these chunks, then destroys the socket. */
  | { kind: 'cut'; text: string[] }
  /** Streams these chunks, then sends nothing more and keeps the connection open. */
  | { kind: 'stall'; text: string[] }
  /** Streams these chunks, then a line that is not JSON (`raw`), then `[DONE]`. */
  | { kind: 'malformed'; text?: string[]; raw?: string };

export interface FakeOpenAIOptions {
  /** Answers to chat requests in order; the last one answers every later request. */
  replies?: FakeOpenAIReply[];
  /** Computes each answer instead; wins over `replies`. */
  reply?: (request: RecordedRequest) => FakeOpenAIReply;
  /** Ids listed by `GET …/models`. */
  models?: string[];
  /** When set, requests without this key (Bearer, or `api-key` for Azure) get 401. */
  apiKey?: string;
  /** Serve Azure OpenAI's `/openai/deployments/{deployment}/chat/completions?api-version=` instead. */
  azure?: { deployment: string; apiVersion: string };
  /** Pause between streamed chunks. */
  chunkDelayMs?: number;
  /** Pause before the response head. */
  firstByteDelayMs?: number;
  /** Pieces each tool call's arguments are streamed in (default 3). */
  argumentFragments?: number;
}

export interface FakeOpenAI {
  /** Base URL to configure: `http://127.0.0.1:<port>/v1`. */
  url: string;
  /** `http://127.0.0.1:<port>`, the base URL of the Azure variant. */
  origin: string;
  /** Every request received, oldest first. */
  requests: RecordedRequest[];
  /** TCP connections accepted so far (fewer than requests when clients reuse connections). */
  readonly connections: number;
  close(): Promise<void>;
}

const defaultReply: FakeOpenAIReply = { kind: 'answer', text: ['Hello', ' from', ' the', ' fake.'] };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startFakeOpenAI(options: FakeOpenAIOptions = {}): Promise<FakeOpenAI> {
  const requests: RecordedRequest[] = [];
  let chatCount = 0;
  const nextReply = (request: RecordedRequest): FakeOpenAIReply => {
    if (options.reply) return options.reply(request);
    const replies = options.replies?.length ? options.replies : [defaultReply];
    return replies[Math.min(chatCount++, replies.length - 1)]!;
  };

  const server = createServer(async (req, res) => {
    const recorded = await record(req, res);
    requests.push(recorded);
    if (options.firstByteDelayMs) await sleep(options.firstByteDelayMs);
    const azure = options.azure;
    const key = azure ? req.headers['api-key'] : req.headers.authorization?.replace(/^Bearer /, '');
    if (options.apiKey !== undefined && key !== options.apiKey) {
      return json(res, 401, { error: { message: 'Incorrect API key provided.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
    }
    if (req.method === 'GET' && recorded.path.endsWith('/models')) {
      return json(res, 200, { object: 'list', data: (options.models ?? ['gpt-4o-mini']).map((id) => ({ id, object: 'model', created: 1700000000, owned_by: 'system' })) });
    }
    const chatPath = azure ? `/openai/deployments/${azure.deployment}/chat/completions` : '/v1/chat/completions';
    if (req.method !== 'POST' || recorded.path !== chatPath || (azure && recorded.query['api-version'] !== azure.apiVersion)) {
      return json(res, 404, { error: { code: azure ? 'DeploymentNotFound' : 'unknown_url', message: `Unknown request URL: ${req.method} ${req.url}` } });
    }
    if (typeof recorded.body !== 'object' || recorded.body === null) {
      return json(res, 400, { error: { message: 'We could not parse the JSON body of your request.', type: 'invalid_request_error', param: null, code: null } });
    }
    await answer(res, recorded, nextReply(recorded), options);
  });

  let connections = 0;
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `${origin}/v1`,
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
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function write(res: ServerResponse, text: string): Promise<void> {
  return new Promise((resolve) => (res.destroyed ? resolve() : res.write(text, () => resolve())));
}

function pieces(text: string, count: number): string[] {
  const size = Math.max(1, Math.ceil(text.length / count));
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out.length ? out : [''];
}

async function answer(res: ServerResponse, request: RecordedRequest, reply: FakeOpenAIReply, options: FakeOpenAIOptions): Promise<void> {
  if (reply.kind === 'hang') return;
  if (reply.kind === 'status') {
    const body = reply.body ?? { error: { message: `fake error ${reply.status}`, type: reply.status === 429 ? 'rate_limit_exceeded' : 'server_error', param: null, code: null } };
    return json(res, reply.status, body, reply.headers);
  }
  const body = request.body as { model?: string; stream?: boolean; stream_options?: { include_usage?: boolean }; messages?: Array<{ content?: unknown }> };
  const model = body.model ?? 'gpt-4o-mini';
  const base = { id: 'chatcmpl-fake', created: Math.floor(Date.now() / 1000), model, system_fingerprint: 'fp_fake' };
  const texts = reply.kind === 'answer' ? (typeof reply.text === 'string' ? [reply.text] : reply.text ?? []) : reply.text ?? [];
  const toolCalls = reply.kind === 'answer' ? (reply.toolCalls ?? []).map((c, i) => ({ ...c, id: c.id ?? `call_fake${i}` })) : [];
  const promptChars = (body.messages ?? []).reduce((n, m) => n + (typeof m.content === 'string' ? m.content.length : 0), 0);
  const usage =
    reply.kind === 'answer' && reply.usage
      ? { ...reply.usage, total_tokens: reply.usage.prompt_tokens + reply.usage.completion_tokens }
      : { prompt_tokens: Math.ceil(promptChars / 4), completion_tokens: texts.length + toolCalls.length, total_tokens: Math.ceil(promptChars / 4) + texts.length + toolCalls.length };
  const finishReason = reply.kind === 'answer' ? reply.finishReason ?? (toolCalls.length ? 'tool_calls' : 'stop') : 'stop';

  if (body.stream !== true) {
    if (reply.kind === 'cut') {
      res.writeHead(200, { 'content-type': 'application/json' });
      await write(res, '{"id":"chatcmpl-fake","choices":[{"index":0,"message":{"role":"assistant","content":"');
      res.socket?.destroy();
      return;
    }
    if (reply.kind === 'stall') return;
    if (reply.kind === 'malformed') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(reply.raw ?? '{"choices": [ oops');
      return;
    }
    const message: Record<string, unknown> = { role: 'assistant', content: toolCalls.length && !texts.length ? null : texts.join(''), refusal: null };
    if (toolCalls.length) message.tool_calls = toolCalls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } }));
    return json(res, 200, { ...base, object: 'chat.completion', choices: [{ index: 0, message, logprobs: null, finish_reason: finishReason }], usage });
  }

  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
  res.flushHeaders();
  const send = async (payload: unknown) => {
    if (options.chunkDelayMs) await sleep(options.chunkDelayMs);
    await write(res, `data: ${typeof payload === 'string' ? payload : JSON.stringify(payload)}\n\n`);
  };
  const chunk = (delta: Record<string, unknown>, finish: string | null = null) => ({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], usage: null });

  if (options.azure) await send({ id: '', object: '', created: 0, model: '', choices: [], prompt_filter_results: [{ prompt_index: 0, content_filter_results: {} }] });
  await send(chunk({ role: 'assistant', content: '', refusal: null }));
  for (const text of texts) {
    if (request.clientDisconnected) return;
    await send(chunk({ content: text }));
  }
  if (reply.kind === 'cut') {
    res.socket?.destroy();
    return;
  }
  if (reply.kind === 'stall') return;
  if (reply.kind === 'malformed') {
    await send(reply.raw ?? '{"choices": [ {"delta": oops');
    await send('[DONE]');
    res.end();
    return;
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
  res.end();
}
