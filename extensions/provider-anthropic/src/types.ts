/**
 * The provider contract, declared here structurally so this package builds without the router.
 * The documented original is `extensions/router/src/providerTypes.ts`; keep the two in step.
 */
import type { CancellationToken } from '@aion/extension-api';

export interface ToolCall {
  id: string;
  name: string;
  /** JSON text. */
  arguments: string;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content: string | null;
  toolCalls?: ToolCall[];
  toolCallId?: string;
  name?: string;
}

export interface ToolDefinition {
  name: string;
  description?: string;
  parameters: object;
}

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  tools?: ToolDefinition[];
  toolChoice?: 'auto' | 'none' | 'required' | { name: string };
  temperature?: number;
  maxTokens?: number;
  stop?: string[];
  stream?: boolean;
  timeoutMs?: number;
}

export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter' | 'error';

export type ProviderErrorCode =
  | 'PROVIDER_RATE_LIMITED'
  | 'PROVIDER_UNAVAILABLE'
  | 'PROVIDER_TIMEOUT'
  | 'PROVIDER_STREAM_CUT'
  | 'PROVIDER_BAD_RESPONSE'
  | 'PROVIDER_AUTH_FAILED'
  | 'PROVIDER_BAD_REQUEST'
  | 'PROVIDER_UNREACHABLE'
  | 'CANCELLED';

export interface ProviderErrorEvent {
  type: 'error';
  code: ProviderErrorCode;
  message: string;
  retryable: boolean;
  status?: number;
  retryAfterMs?: number;
  afterFirstToken: boolean;
}

export type ProviderEvent =
  | { type: 'token'; text: string }
  | { type: 'tool_call'; call: ToolCall }
  | { type: 'usage'; inputTokens: number; outputTokens: number }
  | { type: 'done'; finishReason: FinishReason }
  | ProviderErrorEvent;

export interface ModelInfo {
  id: string;
  displayName?: string;
  contextWindow?: number;
  costPer1kInput?: number;
  costPer1kOutput?: number;
  capabilities?: Record<string, number>;
  tools?: boolean;
  streaming?: boolean;
}

export interface ProviderImplementation {
  chat(request: ChatRequest, token: CancellationToken): AsyncIterable<ProviderEvent>;
  listModels(token: CancellationToken): Promise<ModelInfo[]>;
}
