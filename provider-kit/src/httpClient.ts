import type { CancellationToken } from '@aion/extension-api';
import type { ChatRequest, ModelInfo, ProviderEvent, ProviderImplementation } from './types.js';
import { ProviderFailure, upstreamEvents, type UpstreamCall } from './upstream.js';

/** An API key as a provider is configured with it: the key, or a function that reads it (from `ctx.secrets`). */
export type ApiKeySource = string | (() => string | undefined | Promise<string | undefined>);

export interface HttpProviderConnection {
  /** The vendor's root URL; a trailing slash is dropped. */
  baseUrl: string;
  /** The longest wait without progress when a request sets none. */
  timeoutMs: number;
  apiKey?: ApiKeySource;
}

/**
 * What every vendor's HTTP client shares: the root URL, the default timeout, reading the configured
 * key, and `chat` as a stream of events that never throws (a failure is its last event). A subclass
 * sends the vendor's request in `startChat` and turns the answer into events.
 */
export abstract class HttpProviderClient implements ProviderImplementation {
  protected readonly baseUrl: string;
  protected readonly timeoutMs: number;

  constructor(private readonly connection: HttpProviderConnection) {
    this.baseUrl = connection.baseUrl.replace(/\/+$/, '');
    this.timeoutMs = connection.timeoutMs;
  }

  /** Yields the answer's events; never throws: a failure is the last event. */
  async *chat(request: ChatRequest, token?: CancellationToken): AsyncGenerator<ProviderEvent> {
    yield* upstreamEvents(request.timeoutMs ?? this.timeoutMs, token, (call) => {
      assertChatRequest(request);
      return this.startChat(call, request);
    });
  }

  abstract listModels(token?: CancellationToken): Promise<ModelInfo[]>;

  /** Sends one chat request on `call` (already checked: it names a model and has messages) and answers its events. */
  protected abstract startChat(call: UpstreamCall, request: ChatRequest): Promise<AsyncIterable<ProviderEvent>>;

  /** The configured key, undefined when there is none; a key that cannot be read is PROVIDER_AUTH_FAILED. */
  protected async apiKey(): Promise<string | undefined> {
    const source = this.connection.apiKey;
    try {
      return typeof source === 'function' ? await source() : source;
    } catch (err) {
      throw new ProviderFailure('PROVIDER_AUTH_FAILED', `the API key could not be read: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

/** What every vendor refuses before sending anything: a request without a model or without messages. */
export function assertChatRequest(request: ChatRequest): void {
  if (typeof request?.model !== 'string' || request.model === '') throw new ProviderFailure('PROVIDER_BAD_REQUEST', 'the request names no model');
  if (!Array.isArray(request.messages) || request.messages.length === 0) throw new ProviderFailure('PROVIDER_BAD_REQUEST', 'the request has no messages');
}
