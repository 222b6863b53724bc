import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { AionError, ErrorPayload } from '@aion/extension-api';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The client's X-Request-Id when it is a sane token, else a fresh one. */
export function requestIdFrom(header: unknown): string {
  return typeof header === 'string' && REQUEST_ID.test(header) ? header : randomUUID();
}

/** The one error shape every answer of the edge uses. */
export function errorBody(error: AionError | ErrorPayload): { error: ErrorPayload } {
  const e: ErrorPayload = { code: error.code, message: error.message };
  if (error.details !== undefined) e.details = error.details;
  return { error: e };
}

/** Untrusted text heading to a client: no host paths, no stack lines. */
export function sanitizeMessage(message: string): string {
  return message
    .split('\n')[0]!
    .replace(/(?:[A-Za-z]:)?(?:\/[\w.@+-]+){2,}\/?/g, '[path]')
    .slice(0, 500);
}

/** A whole HTTP/1.1 answer for a socket that no request object owns: refused connections, parse errors, upgrades. */
export function rawErrorResponse(error: AionError, requestId: string = randomUUID()): string {
  const status = error.httpStatus;
  const body = JSON.stringify(errorBody(error));
  const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`, 'Content-Type: application/json', `Content-Length: ${Buffer.byteLength(body)}`, `X-Request-Id: ${requestId}`, 'Connection: close'];
  for (const [k, v] of Object.entries(error.headers ?? {})) if (k.toLowerCase() !== 'connection') lines.push(`${k}: ${v}`);
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}
