import type { CancellationToken } from '@aion/extension-api';
import { HttpProviderClient, parseStreamObject, ProviderFailure, UpstreamCall, upstreamRequest, embeddingBody } from '@aion/provider-kit';
import type { ChatMessage, ChatRequest, EmbedRequest, EmbedResult, FinishReason, ModelInfo, ProviderEvent, ToolCall } from '@aion/provider-kit';
import type { UpstreamResponse, ApiKeySource, HttpProviderDefaults } from '@aion/provider-kit';

export interface AzureOptions {
  /** The deployment to call; absent: the request's model names the deployment. */
  deployment?: string;
  apiVersion?: string;
}

export interface OpenAIClientOptions {
  /** Up to and including the API version segment: `https://api.openai.com/v1`, `http://127.0.0.1:8000/v1`; for Azure the resource endpoint. */
  baseUrl?: string;
  /** Sent as `Authorization: Bearer` (`api-key` for Azure); a function is asked before every call, so a rotated key applies at once. */
  apiKey?: ApiKeySource;
  /** Calls Azure OpenAI's deployment paths instead of OpenAI's. */
  azure?: AzureOptions;
  /** The longest wait for the server without progress (the response head, then between chunks). */
  timeoutMs?: number;
  /** Metadata that `listModels` attaches to models with the same id; for Azure, the list itself. */
  models?: ModelInfo[];
  /** `max_completion_tokens` for OpenAI models that refuse `max_tokens` (the o-series, gpt-5). */
  maxTokensParameter?: 'max_tokens' | 'max_completion_tokens';
}

export const DEFAULT_AZURE_API_VERSION = '2024-10-21';
export const DEFAULT_BASE_URL = 'https://api.openai.com/v1';
export const DEFAULT_TIMEOUT_MS = 60_000;

interface OpenAIToolCall {
  id?: string;
  index?: number;
  type?: string;
  function?: { name?: string; arguments?: string };
}

interface OpenAIChoice {
  index?: number;
  delta?: { content?: string | null; tool_calls?: OpenAIToolCall[] };
  message?: { content?: string | null; tool_calls?: OpenAIToolCall[] };
  finish_reason?: string | null;
}

interface OpenAIUsage {
  prompt_tokens?: number;
  completion_tokens?: number;
}

interface OpenAIChunk {
  choices?: OpenAIChoice[];
  usage?: OpenAIUsage | null;
  error?: { message?: string; type?: string; code?: string | number } | string;
}

/** A client of the OpenAI Chat Completions API, as OpenAI, Azure OpenAI, vLLM, llama.cpp and LM Studio serve it. */
export class OpenAIClient extends HttpProviderClient<OpenAIClientOptions> {
  static readonly defaults: HttpProviderDefaults = { baseUrl: DEFAULT_BASE_URL, timeoutMs: DEFAULT_TIMEOUT_MS };

  protected async startChat(call: UpstreamCall, request: ChatRequest): Promise<AsyncIterable<ProviderEvent[]> | ProviderEvent[]> {
    const stream = request.stream !== false;
    const response = await call.send({
      method: 'POST',
      url: this.apiUrl('chat/completions', request.model),
      headers: await this.authHeaders(),
      body: this.body(request, stream),
    });
    return stream ? this.streamEvents(call, response) : this.wholeEvents(call, response);
  }

  async listModels(token?: CancellationToken): Promise<ModelInfo[]> {
    const configured = this.options.models ?? [];
    if (this.options.azure) {
      const deployment = this.options.azure.deployment;
      return deployment && !configured.some((m) => m.id === deployment) ? [...configured, { id: deployment }] : configured;
    }
    return upstreamRequest(this.timeoutMs, token, async (call) => {
      const response = await call.send({ method: 'GET', url: `${this.baseUrl}/models`, headers: await this.authHeaders() });
      const body = (await call.json(response)) as { data?: Array<{ id?: unknown }> };
      if (!Array.isArray(body?.data)) throw new ProviderFailure('PROVIDER_BAD_RESPONSE', 'the model list has no data array');
      const byId = new Map(configured.map((m) => [m.id, m]));
      return body.data.filter((m) => typeof m?.id === 'string').map((m) => ({ ...byId.get(m.id as string), id: m.id as string }));
    });
  }

  /** `POST /embeddings` (Azure: the deployment named by the model); vectors come back in input order. */
  async embed(request: EmbedRequest, token?: CancellationToken): Promise<EmbedResult> {
    return upstreamRequest(request.timeoutMs ?? this.timeoutMs, token, async (call) => {
      const body = { ...embeddingBody(request), encoding_format: 'float' };
      const response = await call.send({ method: 'POST', url: this.apiUrl('embeddings', request.model), headers: await this.authHeaders(), body });
      const answer = (await call.json(response)) as { data?: Array<{ index?: number; embedding?: unknown }>; usage?: { prompt_tokens?: number } };
      call.markComplete();
      const data = answer?.data;
      if (!Array.isArray(data) || data.length !== request.input.length)
        throw new ProviderFailure(
          'PROVIDER_BAD_RESPONSE',
          `the answer holds ${Array.isArray(data) ? data.length : 'no'} embeddings for ${request.input.length} inputs`,
        );
      const embeddings: number[][] = new Array(data.length);
      data.forEach((d, i) => {
        const at = typeof d?.index === 'number' ? d.index : i;
        if (!Array.isArray(d?.embedding) || !d.embedding.every((x) => typeof x === 'number') || at < 0 || at >= data.length)
          throw new ProviderFailure('PROVIDER_BAD_RESPONSE', `embedding ${i} is not an array of numbers`);
        embeddings[at] = d.embedding as number[];
      });
      return { embeddings, inputTokens: answer.usage?.prompt_tokens ?? 0 };
    });
  }

  private apiUrl(endpoint: 'chat/completions' | 'embeddings', model: string): string {
    const azure = this.options.azure;
    if (!azure) return `${this.baseUrl}/${endpoint}`;
    const deployment = encodeURIComponent((endpoint === 'chat/completions' ? azure.deployment : undefined) ?? model);
    return `${this.baseUrl}/openai/deployments/${deployment}/${endpoint}?api-version=${encodeURIComponent(azure.apiVersion ?? DEFAULT_AZURE_API_VERSION)}`;
  }

  private async authHeaders(): Promise<Record<string, string>> {
    const key = await this.apiKey();
    if (!key) return {};
    return this.options.azure ? { 'api-key': key } : { authorization: `Bearer ${key}` };
  }

  private body(request: ChatRequest, stream: boolean): Record<string, unknown> {
    const body: Record<string, unknown> = { model: request.model, messages: request.messages.map(toOpenAIMessage), stream };
    if (stream) body.stream_options = { include_usage: true };
    if (request.tools?.length) {
      body.tools = request.tools.map((t) => ({ type: 'function', function: { name: t.name, description: t.description, parameters: t.parameters } }));
    }
    if (request.toolChoice !== undefined) {
      body.tool_choice = typeof request.toolChoice === 'string' ? request.toolChoice : { type: 'function', function: { name: request.toolChoice.name } };
    }
    if (request.temperature !== undefined) body.temperature = request.temperature;
    if (request.maxTokens !== undefined) body[this.options.maxTokensParameter ?? 'max_tokens'] = request.maxTokens;
    if (request.stop?.length) body.stop = request.stop;
    return body;
  }

  /**
   * A streamed answer's events, in one array per read of the body (an upstream read often holds
   * several chunks): one yield per read, not per token. A chunk that cannot be read fails the answer
   * after the events before it.
   */
  private async *streamEvents(call: UpstreamCall, response: UpstreamResponse): AsyncGenerator<ProviderEvent[]> {
    const calls = new Map<number, ToolCall>();
    let finish: string | undefined;
    let usage: OpenAIUsage | undefined;
    let sawDone = false;
    let callsYielded = false;
    for await (const batch of call.eventBatches(response)) {
      const events: ProviderEvent[] = [];
      try {
        for (const data of batch) {
          if (data.trim() === '[DONE]') {
            sawDone = true;
            break;
          }
          const chunk = parseChunk(data);
          if (chunk.usage) usage = chunk.usage;
          for (const choice of chunk.choices ?? []) {
            if ((choice.index ?? 0) !== 0) continue;
            const content = choice.delta?.content;
            if (typeof content === 'string' && content !== '') events.push({ type: 'token', text: content });
            for (const fragment of choice.delta?.tool_calls ?? []) addFragment(calls, fragment);
            if (choice.finish_reason && !callsYielded) {
              finish = choice.finish_reason;
              callsYielded = true;
              for (const event of toolCallEvents(calls)) events.push(event);
            }
          }
        }
      } catch (err) {
        if (events.length > 0) yield events;
        throw err;
      }
      if (events.length > 0) yield events;
      if (sawDone) break;
    }
    if (!sawDone && finish === undefined)
      throw new ProviderFailure('PROVIDER_STREAM_CUT', 'the stream ended before the answer was complete', { retryable: true });
    call.markComplete();
    const last: ProviderEvent[] = [];
    if (!callsYielded) for (const event of toolCallEvents(calls)) last.push(event);
    if (usage) last.push(usageEvent(usage));
    last.push({ type: 'done', finishReason: finishReason(finish, calls.size > 0) });
    yield last;
  }

  /** A whole answer's events, all at once: no generator for an answer that is already complete. */
  private async wholeEvents(call: UpstreamCall, response: UpstreamResponse): Promise<ProviderEvent[]> {
    const body = (await call.json(response)) as OpenAIChunk;
    if (body?.error) throw streamedError(body.error);
    const choice = body?.choices?.[0];
    if (!choice?.message) throw new ProviderFailure('PROVIDER_BAD_RESPONSE', 'the answer has no choices[0].message');
    call.markComplete();
    const events: ProviderEvent[] = [];
    if (typeof choice.message.content === 'string' && choice.message.content !== '') events.push({ type: 'token', text: choice.message.content });
    const calls = new Map<number, ToolCall>();
    choice.message.tool_calls?.forEach((c, index) => addFragment(calls, { ...c, index }));
    for (const event of toolCallEvents(calls)) events.push(event);
    if (body.usage) events.push(usageEvent(body.usage));
    events.push({ type: 'done', finishReason: finishReason(choice.finish_reason ?? undefined, calls.size > 0) });
    return events;
  }
}

function toOpenAIMessage(message: ChatMessage): Record<string, unknown> {
  const out: Record<string, unknown> = { role: message.role, content: message.content };
  if (message.role === 'tool') out.tool_call_id = message.toolCallId;
  else if (message.name) out.name = message.name;
  if (message.toolCalls?.length) {
    out.tool_calls = message.toolCalls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } }));
  }
  return out;
}

function parseChunk(data: string): OpenAIChunk {
  const chunk = parseStreamObject<OpenAIChunk>(data, 'chunk');
  if (chunk.error) throw streamedError(chunk.error);
  return chunk;
}

/** An error the server reported inside a 200 answer (OpenAI and vLLM do this mid-stream). */
function streamedError(error: NonNullable<OpenAIChunk['error']>): ProviderFailure {
  const message = typeof error === 'string' ? error : (error.message ?? JSON.stringify(error));
  const kind = typeof error === 'string' ? '' : `${error.type ?? ''} ${error.code ?? ''}`;
  if (/rate_limit/.test(kind)) return new ProviderFailure('PROVIDER_RATE_LIMITED', `the provider reported: ${message}`, { retryable: true });
  if (/invalid_request|invalid_api_key|not_found/.test(kind)) return new ProviderFailure('PROVIDER_BAD_REQUEST', `the provider reported: ${message}`);
  return new ProviderFailure('PROVIDER_UNAVAILABLE', `the provider reported: ${message}`, { retryable: true });
}

function addFragment(calls: Map<number, ToolCall>, fragment: OpenAIToolCall): void {
  const index = fragment.index ?? 0;
  let call = calls.get(index);
  if (!call) calls.set(index, (call = { id: '', name: '', arguments: '' }));
  if (fragment.id && !call.id) call.id = fragment.id;
  // Some servers repeat the name in every fragment: the first one is the name.
  if (fragment.function?.name && !call.name) call.name = fragment.function.name;
  if (fragment.function?.arguments) call.arguments += fragment.function.arguments;
}

function* toolCallEvents(calls: Map<number, ToolCall>): Generator<ProviderEvent> {
  for (const [index, call] of [...calls].sort((a, b) => a[0] - b[0])) {
    if (!call.name) throw new ProviderFailure('PROVIDER_BAD_RESPONSE', `tool call ${index} has no function name`);
    yield { type: 'tool_call', call: { id: call.id || `call_${index}`, name: call.name, arguments: call.arguments || '{}' } };
  }
}

function usageEvent(usage: OpenAIUsage): ProviderEvent {
  return { type: 'usage', inputTokens: usage.prompt_tokens ?? 0, outputTokens: usage.completion_tokens ?? 0 };
}

/** Servers differ in what they report after tool calls; an answer that called tools and stopped finished with `tool_calls`. */
function finishReason(reason: string | undefined, calledTools: boolean): FinishReason {
  const mapped = vendorFinishReason(reason);
  return mapped === 'stop' && calledTools ? 'tool_calls' : mapped;
}

function vendorFinishReason(reason: string | undefined): FinishReason {
  switch (reason) {
    case 'length':
      return 'length';
    case 'tool_calls':
    case 'function_call':
      return 'tool_calls';
    case 'content_filter':
      return 'content_filter';
    case 'error':
      return 'error';
    default:
      return 'stop';
  }
}
