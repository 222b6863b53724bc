/** Stable error codes. Clients, logs and tests match on these, never on messages. */
export const ErrorCodes = {
  BAD_REQUEST: 'BAD_REQUEST',
  VALIDATION_FAILED: 'VALIDATION_FAILED',
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  METHOD_NOT_ALLOWED: 'METHOD_NOT_ALLOWED',
  CONFLICT: 'CONFLICT',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  UNSUPPORTED_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  REQUEST_TIMEOUT: 'REQUEST_TIMEOUT',
  HEADERS_TOO_LARGE: 'HEADERS_TOO_LARGE',
  UNPROCESSABLE: 'UNPROCESSABLE',
  RATE_LIMITED: 'RATE_LIMITED',
  INTERNAL: 'INTERNAL',
  NOT_IMPLEMENTED: 'NOT_IMPLEMENTED',
  SERVICE_UNAVAILABLE: 'SERVICE_UNAVAILABLE',
  TIMEOUT: 'TIMEOUT',
  CANCELLED: 'CANCELLED',
  MANIFEST_INVALID: 'MANIFEST_INVALID',
  ENGINE_MISMATCH: 'ENGINE_MISMATCH',
  DEPENDENCY_MISSING: 'DEPENDENCY_MISSING',
  DEPENDENCY_CYCLE: 'DEPENDENCY_CYCLE',
  DEPENDENCY_FAILED: 'DEPENDENCY_FAILED',
  DUPLICATE_EXTENSION: 'DUPLICATE_EXTENSION',
  CONTRIBUTION_INVALID: 'CONTRIBUTION_INVALID',
  CONTRIBUTION_POINT_UNKNOWN: 'CONTRIBUTION_POINT_UNKNOWN',
  CONTRIBUTION_NOT_FOUND: 'CONTRIBUTION_NOT_FOUND',
  ACTIVATION_FAILED: 'ACTIVATION_FAILED',
  EXTENSION_NOT_FOUND: 'EXTENSION_NOT_FOUND',
  EXTENSION_DISABLED: 'EXTENSION_DISABLED',
  EXTENSION_HOST_CRASHED: 'EXTENSION_HOST_CRASHED',
  EXTENSION_HOST_UNRESPONSIVE: 'EXTENSION_HOST_UNRESPONSIVE',
  COMMAND_NOT_FOUND: 'COMMAND_NOT_FOUND',
  HOOK_NOT_FOUND: 'HOOK_NOT_FOUND',
  ROUTE_HANDLER_MISSING: 'ROUTE_HANDLER_MISSING',
  ROUTE_NOT_DECLARED: 'ROUTE_NOT_DECLARED',
  API_METHOD_NOT_FOUND: 'API_METHOD_NOT_FOUND',
  SECRET_NOT_DECLARED: 'SECRET_NOT_DECLARED',
  SECRET_NOT_GRANTED: 'SECRET_NOT_GRANTED',
  PERMISSION_NOT_ENFORCEABLE: 'PERMISSION_NOT_ENFORCEABLE',
  PERMISSION_DENIED: 'PERMISSION_DENIED',
  NETWORK_DENIED: 'NETWORK_DENIED',
  NETWORK_UNREACHABLE: 'NETWORK_UNREACHABLE',
  NETWORK_ISOLATION_UNAVAILABLE: 'NETWORK_ISOLATION_UNAVAILABLE',
  CONFIG_INVALID: 'CONFIG_INVALID',
  STREAM_ERROR: 'STREAM_ERROR',
  SHUTTING_DOWN: 'SHUTTING_DOWN',
  NO_ACCELERATOR: 'NO_ACCELERATOR',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes] | (string & {});

/** The HTTP status each code maps to when it reaches the edge. */
export const HttpStatusByCode: Record<string, number> = {
  BAD_REQUEST: 400,
  VALIDATION_FAILED: 400,
  UNAUTHENTICATED: 401,
  TOKEN_EXPIRED: 401,
  FORBIDDEN: 403,
  PERMISSION_DENIED: 403,
  NETWORK_DENIED: 403,
  SECRET_NOT_DECLARED: 403,
  SECRET_NOT_GRANTED: 403,
  NOT_FOUND: 404,
  EXTENSION_NOT_FOUND: 404,
  COMMAND_NOT_FOUND: 404,
  CONTRIBUTION_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  REQUEST_TIMEOUT: 408,
  HEADERS_TOO_LARGE: 431,
  UNPROCESSABLE: 422,
  RATE_LIMITED: 429,
  CANCELLED: 499,
  INTERNAL: 500,
  STREAM_ERROR: 502,
  NETWORK_UNREACHABLE: 502,
  NOT_IMPLEMENTED: 501,
  ROUTE_HANDLER_MISSING: 501,
  SERVICE_UNAVAILABLE: 503,
  EXTENSION_HOST_CRASHED: 503,
  EXTENSION_HOST_UNRESPONSIVE: 503,
  EXTENSION_DISABLED: 503,
  NETWORK_ISOLATION_UNAVAILABLE: 503,
  ACTIVATION_FAILED: 503,
  DEPENDENCY_FAILED: 503,
  UPGRADE_REQUIRED: 426,
  SHUTTING_DOWN: 503,
  NO_ACCELERATOR: 503,
  TIMEOUT: 504,
};

export interface ErrorPayload {
  code: ErrorCode;
  message: string;
  details?: unknown;
}

/** An error that is a value: a stable code, a message a person can act on, optional details. */
export class AionError extends Error {
  readonly code: ErrorCode;
  readonly details?: unknown;
  /** Overrides the status derived from the code (e.g. 429 with a Retry-After header). */
  readonly status?: number;
  readonly headers?: Record<string, string>;

  constructor(code: ErrorCode, message: string, options: { details?: unknown; status?: number; headers?: Record<string, string>; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AionError';
    this.code = code;
    this.details = options.details;
    this.status = options.status;
    this.headers = options.headers;
  }

  get httpStatus(): number {
    return this.status ?? HttpStatusByCode[this.code] ?? 500;
  }

  toJSON(): ErrorPayload {
    return this.details === undefined ? { code: this.code, message: this.message } : { code: this.code, message: this.message, details: this.details };
  }
}

export function isAionError(value: unknown): value is AionError {
  return (
    value instanceof AionError ||
    (typeof value === 'object' &&
      value !== null &&
      (value as { name?: unknown }).name === 'AionError' &&
      typeof (value as { code?: unknown }).code === 'string')
  );
}
