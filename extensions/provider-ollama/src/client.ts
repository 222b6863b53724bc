import type { CancellationToken } from '@aion/extension-api';
import { HttpProviderClient, parseStreamObject, ProviderFailure, UpstreamCall, upstreamRequest, embeddingBody, toolArguments } from '@aion/provider-kit';
import type { ChatMessage, ChatRequest, EmbedRequest, EmbedResult, FinishReason, ModelInfo, ProviderEvent } from '@aion/provider-kit';
import type { UpstreamResponse, ApiKeySource, HttpProviderDefaults } from '@aion/provider-kit';

export interface OllamaClientOptions {
  /** The server's root, `http://127.0.0.1:11434` by default (no `/api` suffix). */
  baseUrl?: string;
  /** Sent as `Authorization: Bearer` when set, for servers behind an authenticating proxy. */
  apiKey?: ApiKeySource;
  /** The longest wait for the server without progress; generous by default because the first call loads the model. */
  timeoutMs?: number;
  /** Metadata that `listModels` attaches to the server's models with the same name. */
  models?: ModelInfo[];
}

export const DEFAULT_BASE_URL = 'http://127.0.0.1:11434';
export const DEFAULT_TIMEOUT_MS = 120_000;

interface OllamaToolCall {
  id?: string;
  function?: { index?: number; name?: string; arguments?: unknown };
}

interface OllamaChatLine {
  message?: { role?: string; content?: string; tool_calls?: OllamaToolCall[] };
  done?: boolean;
  done_reason?: string;
  prompt_eval_count?: number;
  eval_count?: number;
  error?: string;
}

/** A client of Ollama's native chat API (`/api/chat`, NDJSON streaming). */
export class OllamaClient extends HttpProviderClient<OllamaClientOptions> {
  static readonly defaults: HttpProviderDefaults = { baseUrl: DEFAULT_BASE_URL, timeoutMs: DEFAULT_TIMEOUT_MS };

  protected async startChat(call: UpstreamCall, request: ChatRequest): Promise<AsyncIterable<ProviderEvent>> {
    const body = toOllamaRequest(request);
    const response = await call.send({ method: 'POST', url: `${this.baseUrl}/api/chat`, headers: await this.authHeaders(), body });
    return answerEvents(body.stream ? call.lines(response, true) : wholeBody(call, response), call);
  }

  async listModels(token?: CancellationToken): Promise<ModelInfo[]> {
    return upstreamRequest(this.timeoutMs, token, async (call) => {
      const response = await call.send({ method: 'GET', url: `${this.baseUrl}/api/tags`, headers: await this.authHeaders() });
      const body = (await call.json(response)) as { models?: Array<{ name?: unknown; model?: unknown }> };
      if (!Array.isArray(body?.models)) throw new ProviderFailure('PROVIDER_BAD_RESPONSE', 'the model list has no models array');
      const configured = new Map((this.options.models ?? []).map((m) => [m.id, m]));
      return body.models.flatMap((m) => {
        const name = typeof m?.name === 'string' ? m.name : typeof m?.model === 'string' ? m.model : undefined;
        if (!name) return [];
        // `llama3.1` and `llama3.1:latest` are the same model to Ollama.
        return [{ ...(configured.get(name) ?? configured.get(name.replace(/:latest$/, ''))), id: name }];
      });
    });
  }

  /** `POST /api/embed` with every input at once; vectors come back in input order. */
  async embed(request: EmbedRequest, token?: CancellationToken): Promise<EmbedResult> {
    return upstreamRequest(request.timeoutMs ?? this.timeoutMs, token, async (call) => {
      const body = embeddingBody(request);
      const response = await call.send({ method: 'POST', url: `${this.baseUrl}/api/embed`, headers: await this.authHeaders(), body });
      const answer = (await call.json(response)) as { embeddings?: unknown; prompt_eval_count?: number; error?: string };
      call.markComplete();
      if (typeof answer?.error === 'string') throw new ProviderFailure('PROVIDER_UNAVAILABLE', `the provider reported: ${answer.error}`, { retryable: true });
      const embeddings = answer?.embeddings;
      if (
        !Array.isArray(embeddings) ||
        embeddings.length !== request.input.length ||
        !embeddings.every((e) => Array.isArray(e) && e.every((x) => typeof x === 'number'))
      ) {
        throw new ProviderFailure('PROVIDER_BAD_RESPONSE', `the answer does not hold ${request.input.length} embeddings of numbers`);
      }
      return { embeddings: embeddings as number[][], inputTokens: answer.prompt_eval_count ?? 0 };
    });
  }

  private async authHeaders(): Promise<Record<string, string>> {
    const key = await this.apiKey();
    return key ? { authorization: `Bearer ${key}` } : {};
  }
}

/** Ollama has no `tool_choice`: `none` leaves the tools out, the other choices are left to the model. */
function toOllamaRequest(request: ChatRequest): Record<string, unknown> & { stream: boolean } {
  const body: Record<string, unknown> & { stream: boolean } = {
    model: request.model,
    messages: request.messages.map(toOllamaMessage),
    stream: request.stream !== false,
  };
  if (request.tools?.length && request.toolChoice !== 'none') {
    body.tools = request.tools.map((t) => ({ type: 'function', function: { name: t.name, description: t.description, parameters: t.parameters } }));
  }
  const options: Record<string, unknown> = {};
  if (request.temperature !== undefined) options.temperature = request.temperature;
  if (request.maxTokens !== undefined) options.num_predict = request.maxTokens;
  if (request.stop?.length) options.stop = request.stop;
  if (Object.keys(options).length) body.options = options;
  return body;
}

function toOllamaMessage(message: ChatMessage): Record<string, unknown> {
  const out: Record<string, unknown> = { role: message.role, content: message.content ?? '' };
  if (message.role === 'tool' && message.name) out.tool_name = message.name;
  if (message.toolCalls?.length) {
    out.tool_calls = message.toolCalls.map((c) => ({ function: { name: c.name, arguments: toolArguments(c.arguments, c.name) } }));
  }
  return out;
}

async function* wholeBody(call: UpstreamCall, response: UpstreamResponse): AsyncGenerator<string> {
  yield await call.text(response);
}

async function* answerEvents(lines: AsyncIterable<string>, call: UpstreamCall): AsyncGenerator<ProviderEvent> {
  let calls = 0;
  for await (const text of lines) {
    if (text.trim() === '') continue;
    const line = parseStreamObject<OllamaChatLine>(text, 'line');
    if (line.error !== undefined) {
      throw new ProviderFailure('PROVIDER_UNAVAILABLE', `the provider reported: ${String(line.error)}`, { retryable: true });
    }
    const content = line.message?.content;
    if (typeof content === 'string' && content !== '') yield { type: 'token', text: content };
    for (const toolCall of line.message?.tool_calls ?? []) {
      const name = toolCall.function?.name;
      if (typeof name !== 'string' || name === '') throw new ProviderFailure('PROVIDER_BAD_RESPONSE', 'a tool call has no function name');
      const args = toolCall.function?.arguments;
      yield { type: 'tool_call', call: { id: toolCall.id ?? `call_${calls}`, name, arguments: typeof args === 'string' ? args : JSON.stringify(args ?? {}) } };
      calls++;
    }
    if (line.done === true) {
      call.markComplete();
      if (line.prompt_eval_count !== undefined || line.eval_count !== undefined) {
        yield { type: 'usage', inputTokens: line.prompt_eval_count ?? 0, outputTokens: line.eval_count ?? 0 };
      }
      yield { type: 'done', finishReason: finishReason(line.done_reason, calls > 0) };
      return;
    }
  }
  throw new ProviderFailure('PROVIDER_STREAM_CUT', 'the stream ended before the answer was complete', { retryable: true });
}

/** Ollama reports `stop` after tool calls; `load` and `unload` end requests that generated nothing. */
function finishReason(reason: string | undefined, calledTools: boolean): FinishReason {
  if (reason === 'length') return 'length';
  return calledTools ? 'tool_calls' : 'stop';
}
