import { randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import type { AionError, ErrorPayload, RouteContribution } from '@aion/extension-api';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The client's X-Request-Id when it is a sane token, else a fresh one. */
export function requestIdFrom(header: unknown): string {
  return typeof header === 'string' && REQUEST_ID.test(header) ? header : randomUUID();
}

export type ErrorFormat = NonNullable<RouteContribution['errorFormat']>;

/** OpenAI's error `type` for an HTTP status, as its client libraries and documentation use them. */
export function openAIErrorType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return status === 500 ? 'server_error' : 'api_error';
  return 'invalid_request_error';
}

/**
 * The one error shape every answer of the edge uses: `{ error: { code, message, details } }`. Routes
 * that speak the OpenAI API (`errorFormat: "openai"`) add OpenAI's `type` and `param` to it, so OpenAI
 * clients read the same body as their own error kinds.
 */
export function errorBody(
  error: AionError | ErrorPayload,
  format: ErrorFormat = 'aion',
  status?: number,
): { error: ErrorPayload & { type?: string; param?: string | null } } {
  const e: ErrorPayload & { type?: string; param?: string | null } = { code: error.code, message: error.message };
  if (error.details !== undefined) e.details = error.details;
  if (format === 'openai') {
    e.type = openAIErrorType(status ?? (error as AionError).httpStatus ?? 500);
    const param = (error.details as { param?: unknown } | undefined)?.param;
    e.param = typeof param === 'string' ? param : null;
  }
  return { error: e };
}

/** Top-level folders of host filesystems (Linux, macOS) and of this host: a path under one is a file path, not an API path. */
const FILESYSTEM_ROOTS = new Set([
  'Applications',
  'Library',
  'System',
  'Users',
  'Volumes',
  'bin',
  'boot',
  'dev',
  'etc',
  'home',
  'lib',
  'lib64',
  'media',
  'mnt',
  'nix',
  'opt',
  'private',
  'proc',
  'root',
  'run',
  'sbin',
  'snap',
  'srv',
  'sys',
  'tmp',
  'usr',
  'var',
  'work',
  'workspace',
]);
try {
  for (const entry of readdirSync('/')) FILESYSTEM_ROOTS.add(entry);
} catch {
  // No readable root (a sandboxed process): the fixed list stands.
}

/** A POSIX absolute path not inside a URL or a word, a Windows path, a home-relative path or a file URL. */
const PATHS = /file:\/\/\S+|(?<![A-Za-z])[A-Za-z]:[\\/][^\s'"`<>|]*|~\/[^\s'"`<>]*|(?<![\w.:/~-])\/([\w.@+-]+)(?:\/[\w.@+-]*)*/g;

/** Untrusted text heading to a client: no host filesystem paths, no stack lines. API paths such as `/v1/models` stay. */
export function sanitizeMessage(message: string): string {
  return message
    .split('\n')[0]!
    .replace(PATHS, (match: string, first: string | undefined) => (first === undefined || FILESYSTEM_ROOTS.has(first) ? '[path]' : match))
    .slice(0, 500);
}

/** A whole HTTP/1.1 answer for a socket that no request object owns: refused connections, parse errors, upgrades. */
export function rawErrorResponse(error: AionError, requestId: string = randomUUID()): string {
  const status = error.httpStatus;
  const body = JSON.stringify(errorBody(error, 'aion', status));
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`,
    'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    `X-Request-Id: ${requestId}`,
    'Connection: close',
  ];
  for (const [k, v] of Object.entries(error.headers ?? {})) if (k.toLowerCase() !== 'connection') lines.push(`${k}: ${v}`);
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}
