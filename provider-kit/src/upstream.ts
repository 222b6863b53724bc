import { createParser } from 'eventsource-parser';
import { context, propagation } from '@opentelemetry/api';
import { AionError, AsyncQueue, type CancellationToken, type Disposable } from '@aion/extension-api';
import { Agent, getGlobalDispatcher, util, type Dispatcher } from 'undici';
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
 * Keep-alive connections per origin, shared by every call in the process. In a host whose network is
 * isolated the host's global dispatcher (through the kernel's egress proxy) is the only way out.
 */
const dispatcher: Dispatcher = process.env.AION_EGRESS_SOCKET ? getGlobalDispatcher() : new Agent();

/** Redirects followed per request, as `fetch` does. */
const MAX_REDIRECTS = 20;
/** Headers that carry credentials: not sent on to another origin a redirect names (as `fetch` does). */
const CREDENTIAL_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'x-api-key', 'api-key'];
/** Bytes of an answer held unread before the connection is paused (the reader's pace sets the vendor's). */
const HIGH_WATER_BYTES = 64 * 1024;

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
  body: UpstreamBody;
}

/**
 * An answer's body as the connection hands it over: chunks kept until read, the connection paused
 * while more than HIGH_WATER_BYTES wait. Settles once, at the end or at an error.
 */
export class UpstreamBody {
  private parts: Buffer[] = [];
  private buffered = 0;
  private waiting: Array<() => void> = [];
  /** Set by the connection: lets it read again after a pause. */
  resume?: () => void;
  private paused = false;
  ended = false;
  error?: Error;

  /** A chunk arrived; false pauses the connection. */
  push(chunk: Buffer): boolean {
    this.parts.push(chunk);
    this.buffered += chunk.length;
    this.wake();
    if (this.buffered < HIGH_WATER_BYTES) return true;
    this.paused = true;
    return false;
  }

  /** The body ended (no error) or failed. */
  finish(error?: Error): void {
    if (this.ended || this.error) return;
    if (error) this.error = error;
    else this.ended = true;
    this.wake();
  }

  get settled(): boolean {
    return this.ended || this.error !== undefined;
  }

  /** What arrived and was not read yet, in one buffer, or undefined when nothing waits. */
  take(): Buffer | undefined {
    const parts = this.parts;
    if (parts.length === 0) return undefined;
    this.parts = [];
    this.buffered = 0;
    if (this.paused) {
      this.paused = false;
      this.resume?.();
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  /** Resolves at the next chunk, end or error. */
  changed(): Promise<void> {
    // A body already settled changes no more: whoever waits would wait forever.
    if (this.settled) return Promise.resolve();
    return new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private wake(): void {
    if (this.waiting.length === 0) return;
    const waiting = this.waiting;
    this.waiting = [];
    for (const resolve of waiting) resolve();
  }
}

/** Where a redirect goes and how: 303, and 301/302 after a POST, become a GET without a body (as `fetch` does). */
function redirected(from: URL, status: number, location: string, request: UpstreamRequest): UpstreamRequest {
  const to = new URL(location, from);
  const method = status === 303 || ((status === 301 || status === 302) && request.method === 'POST') ? 'GET' : request.method;
  const headers = { ...request.headers };
  if (to.origin !== from.origin) for (const name of Object.keys(headers)) if (CREDENTIAL_HEADERS.includes(name.toLowerCase())) delete headers[name];
  return { method, url: to.href, headers, body: method === 'GET' ? undefined : request.body };
}

/**
 * One HTTP exchange with a vendor: cancellation by token aborts it at once, and `timeoutMs` bounds
 * every wait for the vendor (the response head, then each body chunk), not the time a slow consumer
 * takes between chunks. Runs on undici's dispatcher directly: no stream object, abort signal or
 * timer per read.
 */
export class UpstreamCall {
  private abortReason?: 'cancelled' | 'timeout' | 'released';
  /** The connection's abort for the request in flight, once it has one. */
  private abortRequest?: (reason: Error) => void;
  /** Fails a request still waiting for its head (even before it has a connection). */
  private failPending?: (reason: Error) => void;
  private timer?: NodeJS.Timeout;
  private readonly cancellation?: Disposable;
  private body?: UpstreamBody;
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

  private get aborted(): boolean {
    return this.abortReason !== undefined;
  }

  /** Sends the request; resolves with a 2xx response, otherwise throws a ProviderFailure. One call may send several requests in turn (pages). */
  async send(upstream: UpstreamRequest): Promise<UpstreamResponse> {
    const headers: Record<string, string> = { accept: 'application/json, text/event-stream, application/x-ndjson', 'user-agent': 'aion', ...upstream.headers };
    if (upstream.body !== undefined) headers['content-type'] = 'application/json';
    // The trace this call belongs to (W3C traceparent), so the upstream's spans join it.
    propagation.inject(context.active(), headers);
    let request: UpstreamRequest = { ...upstream, headers };
    let response: UpstreamResponse;
    for (let redirects = 0; ; redirects++) {
      const url = new URL(request.url);
      response = await this.guarded(() => this.exchange(url, request), false);
      const location = header(response.headers, 'location');
      if (response.status < 300 || response.status >= 400 || response.status === 304 || !location || redirects >= MAX_REDIRECTS) break;
      // The redirect's own body is not wanted; its connection is closed rather than read.
      this.abortRequest?.(new Error('redirected'));
      this.abortRequest = undefined;
      request = redirected(url, response.status, location, request);
    }
    if (response.status >= 200 && response.status < 300) return response;
    let detail = '';
    try {
      detail = vendorMessage(await this.text(response));
    } catch {
      // The status says enough when the body cannot be read.
    }
    throw failureForStatus(response.status, response.headers, detail);
  }

  /** One request on the dispatcher; resolves at the response head, the body then fills `UpstreamBody`. */
  private exchange(url: URL, request: UpstreamRequest): Promise<UpstreamResponse> {
    const body = new UpstreamBody();
    this.body = body;
    return new Promise<UpstreamResponse>((resolve, reject) => {
      let answered = false;
      this.failPending = reject;
      const handler: Dispatcher.DispatchHandler = {
        onConnect: (abort) => {
          this.abortRequest = abort as (reason: Error) => void;
          if (this.aborted) abort(new Error('aborted'));
        },
        onHeaders: (statusCode, rawHeaders, resume) => {
          // An informational answer (103) comes before the real one.
          if (statusCode < 200) return true;
          answered = true;
          this.failPending = undefined;
          body.resume = resume;
          resolve({ status: statusCode, headers: util.parseHeaders(rawHeaders as Buffer[]) as ResponseHeaders, body });
          return true;
        },
        onData: (chunk) => body.push(chunk),
        onComplete: () => body.finish(),
        onError: (err) => {
          if (answered) body.finish(err);
          else reject(err);
        },
      };
      dispatcher.dispatch(
        {
          origin: url.origin,
          path: `${url.pathname}${url.search}`,
          method: request.method,
          headers: request.headers,
          body: request.body === undefined ? undefined : JSON.stringify(request.body),
          // An UpstreamCall times each wait itself: undici's body timeout would also count the time a slow consumer leaves the stream paused.
          headersTimeout: 0,
          bodyTimeout: 0,
        },
        handler,
      );
    });
  }

  /**
   * The whole body as text: one promise for the answer, a stall timer re-armed per chunk, with the
   * same bound on each wait for a chunk as a streamed read.
   */
  async text(response: UpstreamResponse): Promise<string> {
    const parts: Buffer[] = [];
    for (let chunk = await this.read(response); chunk; chunk = await this.read(response)) parts.push(chunk);
    const text = parts.length === 1 ? parts[0]!.toString('utf8') : Buffer.concat(parts).toString('utf8');
    // As TextDecoder did: a byte-order mark is not part of the text.
    return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
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
    for await (const batch of this.eventBatches(response)) for (const data of batch) yield data;
  }

  /**
   * The data of the events each read of the body completed, one array per read (`eventData` in
   * batches): a vendor client that turns a whole batch into events hands them on with one yield,
   * not one per event.
   */
  async *eventBatches(response: UpstreamResponse): AsyncGenerator<string[]> {
    let ready: string[] = [];
    const parser = createParser({ onEvent: (event) => ready.push(event.data) });
    const decoder = new TextDecoder();
    for (let chunk = await this.read(response); chunk; chunk = await this.read(response)) {
      parser.feed(decoder.decode(chunk, { stream: true }));
      if (ready.length === 0) continue;
      const batch = ready;
      ready = [];
      yield batch;
    }
  }

  /** The vendor finished its answer: what is left of the body is drained so the connection can be reused. */
  markComplete(): void {
    this.answerComplete = true;
  }

  private released?: Promise<void>;

  /** Ends the exchange: drains a completed body briefly, aborts anything still open. Calls after the first share its answer. */
  release(): Promise<void> {
    return (this.released ??= this.releaseOnce());
  }

  private async releaseOnce(): Promise<void> {
    clearTimeout(this.timer);
    this.cancellation?.dispose();
    const body = this.body;
    if (!body || body.ended) return;
    if (body.error === undefined && this.answerComplete && !this.aborted) {
      const deadline = setTimeout(() => this.abort('released'), 250);
      try {
        while (!body.settled && !this.aborted) {
          body.take();
          await body.changed();
        }
      } finally {
        clearTimeout(deadline);
      }
    }
    if (!body.ended) this.abort('released');
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

  /**
   * What arrived of the body since the last read (several chunks in one buffer), or undefined at its
   * end; waits at most timeoutMs for the vendor to send more.
   */
  private async read(response: UpstreamResponse): Promise<Buffer | undefined> {
    const body = response.body;
    for (;;) {
      if (this.aborted) throw this.failure(undefined, true);
      const chunk = body.take();
      if (chunk) return chunk;
      if (body.error) throw this.failure(body.error, true);
      if (body.ended) return undefined;
      this.timer = setTimeout(() => this.abort('timeout'), this.timeoutMs);
      try {
        await body.changed();
      } finally {
        clearTimeout(this.timer);
      }
    }
  }

  private async guarded<T>(step: () => Promise<T>, inBody: boolean): Promise<T> {
    if (this.aborted) throw this.failure(undefined, inBody);
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
    if (this.aborted) return;
    this.abortReason = reason;
    clearTimeout(this.timer);
    const error = new Error(`the request was ${reason}`);
    this.abortRequest?.(error);
    // A wait for the head or the next chunk ends at once.
    this.failPending?.(error);
    this.body?.finish(error);
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
 * The envelope of every provider's `chat`: runs one upstream call and pushes its events to a queue as
 * they are made, ending it with the failure as the last `error` event (never a throw), marked whether
 * a token had gone out. `start` answers the events one by one, or in arrays (all those one read of
 * the answer held). A consumer in this process drains the queue by push (`forEachItem`), with no
 * promise per event; one that stops early aborts the call.
 */
export function upstreamEvents(
  timeoutMs: number,
  token: CancellationToken | undefined,
  start: (call: UpstreamCall) => Promise<AsyncIterable<ProviderEvent | ProviderEvent[]> | Iterable<ProviderEvent>>,
): AsyncIterableIterator<ProviderEvent> {
  const call = new UpstreamCall(timeoutMs, token);
  const queue = new AsyncQueue<ProviderEvent>({ onReturn: () => void call.release() });
  let afterFirstToken = false;
  const emit = (event: ProviderEvent) => {
    if (event.type === 'token' || event.type === 'tool_call') afterFirstToken = true;
    queue.push(event);
  };
  void (async () => {
    try {
      for await (const item of await start(call)) {
        if (queue.isEnded) break;
        if (Array.isArray(item)) for (const event of item) emit(event);
        else emit(item);
      }
    } catch (err) {
      queue.push(call.asFailure(err).toEvent(afterFirstToken));
    }
    // Ended before the connection is released: a complete answer's leftover is drained after, not before, its consumer hears the end.
    queue.end();
    await call.release();
  })();
  return queue;
}

/**
 * The envelope of a provider's `complete`: one upstream call whose events come back in one array; a
 * failure becomes the last event (never a rejection), marked as after the first token when one came.
 */
export async function upstreamAnswer(
  timeoutMs: number,
  token: CancellationToken | undefined,
  start: (call: UpstreamCall, events: ProviderEvent[]) => Promise<void>,
): Promise<ProviderEvent[]> {
  const call = new UpstreamCall(timeoutMs, token);
  const events: ProviderEvent[] = [];
  try {
    await start(call, events);
  } catch (err) {
    events.push(call.asFailure(err).toEvent(events.some((e) => e.type === 'token' || e.type === 'tool_call')));
  } finally {
    await call.release();
  }
  return events;
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
