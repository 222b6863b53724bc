/** Aion's stable error codes as gRPC status codes, one table for the whole service. */
import { status as GrpcStatus, Metadata, type ServiceError } from '@grpc/grpc-js';

const BY_CODE: Record<string, GrpcStatus> = {
  BAD_REQUEST: GrpcStatus.INVALID_ARGUMENT,
  VALIDATION_FAILED: GrpcStatus.INVALID_ARGUMENT,
  PAYLOAD_TOO_LARGE: GrpcStatus.INVALID_ARGUMENT,
  UNAUTHENTICATED: GrpcStatus.UNAUTHENTICATED,
  TOKEN_EXPIRED: GrpcStatus.UNAUTHENTICATED,
  TOKEN_REVOKED: GrpcStatus.UNAUTHENTICATED,
  FORBIDDEN: GrpcStatus.PERMISSION_DENIED,
  PERMISSION_DENIED: GrpcStatus.PERMISSION_DENIED,
  NOT_FOUND: GrpcStatus.NOT_FOUND,
  CONFLICT: GrpcStatus.FAILED_PRECONDITION,
  IDEMPOTENCY_KEY_REUSED: GrpcStatus.ALREADY_EXISTS,
  RATE_LIMITED: GrpcStatus.RESOURCE_EXHAUSTED,
  SATURATED: GrpcStatus.RESOURCE_EXHAUSTED,
  SERVICE_UNAVAILABLE: GrpcStatus.UNAVAILABLE,
  SHUTTING_DOWN: GrpcStatus.UNAVAILABLE,
  EXTENSION_HOST_CRASHED: GrpcStatus.UNAVAILABLE,
  TIMEOUT: GrpcStatus.DEADLINE_EXCEEDED,
  CANCELLED: GrpcStatus.CANCELLED,
  NOT_IMPLEMENTED: GrpcStatus.UNIMPLEMENTED,
};

/** The gRPC status a thrown error becomes; the Aion code travels in `aion-error-code` metadata. */
export function toServiceError(err: unknown): Partial<ServiceError> {
  const e = err as { code?: unknown; message?: string; headers?: Record<string, string>; details?: unknown };
  const code = typeof e?.code === 'string' ? e.code : 'INTERNAL';
  const metadata = new Metadata();
  metadata.set('aion-error-code', code);
  const retryAfter = e?.headers?.['Retry-After'] ?? e?.headers?.['retry-after'];
  if (retryAfter) metadata.set('retry-after', String(retryAfter));
  // An unknown failure's message may hold internals: the caller gets the code, the log the rest.
  const known = code in BY_CODE || /^[A-Z][A-Z0-9_]+$/.test(code);
  return {
    code: BY_CODE[code] ?? (code.startsWith('PROVIDER_') || code === 'NO_PROVIDER' ? GrpcStatus.UNAVAILABLE : GrpcStatus.INTERNAL),
    details: known ? (e.message ?? code) : 'internal error',
    metadata,
  };
}

export function aionError(code: string, message: string, headers?: Record<string, string>): Partial<ServiceError> {
  return toServiceError({ code, message, headers });
}
