/**
 * HTTP for every resource: the base URL, credentials (with refresh on an expired access token),
 * JSON, typed errors, cancellation, and retries with backoff only where a repeat is safe.
 */
import { AionApiError, ClientErrorCodes, errorFromResponse } from './errors.js';

export interface RetryOptions {
  /** Extra attempts after the first (default 3). */
  retries?: number;
  /** First backoff in ms, doubled each time, with jitter (default 200). */
  minDelayMs?: number;
  /** Longest backoff, also the cap of a server's Retry-After (default 10000). */
  maxDelayMs?: number;
}

export interface RequestOptions {
  signal?: AbortSignal;
  headers?: Record<string, string>;
  /** Repeating this request cannot do anything twice (GET, or a POST with an Idempotency-Key). */
  idempotent?: boolean;
  /** Leave out credentials (sign-in, refresh). */
  anonymous?: boolean;
  query?: Record<string, string | number | boolean | undefined>;
}

export interface Credentials {
  /** An access token or API key sent as `Authorization: Bearer`; undefined when not signed in. */
  bearer(): string | undefined | Promise<string | undefined>;
  /** Called once when the server says the access token expired; true when a new one is ready. */
  refresh?(): Promise<boolean>;
}

const RETRYABLE_STATUS = new Set([408, 429, 502, 503, 504]);
const REFRESHABLE = new Set(['TOKEN_EXPIRED']);

export class Transport {
  constructor(
    readonly baseUrl: string,
    private readonly credentials: Credentials,
    private readonly retry: Required<RetryOptions>,
    private readonly fetchImpl: typeof fetch,
  ) {}

  url(path: string, query?: RequestOptions['query']): string {
    const url = new URL(path.replace(/^\//, ''), this.baseUrl.endsWith('/') ? this.baseUrl : `${this.baseUrl}/`);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    return url.toString();
  }

  async json<T>(method: string, path: string, body?: unknown, options: RequestOptions = {}): Promise<T> {
    const res = await this.send(method, path, body, options);
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    try {
      return (text ? JSON.parse(text) : undefined) as T;
    } catch (err) {
      throw new AionApiError(ClientErrorCodes.BAD_RESPONSE, `${method} ${path} answered ${res.status} with a body that is not JSON`, {
        status: res.status,
        cause: err,
      });
    }
  }

  /** Sends a request and answers the response when it is 2xx; otherwise throws the typed error. */
  async send(method: string, path: string, body?: unknown, options: RequestOptions = {}): Promise<Response> {
    const idempotent = options.idempotent ?? (method === 'GET' || method === 'HEAD');
    let refreshed = false;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await this.fetchImpl(this.url(path, options.query), {
          method,
          headers: await this.headers(body, options),
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: options.signal,
        });
      } catch (err) {
        if (options.signal?.aborted) throw abortError(options.signal, err);
        const failure = new AionApiError(ClientErrorCodes.NETWORK_ERROR, `${method} ${path} failed: ${(err as Error).message}`, { cause: err });
        if (!idempotent || attempt >= this.retry.retries) throw failure;
        await this.backoff(attempt, undefined, options.signal);
        continue;
      }
      if (res.ok) return res;
      const error = await errorFromResponse(res);
      if (!refreshed && !options.anonymous && res.status === 401 && REFRESHABLE.has(error.code) && this.credentials.refresh) {
        refreshed = true;
        if (await this.credentials.refresh()) {
          attempt--;
          continue;
        }
      }
      if (!idempotent || attempt >= this.retry.retries || !RETRYABLE_STATUS.has(res.status)) throw error;
      await this.backoff(attempt, error.retryAfter, options.signal);
    }
  }

  async headers(body: unknown, options: RequestOptions): Promise<Record<string, string>> {
    const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (!options.anonymous) {
      const bearer = await this.credentials.bearer();
      if (bearer) headers.authorization = `Bearer ${bearer}`;
    }
    return headers;
  }

  /** Waits the server's Retry-After, else an exponential backoff with full jitter. */
  backoff(attempt: number, retryAfterSeconds: number | undefined, signal?: AbortSignal): Promise<void> {
    const exponential = Math.min(this.retry.maxDelayMs, this.retry.minDelayMs * 2 ** attempt);
    const ms = retryAfterSeconds !== undefined ? Math.min(this.retry.maxDelayMs, retryAfterSeconds * 1000) : Math.random() * exponential;
    return sleep(ms, signal);
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal!));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function abortError(signal: AbortSignal, cause?: unknown): AionApiError {
  const reason = signal.reason;
  if (reason instanceof AionApiError) return reason;
  return new AionApiError(ClientErrorCodes.ABORTED, `the request was aborted${reason instanceof Error ? `: ${reason.message}` : ''}`, {
    cause: cause ?? reason,
  });
}
