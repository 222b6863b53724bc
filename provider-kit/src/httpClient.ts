import type { CancellationToken } from '@aion/extension-api';
import type { ChatRequest, ModelInfo, ProviderEvent, ProviderImplementation } from './types.js';
import { ProviderFailure, upstreamAnswer, upstreamEvents, type UpstreamCall } from './upstream.js';

/** An API key as a provider is configured with it: the key, or a function that reads it (from `ctx.secrets`). */
export type ApiKeySource = string | (() => string | undefined | Promise<string | undefined>);

export interface HttpProviderConnection {
  /** The vendor's root URL; a trailing slash is dropped. */
  baseUrl?: string;
  /** The longest wait without progress when a request sets none. */
  timeoutMs?: number;
  /** The key; a function is asked before every call, so a rotated key applies at once. */
  apiKey?: ApiKeySource;
}

/** What a vendor's client uses where the configuration says nothing. */
export interface HttpProviderDefaults {
  baseUrl: string;
  timeoutMs: number;
}

/**
 * What every vendor's HTTP client shares: the root URL, the default timeout, reading the configured
 * key, and `chat` as a stream of events that never throws (a failure is its last event). A subclass
 * declares `static readonly defaults` (root URL and timeout when the configuration names none), sends
 * the vendor's request in `startChat` and turns the answer into events; its own settings are `this.options`.
 */
export abstract class HttpProviderClient<Options extends HttpProviderConnection = HttpProviderConnection> implements ProviderImplementation {
  protected readonly baseUrl: string;
  protected readonly timeoutMs: number;

  constructor(protected readonly options: Options = {} as Options) {
    // A static member, so a subclass needs no constructor of its own (TypeScript has no abstract statics).
    const { defaults } = new.target as unknown as { defaults?: HttpProviderDefaults };
    if (!defaults) throw new TypeError(`${new.target.name} declares no static defaults { baseUrl, timeoutMs }`);
    this.baseUrl = (options.baseUrl ?? defaults.baseUrl).replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? defaults.timeoutMs;
  }

  /**
   * Yields the answer's events; never throws: a failure is the last event. The envelope's own
   * generator, not one around it: each layer an event crosses costs promises on every event.
   */
  chat(request: ChatRequest, token?: CancellationToken): AsyncIterableIterator<ProviderEvent> {
    return upstreamEvents(request.timeoutMs ?? this.timeoutMs, token, (call) => {
      assertChatRequest(request);
      return this.startChat(call, request);
    });
  }

  /**
   * A whole answer's events in one array (the request is sent with `stream: false`); never rejects.
   * A vendor client whose `startChat` answers a whole request with an array costs no stream at all.
   */
  complete(request: ChatRequest, token?: CancellationToken): Promise<ProviderEvent[]> {
    return upstreamAnswer(request.timeoutMs ?? this.timeoutMs, token, async (call, events) => {
      assertChatRequest(request);
      const answer = await this.startChat(call, { ...request, stream: false });
      if (Array.isArray(answer)) events.push(...answer);
      else for await (const item of answer) Array.isArray(item) ? events.push(...item) : events.push(item);
    });
  }

  abstract listModels(token?: CancellationToken): Promise<ModelInfo[]>;

  /**
   * Sends one chat request on `call` (already checked: it names a model and has messages) and answers
   * its events: a stream (of events, or of arrays of them: all that one read of the answer held), or
   * for a whole answer (`stream: false`) all of them in an array.
   */
  protected abstract startChat(call: UpstreamCall, request: ChatRequest): Promise<AsyncIterable<ProviderEvent | ProviderEvent[]> | ProviderEvent[]>;

  /** The configured key, undefined when there is none; a key that cannot be read is PROVIDER_AUTH_FAILED. */
  protected async apiKey(): Promise<string | undefined> {
    const source = this.options.apiKey;
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

/**
 * One item of a streamed answer (an SSE event's data, an NDJSON line), parsed: anything but a JSON
 * object is PROVIDER_BAD_RESPONSE naming what it was (`event`, `chunk`, `line`) and its first 200 characters.
 */
export function parseStreamObject<T>(text: string, item: string): T {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ProviderFailure('PROVIDER_BAD_RESPONSE', `the stream held ${article(item)} ${item} that is not JSON: ${text.slice(0, 200)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new ProviderFailure('PROVIDER_BAD_RESPONSE', `the stream held ${article(item)} ${item} that is not an object: ${text.slice(0, 200)}`);
  return value as T;
}

const article = (word: string): string => (/^[aeiou]/i.test(word) ? 'an' : 'a');

/**
 * The JSON arguments of an earlier tool call, for vendors that take them as an object (Anthropic,
 * Ollama): empty text is `{}`, anything that is not JSON is PROVIDER_BAD_REQUEST naming the tool.
 */
export function toolArguments(text: string, toolName: string): unknown {
  try {
    return text.trim() === '' ? {} : JSON.parse(text);
  } catch {
    throw new ProviderFailure('PROVIDER_BAD_REQUEST', `the arguments of the earlier call to ${toolName} are not JSON`);
  }
}
