/**
 * The contract between the router and a model provider extension.
 *
 * A provider extension declares entries of the `providers` contribution point in its manifest
 * (`contributes.providers: [ProviderContribution]`), so the router can list and rank providers
 * without activating them, and at activation supplies the implementation:
 *
 * ```ts
 * ctx.subscriptions.push(aion.contributions.register('providers', 'openai', impl));
 * ```
 *
 * Everything here is plain data, because it crosses the RPC between hosts. The router and every
 * provider import these shapes from `@aion/provider-kit`, so a provider builds without the router.
 */
import type { CancellationToken } from '@aion/extension-api';

/** Where requests go: a model served on this machine or the LAN, or a vendor's API. */
export type ProviderRoute = 'local' | 'api';

/** Price and quality band the router uses for cost-aware routing. */
export type ProviderTier = 'local' | 'cloud-standard' | 'cloud-premium';

/** Where prompts travel, for data-residency policies. */
export interface ProviderResidency {
  /**
   * `process`: in the host process; `host`: this machine; `lan`: another machine on the network;
   * `device`: a user's own device connected to the hub (`device` names it); `vendor`: a third party.
   */
  scope: 'process' | 'host' | 'lan' | 'device' | 'vendor';
  /** The device that runs the model when `scope` is `device`. */
  device?: string;
  /** The third party that sees prompts when `scope` is `vendor`, e.g. `openai`. */
  vendor?: string;
  /** A region the vendor keeps data in, e.g. `eu`, when it is known. */
  region?: string;
}

/** The user a model belongs to: only that user's requests may use it (a model on the user's own device). */
export interface ModelOwner {
  tenant_id: string;
  user_id: string;
}

/** What the router knows about one model before any call. Costs are in US dollars. */
export interface ProviderModel {
  /** The id sent to the vendor (`gpt-4o-mini`, `llama3.1`, `claude-sonnet-4-5`). */
  id: string;
  /** Tokens of prompt plus answer the model accepts. */
  contextWindow: number;
  costPer1kInput: number;
  costPer1kOutput: number;
  /** How well the model serves each intent, 0 (not at all) to 1 (best available); intents are named by the router. */
  capabilities: Record<string, number>;
  /** Accepts `tools` and answers with tool calls. */
  tools: boolean;
  /** Streams tokens as they are produced. */
  streaming: boolean;
  /** An embedding model: it answers `embed` (priced by `costPer1kInput`) and is never a chat candidate. */
  embed?: boolean;
  /** Set on a model that serves one user only (a model on the user's own device); the router never offers it to anyone else. */
  owner?: ModelOwner;
  /** Where this model runs, when it differs from the provider's residency (each device of the devices provider). */
  residency?: ProviderResidency;
}

/** One entry of `contributes.providers` in a provider's manifest. */
export interface ProviderContribution {
  /** Unique among providers; the id passed to `contributions.register('providers', id, …)`. */
  id: string;
  displayName: string;
  route: ProviderRoute;
  tier: ProviderTier;
  residency: ProviderResidency;
  /** Defaults shipped with the extension; an operator overrides them with the `models` configuration key. */
  models: ProviderModel[];
  /** A provider that needs a GPU (placed by aion.accelerators); `fallback: "cpu"` runs it on the CPU when none fits. */
  resources?: { gpu?: { required?: boolean; vendor?: 'nvidia' | 'amd' | 'intel'; memoryMiB?: number; fallback?: 'cpu' } };
  /** Configuration keys of the provider, with their default values; a provider with no upstream has none. */
  configuration?: {
    baseUrl?: string;
    /** Name of the secret holding the API key; absent when the endpoint needs none. */
    apiKeySecret?: string;
  };
}

/** A model as `listModels` reports it: the vendor's id, with the configured metadata where the ids match. */
export interface ModelInfo extends Partial<Omit<ProviderModel, 'id'>> {
  id: string;
  /** A human-readable name when the vendor gives one. */
  displayName?: string;
}

export type ChatRole = 'system' | 'user' | 'assistant' | 'tool';

/** A tool call the model asked for, or one replayed in the conversation history. */
export interface ToolCall {
  /** The vendor's call id; a `tool` message answers it through `toolCallId`. */
  id: string;
  name: string;
  /** The arguments as JSON text, always complete (stream fragments are assembled first). */
  arguments: string;
}

export interface ChatMessage {
  role: ChatRole;
  /** Text of the message; `null` for an assistant turn that only calls tools. */
  content: string | null;
  /** On assistant messages: the tool calls it made. */
  toolCalls?: ToolCall[];
  /** On tool messages: the call this message answers. */
  toolCallId?: string;
  /** On tool messages: the tool's name (vendors that match results by name need it); otherwise a participant name. */
  name?: string;
}

export interface ToolDefinition {
  name: string;
  description?: string;
  /** JSON schema of the arguments object. */
  parameters: object;
}

export type ToolChoice = 'auto' | 'none' | 'required' | { name: string };

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  tools?: ToolDefinition[];
  toolChoice?: ToolChoice;
  temperature?: number;
  maxTokens?: number;
  stop?: string[];
  /** `false`: the provider calls the vendor's non-streaming endpoint and still yields the same events. Default `true`. */
  stream?: boolean;
  /**
   * Longest wait for the vendor without progress: for the response to start and, when streaming,
   * between two chunks. Overrides the provider's configured `timeoutMs`.
   */
  timeoutMs?: number;
  /** The user the request is made for, sent only to a model that has an `owner`, so the provider can check it. */
  caller?: ModelOwner;
}

export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter' | 'error';

export type ProviderErrorCode =
  /** HTTP 429; `retryAfterMs` carries the vendor's `retry-after-ms` or `retry-after`. */
  | 'PROVIDER_RATE_LIMITED'
  /** HTTP 5xx (and 408/409), or the vendor reported an overload or internal error. */
  | 'PROVIDER_UNAVAILABLE'
  /** No progress within `timeoutMs`. */
  | 'PROVIDER_TIMEOUT'
  /** The connection closed or the stream ended before the vendor finished the answer. */
  | 'PROVIDER_STREAM_CUT'
  /** The vendor answered with something that is not its wire format. */
  | 'PROVIDER_BAD_RESPONSE'
  /** HTTP 401/403, or the API key secret is not set. */
  | 'PROVIDER_AUTH_FAILED'
  /** HTTP 400/404/413/422 and other 4xx: the request itself is wrong (unknown model, bad tool schema, too long). */
  | 'PROVIDER_BAD_REQUEST'
  /** No connection could be made (refused, unknown host, network down). */
  | 'PROVIDER_UNREACHABLE'
  /** A local model's file does not exist or cannot be read. */
  | 'LOCAL_MODEL_NOT_FOUND'
  /** A local model's file is not a model the runtime can load (not GGUF, truncated, unsupported). */
  | 'LOCAL_MODEL_INVALID'
  /** The caller cancelled; the upstream request was aborted. */
  | 'CANCELLED';

/**
 * What a chat yields, in this order: `token` and `tool_call` events as the answer is produced,
 * then `usage` (whenever the vendor reports it), then exactly one `done`. A failure ends the stream
 * with one `error` event instead of `done`; the iterator itself never throws.
 */
export type ProviderEvent =
  | { type: 'token'; text: string }
  /** A complete tool call; yielded once its streamed argument fragments are assembled. */
  | { type: 'tool_call'; call: ToolCall }
  | { type: 'usage'; inputTokens: number; outputTokens: number }
  /** `tool_calls` when the answer holds tool calls and the model stopped on its own, even where the vendor reports `stop`. */
  | { type: 'done'; finishReason: FinishReason }
  | ProviderErrorEvent;

export interface ProviderErrorEvent {
  type: 'error';
  code: ProviderErrorCode;
  message: string;
  /**
   * Sending the same request again may succeed: 429, 5xx, timeouts, refused connections and streams
   * cut before any output. Never true once output was yielded (`afterFirstToken`), because the
   * caller already holds part of an answer that a retry would repeat.
   */
  retryable: boolean;
  /** The vendor's HTTP status, when the failure was an HTTP answer. */
  status?: number;
  /** How long the vendor asked the caller to wait before retrying. */
  retryAfterMs?: number;
  /** A `token` or `tool_call` event was yielded before the failure: the router must not fall back silently. */
  afterFirstToken: boolean;
}

export interface EmbedRequest {
  /** An embedding model of this provider (`embed: true`). */
  model: string;
  /** The texts to embed, answered in the same order. */
  input: string[];
  /** Output dimensions, for models that can shorten their vectors. */
  dimensions?: number;
  /** Longest wait for the vendor; overrides the provider's configured `timeoutMs`. */
  timeoutMs?: number;
}

export interface EmbedResult {
  /** One vector per input, in input order. */
  embeddings: number[][];
  /** Prompt tokens the vendor counted (0 when it does not say). */
  inputTokens: number;
}

/** The runtime half of a `providers` entry, registered with `contributions.register('providers', id, impl)`. */
export interface ProviderImplementation {
  /** Streams one completion. Cancelling `token` (or stopping iteration) aborts the upstream request at once. */
  chat(request: ChatRequest, token: CancellationToken): AsyncIterable<ProviderEvent>;
  /**
   * Optional: one whole answer (a request with `stream: false`) as the events `chat` would yield, in
   * one array; never rejects (a failure is the last event). The router prefers it for whole answers:
   * one call instead of a stream pulled event by event (and, across hosts, one message).
   */
  complete?(request: ChatRequest, token: CancellationToken): Promise<ProviderEvent[]>;
  /** The vendor's models, with the configured metadata attached where ids match. Rejects with an AionError whose code is a ProviderErrorCode. */
  listModels(token: CancellationToken): Promise<ModelInfo[]>;
  /**
   * Embeddings, for providers with embedding models (`embed: true` on a model). Rejects with an
   * AionError whose code is a ProviderErrorCode, as `listModels` does.
   */
  embed?(request: EmbedRequest, token: CancellationToken): Promise<EmbedResult>;
  /**
   * The operator's `models` setting of this provider, which replaces the contributed defaults in the
   * router's catalog (`/v1/models`, routing); undefined when the operator set none.
   */
  configuredModels?(): ModelInfo[] | undefined;
}
