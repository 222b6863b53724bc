import { finished } from 'node:stream';
import { createParser } from 'eventsource-parser';
import { context, propagation } from '@opentelemetry/api';
import { AionError, type CancellationToken, type Disposable } from '@aion/extension-api';
import { Agent, getGlobalDispatcher, interceptors, request, type Dispatcher } from 'undici';
import type { EmbedRequest, ProviderErrorCode, ProviderErrorEvent, ProviderEvent } from './types.js';

/** A failed upstream call; a chat turns it into its final `error` event, `listModels` into an AionError. */
export class ProviderFailure extends Error {
  readonly retryable: boolean;
  readonly status?: number;
  readonly retryAfterMs?: number;

  constructor(
    readonly code: ProviderErrorCode,
    message: string,
    options: { retryable?: boolean; status?: number; retryAfterMs?: number } = {},
  ) {
    super(message);
    this.name = 'ProviderFailure';
    this.retryable = options.retryable ?? false;
    this.status = options.status;
    this.retryAfterMs = options.retryAfterMs;
  }

  /** Output already yielded makes a retry unsafe, whatever the cause. */
  toEvent(afterFirstToken: boolean): ProviderErrorEvent {
    const event: ProviderErrorEvent = { type: 'error', code: this.code, message: this.message, retryable: this.retryable && !afterFirstToken, afterFirstToken };
    if (this.status !== undefined) event.status = this.status;
    if (this.retryAfterMs !== undefined) event.retryAfterMs = this.retryAfterMs;
    return event;
  }

  toAionError(): AionError {
    const headers = this.retryAfterMs === undefined ? undefined : { 'retry-after': String(Math.ceil(this.retryAfterMs / 1000)) };
    return new AionError(this.code, this.message, {
      status: PROVIDER_ERROR_STATUS[this.code],
      headers,
      details: { retryable: this.retryable, status: this.status, retryAfterMs: this.retryAfterMs },
    });
  }
}

/** The HTTP status each provider failure answers when it reaches a client: the one table, the router uses it too. */
export const PROVIDER_ERROR_STATUS: Record<ProviderErrorCode, number> = {
  PROVIDER_RATE_LIMITED: 429,
  // Retryable and temporary, like the upstream's own 503: clients back off and retry.
  PROVIDER_UNAVAILABLE: 503,
  PROVIDER_TIMEOUT: 504,
  PROVIDER_STREAM_CUT: 502,
  PROVIDER_BAD_RESPONSE: 502,
  PROVIDER_AUTH_FAILED: 502,
  PROVIDER_BAD_REQUEST: 400,
  PROVIDER_UNREACHABLE: 502,
  LOCAL_MODEL_NOT_FOUND: 503,
  LOCAL_MODEL_INVALID: 503,
  CANCELLED: 499,
};

/** Whether a code from elsewhere (an error thrown across RPC, a device's event) is one of the provider codes. */
export function isProviderErrorCode(code: unknown): code is ProviderErrorCode {
  return typeof code === 'string' && Object.hasOwn(PROVIDER_ERROR_STATUS, code);
}

/** Response headers with lower-case names, as undici and `node:http` give them. */
export type ResponseHeaders = Record<string, string | string[] | undefined>;

function header(headers: ResponseHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** `retry-after-ms` (milliseconds), else `retry-after` (seconds or an HTTP date). */
export function retryAfterMs(headers: ResponseHeaders, now = Date.now()): number | undefined {
  const ms = header(headers, 'retry-after-ms');
  if (ms !== undefined && ms.trim() !== '' && Number.isFinite(Number(ms)) && Number(ms) >= 0) return Math.round(Number(ms));
  const value = header(headers, 'retry-after')?.trim();
  if (!value) return undefined;
  if (/^\d+(\.\d+)?$/.test(value)) return Math.round(Number(value) * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Classifies a non-2xx answer. `detail` is the vendor's own message, when it sent one. */
export function failureForStatus(status: number, headers: ResponseHeaders, detail: string): ProviderFailure {
  const message = `the provider answered HTTP ${status}${detail ? `: ${detail}` : ''}`;
  const retryAfter = retryAfterMs(headers);
  if (status === 401 || status === 403) return new ProviderFailure('PROVIDER_AUTH_FAILED', `${message} (check the API key secret)`, { status });
  if (status === 429) return new ProviderFailure('PROVIDER_RATE_LIMITED', message, { status, retryable: true, retryAfterMs: retryAfter });
  if (status === 408) return new ProviderFailure('PROVIDER_TIMEOUT', message, { status, retryable: true, retryAfterMs: retryAfter });
  if (status === 409 || status >= 500) return new ProviderFailure('PROVIDER_UNAVAILABLE', message, { status, retryable: true, retryAfterMs: retryAfter });
  if (status >= 400) return new ProviderFailure('PROVIDER_BAD_REQUEST', message, { status });
  return new ProviderFailure('PROVIDER_BAD_RESPONSE', `${message} (expected 200)`, { status });
}

/** The vendor's error message out of an error body: `{error:{message}}`, `{error:"…"}` or `{message}`. */
export function vendorMessage(body: string): string {
  let text = body.trim();
  try {
    const parsed = JSON.parse(text) as { error?: unknown; message?: unknown };
    const error = parsed.error as { message?: unknown } | string | undefined;
    const found =
      typeof error === 'string' ? error : typeof error?.message === 'string' ? error.message : typeof parsed.message === 'string' ? parsed.message : undefined;
    if (found !== undefined) text = found;
  } catch {
    // Not JSON: the text itself is the best description.
  }
  return text.length > 500 ? `${text.slice(0, 500)}…` : text;
}

const unreachableCodes = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'UND_ERR_CONNECT_TIMEOUT']);

/** The system or undici error code of a failure, looking through `cause` and AggregateError wrappers. */
function networkErrorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const candidate = e as { code?: unknown; cause?: unknown; errors?: unknown[] };
    if (typeof candidate.code === 'string') return candidate.code;
    e = candidate.cause ?? candidate.errors?.[0];
  }
  return undefined;
}

/** In an isolated host, the kernel's egress proxy answered the tunnel with `status`: 403 refused by the allow-list, 502 could not connect. */
function answeredByEgressProxy(err: unknown, status: number): boolean {
  if (!process.env.AION_EGRESS_SOCKET) return false;
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const candidate = e as { message?: unknown; cause?: unknown; errors?: unknown[] };
    if (typeof candidate.message === 'string' && candidate.message.includes(`Proxy response (${status})`)) return true;
    e = candidate.cause ?? candidate.errors?.[0];
  }
  return false;
}

function describe(err: unknown): string {
  const code = networkErrorCode(err);
  const cause = (err as { cause?: { message?: string } })?.cause?.message;
  return code ?? cause ?? (err instanceof Error ? err.message : String(err));
}

/**
 * Keep-alive connections per origin, shared by every call in the process; redirects are followed as
 * `fetch` follows them. In a host whose network is isolated the host's global dispatcher (through the
 * kernel's egress proxy) is the only way out, so it is the base there.
 */
const dispatcher = (process.env.AION_EGRESS_SOCKET ? getGlobalDispatcher() : new Agent()).compose(interceptors.redirect({ maxRedirections: 20 }));

/** An UpstreamCall times each wait itself: undici's body timeout would also count the time a slow consumer leaves the stream paused. */
const noUndiciTimeouts = { headersTimeout: 0, bodyTimeout: 0 };

export interface UpstreamRequest {
  method: 'GET' | 'POST';
  url: string;
  headers: Record<string, string>;
  /** Sent as JSON. */
  body?: unknown;
}

/** A 2xx answer whose body is read through the UpstreamCall that sent it. */
export interface UpstreamResponse {
  status: number;
  headers: ResponseHeaders;
  body: Dispatcher.ResponseData['body'];
}

/**
 * One HTTP exchange with a vendor: cancellation by token aborts it at once, and `timeoutMs` bounds
 * every wait for the vendor (the response head, then each body chunk), not the time a slow consumer
 * takes between chunks.
 */
export class UpstreamCall {
  private readonly controller = new AbortController();
  private abortReason?: 'cancelled' | 'timeout' | 'released';
  private timer?: NodeJS.Timeout;
  private readonly cancellation?: Disposable;
  private chunks?: AsyncIterator<Buffer>;
  private bodyEnded = false;
  private answerComplete = false;

  constructor(
    private readonly timeoutMs: number,
    token?: CancellationToken,
  ) {
    if (token?.isCancellationRequested) this.abort('cancelled');
    else this.cancellation = token?.onCancellationRequested(() => this.abort('cancelled'));
  }

  get cancelled(): boolean {
    return this.abortReason === 'cancelled';
  }

  /** Sends the request; resolves with a 2xx response, otherwise throws a ProviderFailure. One call may send several requests in turn (pages). */
  async send(upstream: UpstreamRequest): Promise<UpstreamResponse> {
    this.chunks = undefined;
    this.bodyEnded = false;
    const headers: Record<string, string> = { accept: 'application/json, text/event-stream, application/x-ndjson', 'user-agent': 'aion', ...upstream.headers };
    if (upstream.body !== undefined) headers['content-type'] = 'application/json';
    // The trace this call belongs to (W3C traceparent), so the upstream's spans join it.
    propagation.inject(context.active(), headers);
    const {
      statusCode,
      headers: responseHeaders,
      body,
    } = await this.guarded(
      () =>
        request(upstream.url, {
          method: upstream.method,
          headers,
          body: upstream.body === undefined ? undefined : JSON.stringify(upstream.body),
          signal: this.controller.signal,
          dispatcher,
          ...noUndiciTimeouts,
        }),
      false,
    );
    const response: UpstreamResponse = { status: statusCode, headers: responseHeaders, body };
    if (statusCode >= 200 && statusCode < 300) return response;
    let detail = '';
    try {
      detail = vendorMessage(await this.text(response));
    } catch {
      // The status says enough when the body cannot be read.
    }
    throw failureForStatus(statusCode, responseHeaders, detail);
  }

  /**
   * The whole body as text. Read from the body's events rather than its async iterator (a whole answer
   * is the hot path: one promise, not a few per chunk), with the same bound on each wait for a chunk.
   */
  async text(response: UpstreamResponse): Promise<string> {
    if (this.controller.signal.aborted) throw this.failure(undefined, true);
    const body = response.body;
    // A body already read to its end, failed or closed settles at once, as a read would.
    if (body.errored) throw this.failure(body.errored, true);
    if (body.readableEnded) {
      this.bodyEnded = true;
      return '';
    }
    if (body.destroyed) throw this.failure(new Error('the body was closed'), true);
    return new Promise<string>((resolve, reject) => {
      const parts: Buffer[] = [];
      const stall = () => {
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.abort('timeout'), this.timeoutMs);
      };
      const onData = (chunk: Buffer) => {
        parts.push(chunk);
        stall();
      };
      stall();
      body.on('data', onData);
      // The end, an error, or a close before the end (a cut connection): whichever comes first settles it.
      const stopWatching = finished(body, (err) => {
        stopWatching();
        body.off('data', onData);
        clearTimeout(this.timer);
        if (err) return reject(this.failure(err, true));
        this.bodyEnded = true;
        const text = parts.length === 1 ? parts[0]!.toString('utf8') : Buffer.concat(parts).toString('utf8');
        // As TextDecoder did: a byte-order mark is not part of the text.
        resolve(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
      });
    });
  }

  async json(response: UpstreamResponse): Promise<unknown> {
    const text = await this.text(response);
    try {
      return JSON.parse(text);
    } catch {
      throw new ProviderFailure('PROVIDER_BAD_RESPONSE', `the provider sent a body that is not JSON: ${text.slice(0, 200)}`);
    }
  }

  /**
   * The body's lines without their line ends. A last line with no line end is yielded only when
   * `keepUnterminated` is set: in an event stream it is an event cut in half.
   */
  async *lines(response: UpstreamResponse, keepUnterminated = false): AsyncGenerator<string> {
    const decoder = new TextDecoder();
    let buffer = '';
    for (let chunk = await this.read(response); chunk; chunk = await this.read(response)) {
      buffer += decoder.decode(chunk, { stream: true });
      let start = 0;
      for (let end = buffer.indexOf('\n'); end >= 0; end = buffer.indexOf('\n', start)) {
        const line = buffer.charCodeAt(end - 1) === 13 ? buffer.slice(start, end - 1) : buffer.slice(start, end);
        start = end + 1;
        yield line;
      }
      buffer = buffer.slice(start);
    }
    buffer += decoder.decode();
    if (keepUnterminated && buffer.trim()) yield buffer;
  }

  /**
   * The data of each event of a server-sent-event stream (eventsource-parser: multi-line data joined,
   * comments and retry fields skipped); event names travel inside the vendors' payloads. An event the
   * stream ends in the middle of is never yielded: it is a cut answer, not a short one.
   */
  async *eventData(response: UpstreamResponse): AsyncGenerator<string> {
    const ready: string[] = [];
    const parser = createParser({ onEvent: (event) => ready.push(event.data) });
    const decoder = new TextDecoder();
    for (let chunk = await this.read(response); chunk; chunk = await this.read(response)) {
      parser.feed(decoder.decode(chunk, { stream: true }));
      for (let i = 0; i < ready.length; i++) yield ready[i]!;
      ready.length = 0;
    }
  }

  /** The vendor finished its answer: what is left of the body is drained so the connection can be reused. */
  markComplete(): void {
    this.answerComplete = true;
  }

  /** Ends the exchange: drains a completed body briefly, aborts anything still open. */
  async release(): Promise<void> {
    clearTimeout(this.timer);
    this.cancellation?.dispose();
    if (this.chunks && !this.bodyEnded && this.answerComplete && !this.controller.signal.aborted) {
      const deadline = setTimeout(() => this.abort('released'), 250);
      try {
        while (!(await this.chunks.next()).done);
        this.bodyEnded = true;
      } catch {
        // Aborted by the deadline: the connection is closed instead of reused.
      } finally {
        clearTimeout(deadline);
      }
    }
    if (!this.bodyEnded) this.abort('released');
  }

  /**
   * What an error thrown while reading an answer means: a ProviderFailure as it is, the cancellation
   * when the caller cancelled, otherwise an answer the provider could not make sense of.
   */
  asFailure(err: unknown): ProviderFailure {
    if (err instanceof ProviderFailure) return err;
    if (this.cancelled) return new ProviderFailure('CANCELLED', 'the request was cancelled');
    return new ProviderFailure('PROVIDER_BAD_RESPONSE', `the provider's answer could not be read: ${err instanceof Error ? err.message : String(err)}`);
  }

  private async read(response: UpstreamResponse): Promise<Buffer | undefined> {
    this.chunks ??= response.body[Symbol.asyncIterator]();
    const chunks = this.chunks;
    const result = await this.guarded(() => chunks.next(), true);
    if (result.done) this.bodyEnded = true;
    return result.done ? undefined : result.value;
  }

  private async guarded<T>(step: () => Promise<T>, inBody: boolean): Promise<T> {
    if (this.controller.signal.aborted) throw this.failure(undefined, inBody);
    this.timer = setTimeout(() => this.abort('timeout'), this.timeoutMs);
    try {
      return await step();
    } catch (err) {
      throw this.failure(err, inBody);
    } finally {
      clearTimeout(this.timer);
    }
  }

  private abort(reason: 'cancelled' | 'timeout' | 'released'): void {
    if (this.controller.signal.aborted) return;
    this.abortReason = reason;
    clearTimeout(this.timer);
    this.controller.abort();
  }

  private failure(err: unknown, inBody: boolean): ProviderFailure {
    if (err instanceof ProviderFailure) return err;
    if (this.abortReason === 'cancelled') return new ProviderFailure('CANCELLED', 'the request was cancelled');
    if (this.abortReason === 'timeout') {
      return new ProviderFailure(
        'PROVIDER_TIMEOUT',
        inBody ? `the provider's stream stalled for ${this.timeoutMs} ms` : `the provider did not answer within ${this.timeoutMs} ms`,
        { retryable: true },
      );
    }
    const code = networkErrorCode(err);
    if (!inBody && answeredByEgressProxy(err, 502))
      return new ProviderFailure(
        'PROVIDER_UNREACHABLE',
        `could not connect to the provider (the server's egress proxy found it unreachable); check baseUrl and that the server runs`,
        { retryable: true },
      );
    if (!inBody && answeredByEgressProxy(err, 403)) {
      return new ProviderFailure(
        'PROVIDER_UNREACHABLE',
        "the server's egress proxy refused the connection (NETWORK_DENIED): the provider's host:port is not on this extension's network allow-list (aion.permissions.network, or the operator's permissions.grants)",
      );
    }
    if (!inBody && code && unreachableCodes.has(code))
      return new ProviderFailure('PROVIDER_UNREACHABLE', `could not connect to the provider (${code}); check baseUrl and that the server runs`, {
        retryable: true,
      });
    if (!inBody)
      return new ProviderFailure('PROVIDER_UNAVAILABLE', `the connection to the provider failed before an answer (${describe(err)})`, { retryable: true });
    return new ProviderFailure('PROVIDER_STREAM_CUT', `the connection closed before the answer was complete (${describe(err)})`, { retryable: true });
  }
}

/**
 * The envelope of every provider's `chat`: runs one upstream call, passes its events on, and turns any
 * failure into the stream's last `error` event (never a throw), marking whether a token had gone out.
 */
export async function* upstreamEvents(
  timeoutMs: number,
  token: CancellationToken | undefined,
  start: (call: UpstreamCall) => Promise<AsyncIterable<ProviderEvent>>,
): AsyncGenerator<ProviderEvent> {
  const call = new UpstreamCall(timeoutMs, token);
  let afterFirstToken = false;
  try {
    for await (const event of await start(call)) {
      if (event.type === 'token' || event.type === 'tool_call') afterFirstToken = true;
      yield event;
    }
  } catch (err) {
    yield call.asFailure(err).toEvent(afterFirstToken);
  } finally {
    await call.release();
  }
}

/**
 * One whole (not streamed) exchange with the upstream: `run` gets the call; whatever it throws becomes
 * the AionError of the provider failure it stands for, and the connection is released either way.
 */
export async function upstreamRequest<T>(timeoutMs: number, token: CancellationToken | undefined, run: (call: UpstreamCall) => Promise<T>): Promise<T> {
  const call = new UpstreamCall(timeoutMs, token);
  try {
    return await run(call);
  } catch (err) {
    throw call.asFailure(err).toAionError();
  } finally {
    await call.release();
  }
}

/** The vendor-neutral part of an embeddings request body, `{ model, input, dimensions? }`; no input is PROVIDER_BAD_REQUEST. */
export function embeddingBody(request: EmbedRequest): Record<string, unknown> {
  if (!Array.isArray(request?.input) || request.input.length === 0) throw new ProviderFailure('PROVIDER_BAD_REQUEST', 'the request has no input to embed');
  const body: Record<string, unknown> = { model: request.model, input: request.input };
  if (request.dimensions !== undefined) body.dimensions = request.dimensions;
  return body;
}
