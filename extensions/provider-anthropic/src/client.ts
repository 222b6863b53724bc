import type { CancellationToken } from '@aion/extension-api';
import { HttpProviderClient, parseStreamObject, ProviderFailure, UpstreamCall, upstreamRequest, toolArguments } from '@aion/provider-kit';
import type { ChatMessage, ChatRequest, FinishReason, ModelInfo, ProviderEvent } from '@aion/provider-kit';
import type { UpstreamResponse, ApiKeySource, HttpProviderDefaults } from '@aion/provider-kit';

export interface AnthropicClientOptions {
  /** `https://api.anthropic.com` by default (no `/v1` suffix). */
  baseUrl?: string;
  /** Sent as `x-api-key`; a function is asked before every call, so a rotated key applies at once. */
  apiKey?: ApiKeySource;
  /** The longest wait for the server without progress (the response head, then between events). */
  timeoutMs?: number;
  /** `max_tokens` when a request sets no `maxTokens`: the Messages API requires one. */
  defaultMaxTokens?: number;
  /** Metadata that `listModels` attaches to the vendor's models with the same id. */
  models?: ModelInfo[];
}

export const DEFAULT_BASE_URL = 'https://api.anthropic.com';
export const ANTHROPIC_VERSION = '2023-06-01';
export const DEFAULT_TIMEOUT_MS = 60_000;
export const DEFAULT_MAX_TOKENS = 4096;

type ContentBlock =
  | { type: 'text'; text: string }
  | { type: 'tool_use'; id: string; name: string; input: unknown }
  | { type: 'tool_result'; tool_use_id: string; content: string };

interface AnthropicMessage {
  role: 'user' | 'assistant';
  content: ContentBlock[];
}

interface AnthropicUsage {
  input_tokens?: number;
  output_tokens?: number;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
}

interface AnthropicError {
  type?: string;
  message?: string;
}

interface StreamEvent {
  type?: string;
  index?: number;
  message?: { usage?: AnthropicUsage };
  content_block?: { type?: string; id?: string; name?: string; text?: string; input?: unknown };
  delta?: { type?: string; text?: string; partial_json?: string; stop_reason?: string | null };
  usage?: AnthropicUsage;
  error?: AnthropicError;
}

interface WholeMessage {
  type?: string;
  content?: Array<{ type?: string; text?: string; id?: string; name?: string; input?: unknown }>;
  stop_reason?: string | null;
  usage?: AnthropicUsage;
  error?: AnthropicError;
}

/** A client of Anthropic's Messages API (`/v1/messages`, server-sent events). */
export class AnthropicClient extends HttpProviderClient<AnthropicClientOptions> {
  static readonly defaults: HttpProviderDefaults = { baseUrl: DEFAULT_BASE_URL, timeoutMs: DEFAULT_TIMEOUT_MS };

  protected async startChat(call: UpstreamCall, request: ChatRequest): Promise<AsyncIterable<ProviderEvent>> {
    const body = toAnthropicRequest(request, this.options.defaultMaxTokens ?? DEFAULT_MAX_TOKENS);
    const response = await call.send({ method: 'POST', url: `${this.baseUrl}/v1/messages`, headers: await this.headers(), body });
    return body.stream ? streamEvents(call, response) : wholeEvents(call, response);
  }

  /** Every page of `GET /v1/models`. */
  async listModels(token?: CancellationToken): Promise<ModelInfo[]> {
    return upstreamRequest(this.timeoutMs, token, async (call) => {
      const headers = await this.headers();
      const configured = new Map((this.options.models ?? []).map((m) => [m.id, m]));
      const models: ModelInfo[] = [];
      for (let after: string | undefined, page = 0; page < 100; page++) {
        const url = `${this.baseUrl}/v1/models?limit=1000${after ? `&after_id=${encodeURIComponent(after)}` : ''}`;
        const body = (await call.json(await call.send({ method: 'GET', url, headers }))) as {
          data?: Array<{ id?: unknown; display_name?: unknown }>;
          has_more?: boolean;
          last_id?: string | null;
        };
        if (!Array.isArray(body?.data)) throw new ProviderFailure('PROVIDER_BAD_RESPONSE', 'the model list has no data array');
        for (const m of body.data) {
          if (typeof m?.id !== 'string') continue;
          models.push({ ...configured.get(m.id), id: m.id, ...(typeof m.display_name === 'string' ? { displayName: m.display_name } : {}) });
        }
        if (!body.has_more || !body.last_id) break;
        after = body.last_id;
      }
      return models;
    });
  }

  private async headers(): Promise<Record<string, string>> {
    const key = await this.apiKey();
    if (!key) throw new ProviderFailure('PROVIDER_AUTH_FAILED', 'no API key is configured');
    return { 'x-api-key': key, 'anthropic-version': ANTHROPIC_VERSION };
  }
}

function toAnthropicRequest(request: ChatRequest, defaultMaxTokens: number): Record<string, unknown> & { stream: boolean } {
  const system = request.messages
    .filter((m) => m.role === 'system' && m.content)
    .map((m) => m.content)
    .join('\n\n');
  const body: Record<string, unknown> & { stream: boolean } = {
    model: request.model,
    max_tokens: request.maxTokens ?? defaultMaxTokens,
    messages: toAnthropicMessages(request.messages),
    stream: request.stream !== false,
  };
  if (system) body.system = system;
  if (request.tools?.length) body.tools = request.tools.map((t) => ({ name: t.name, description: t.description, input_schema: t.parameters }));
  if (request.toolChoice !== undefined) {
    const choice = request.toolChoice;
    body.tool_choice = typeof choice === 'object' ? { type: 'tool', name: choice.name } : { type: choice === 'required' ? 'any' : choice };
  }
  if (request.temperature !== undefined) body.temperature = request.temperature;
  if (request.stop?.length) body.stop_sequences = request.stop;
  return body;
}

/**
 * System messages are hoisted out; tool results become `tool_result` blocks of a user turn; turns
 * of the same role are merged, because the API wants user and assistant to alternate and all the
 * results of one assistant turn's tool calls in the next user turn.
 */
function toAnthropicMessages(messages: ChatMessage[]): Array<{ role: 'user' | 'assistant'; content: string | ContentBlock[] }> {
  const turns: AnthropicMessage[] = [];
  for (const message of messages) {
    if (message.role === 'system') continue;
    const blocks: ContentBlock[] = [];
    if (message.role === 'tool') {
      blocks.push({ type: 'tool_result', tool_use_id: message.toolCallId ?? '', content: message.content ?? '' });
    } else {
      if (message.content) blocks.push({ type: 'text', text: message.content });
      for (const call of message.toolCalls ?? [])
        blocks.push({ type: 'tool_use', id: call.id, name: call.name, input: toolArguments(call.arguments, call.name) });
    }
    const role = message.role === 'assistant' ? 'assistant' : 'user';
    const previous = turns[turns.length - 1];
    if (previous?.role === role) previous.content.push(...blocks);
    else turns.push({ role, content: blocks });
  }
  return turns.map((t) => (t.content.length === 1 && t.content[0]!.type === 'text' ? { role: t.role, content: t.content[0]!.text } : t));
}

async function* streamEvents(call: UpstreamCall, response: UpstreamResponse): AsyncGenerator<ProviderEvent> {
  const blocks = new Map<number, { type: string; id: string; name: string; json: string; input?: unknown }>();
  let usage: AnthropicUsage | undefined;
  let stopReason: string | undefined;
  let calledTools = false;
  for await (const data of call.eventData(response)) {
    const event = parseStreamObject<StreamEvent>(data, 'event');
    switch (event.type) {
      case 'message_start':
        usage = { ...event.message?.usage };
        break;
      case 'content_block_start': {
        const block = event.content_block ?? {};
        blocks.set(event.index ?? 0, { type: block.type ?? '', id: block.id ?? '', name: block.name ?? '', json: '', input: block.input });
        if (block.type === 'text' && block.text) yield { type: 'token', text: block.text };
        break;
      }
      case 'content_block_delta': {
        const delta = event.delta ?? {};
        if (delta.type === 'text_delta' && delta.text) yield { type: 'token', text: delta.text };
        else if (delta.type === 'input_json_delta') {
          const block = blocks.get(event.index ?? 0);
          if (!block) throw new ProviderFailure('PROVIDER_BAD_RESPONSE', `tool input arrived for block ${event.index} that never started`);
          block.json += delta.partial_json ?? '';
        }
        break;
      }
      case 'content_block_stop': {
        const block = blocks.get(event.index ?? 0);
        if (block?.type === 'tool_use') {
          if (!block.name) throw new ProviderFailure('PROVIDER_BAD_RESPONSE', 'a tool_use block has no name');
          calledTools = true;
          // The API streams the input as deltas after an empty `input`; a gateway may send it whole at the start instead.
          const whole = block.input && typeof block.input === 'object' && Object.keys(block.input).length ? JSON.stringify(block.input) : '{}';
          yield { type: 'tool_call', call: { id: block.id, name: block.name, arguments: block.json || whole } };
        }
        break;
      }
      case 'message_delta':
        if (event.delta?.stop_reason) stopReason = event.delta.stop_reason;
        // message_delta carries cumulative counts; they supersede message_start's.
        if (event.usage) usage = { ...usage, ...definedOnly(event.usage) };
        break;
      case 'message_stop':
        call.markComplete();
        if (usage) yield usageEvent(usage);
        yield { type: 'done', finishReason: finishReason(stopReason, calledTools) };
        return;
      case 'error':
        throw vendorError(event.error);
      default:
        // `ping` and event types added after this client was written.
        break;
    }
  }
  throw new ProviderFailure('PROVIDER_STREAM_CUT', 'the stream ended before message_stop', { retryable: true });
}

async function* wholeEvents(call: UpstreamCall, response: UpstreamResponse): AsyncGenerator<ProviderEvent> {
  const message = (await call.json(response)) as WholeMessage;
  if (message?.type === 'error') throw vendorError(message.error);
  if (!Array.isArray(message?.content)) throw new ProviderFailure('PROVIDER_BAD_RESPONSE', 'the answer has no content array');
  call.markComplete();
  let calledTools = false;
  for (const block of message.content) {
    if (block.type === 'text' && block.text) yield { type: 'token', text: block.text };
    if (block.type === 'tool_use') {
      if (!block.name) throw new ProviderFailure('PROVIDER_BAD_RESPONSE', 'a tool_use block has no name');
      calledTools = true;
      yield { type: 'tool_call', call: { id: block.id ?? '', name: block.name, arguments: JSON.stringify(block.input ?? {}) } };
    }
  }
  if (message.usage) yield usageEvent(message.usage);
  yield { type: 'done', finishReason: finishReason(message.stop_reason ?? undefined, calledTools) };
}

function definedOnly(usage: AnthropicUsage): AnthropicUsage {
  return Object.fromEntries(Object.entries(usage).filter(([, v]) => v !== undefined && v !== null)) as AnthropicUsage;
}

/** Prompt tokens include those written to and read from the prompt cache. */
function usageEvent(usage: AnthropicUsage): ProviderEvent {
  const input = (usage.input_tokens ?? 0) + (usage.cache_creation_input_tokens ?? 0) + (usage.cache_read_input_tokens ?? 0);
  return { type: 'usage', inputTokens: input, outputTokens: usage.output_tokens ?? 0 };
}

/** An `error` event in a stream or an error body in a 200 answer. */
function vendorError(error: AnthropicError | undefined): ProviderFailure {
  const message = `the provider reported ${error?.type ?? 'an error'}: ${error?.message ?? 'no message'}`;
  switch (error?.type) {
    case 'rate_limit_error':
      return new ProviderFailure('PROVIDER_RATE_LIMITED', message, { retryable: true });
    case 'authentication_error':
    case 'permission_error':
      return new ProviderFailure('PROVIDER_AUTH_FAILED', message);
    case 'invalid_request_error':
    case 'not_found_error':
    case 'request_too_large':
      return new ProviderFailure('PROVIDER_BAD_REQUEST', message);
    case 'timeout_error':
      return new ProviderFailure('PROVIDER_TIMEOUT', message, { retryable: true });
    default:
      // overloaded_error, api_error and types added later.
      return new ProviderFailure('PROVIDER_UNAVAILABLE', message, { retryable: true });
  }
}

function finishReason(reason: string | undefined, calledTools: boolean): FinishReason {
  switch (reason) {
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length';
    case 'tool_use':
      return 'tool_calls';
    case 'refusal':
      return 'content_filter';
    default:
      return calledTools ? 'tool_calls' : 'stop';
  }
}
