/** Every failure the client reports: the server's stable `code`, its HTTP `status`, and when to retry. */
export class AionApiError extends Error {
  override readonly name = 'AionApiError';
  /** The server's stable code (`UNAUTHENTICATED`, `NOT_FOUND`, `SATURATED`, …); `NETWORK_ERROR`, `ABORTED` or `BAD_RESPONSE` from the client itself. */
  readonly code: string;
  /** HTTP status; 0 when no answer arrived. */
  readonly status: number;
  readonly details?: unknown;
  /** Seconds the server asked to wait (`Retry-After`), when it did. */
  readonly retryAfter?: number;

  constructor(code: string, message: string, options: { status?: number; details?: unknown; retryAfter?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options.status ?? 0;
    this.details = options.details;
    this.retryAfter = options.retryAfter;
  }
}

/** Codes the client itself produces; server codes are listed in each extension's README. */
export const ClientErrorCodes = {
  NETWORK_ERROR: 'NETWORK_ERROR',
  ABORTED: 'ABORTED',
  BAD_RESPONSE: 'BAD_RESPONSE',
  NOT_SIGNED_IN: 'NOT_SIGNED_IN',
} as const;

export function isAionApiError(value: unknown, code?: string): value is AionApiError {
  return value instanceof AionApiError && (code === undefined || value.code === code);
}

/** `Retry-After` as seconds: a number of seconds or an HTTP date. */
export function parseRetryAfter(value: string | null): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, (at - Date.now()) / 1000);
}

/** The error an answer carries (`{ error: { code, message, details } }`), or one made from its status. */
export async function errorFromResponse(res: Response): Promise<AionApiError> {
  const retryAfter = parseRetryAfter(res.headers.get('retry-after'));
  let body: any;
  try {
    body = await res.json();
  } catch {
    body = undefined;
  }
  const e = body?.error;
  if (e && typeof e.code === 'string')
    return new AionApiError(e.code, typeof e.message === 'string' ? e.message : e.code, { status: res.status, details: e.details, retryAfter });
  return new AionApiError(res.status === 404 ? 'NOT_FOUND' : 'BAD_RESPONSE', `HTTP ${res.status} ${res.statusText}`.trim(), { status: res.status, retryAfter });
}
