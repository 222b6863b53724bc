import { randomUUID } from 'node:crypto';
import { AionError, ErrorCodes, type HttpRequestData } from '@aion/extension-api';
import type { MessageRow, NewMessage, SessionRow } from './sessionStore.js';

/** The `aion.sessions` configuration section, defaults applied by the kernel. */
export interface SessionsConfiguration {
  ttlSeconds: number;
  purgeAfterSeconds: number;
  sweepIntervalSeconds: number;
  titleLength: number;
  pageSize: { default: number; max: number };
  maxContentBytes: number;
  sync: { pageSize: number; maxSessions: number; maxMessages: number };
}

export const ROLES = new Set(['user', 'assistant', 'system', 'tool']);
const ID = /^[A-Za-z0-9_-]{1,64}$/;

/** A body that must be a JSON object; a request without a body reads as `{}`. Nothing else is guessed at. */
export function jsonObjectBody(req: HttpRequestData): Record<string, unknown> {
  if (req.rawBody !== undefined) throw new AionError(ErrorCodes.UNSUPPORTED_MEDIA_TYPE, 'send the body as a JSON object with Content-Type: application/json');
  if (req.body === undefined) return {};
  if (typeof req.body !== 'object' || req.body === null || Array.isArray(req.body))
    throw new AionError(ErrorCodes.VALIDATION_FAILED, 'the body is a JSON object, e.g. { "title": "plans" }');
  return req.body as Record<string, unknown>;
}

export function checkId(value: unknown, what: string): string {
  if (typeof value !== 'string' || !ID.test(value)) throw new AionError(ErrorCodes.VALIDATION_FAILED, `${what} is 1-64 letters, digits, _ or - (a UUID fits)`);
  return value;
}

export function checkTitle(value: unknown): string | null {
  if (value === null) return null;
  if (typeof value !== 'string' || value.trim() === '' || value.length > 200)
    throw new AionError(ErrorCodes.VALIDATION_FAILED, 'a title is 1-200 characters, or null');
  return value.trim();
}

function checkMetadata(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'object' || Array.isArray(value)) throw new AionError(ErrorCodes.VALIDATION_FAILED, 'metadata is a JSON object');
  return JSON.stringify(value);
}

/** A message as the client sent it; ids may come from the client (offline devices make their own). */
export function checkMessage(input: unknown, now: number, options: { requireId?: boolean; maxContentBytes?: number } = {}): NewMessage {
  const m = (input ?? {}) as { id?: unknown; role?: unknown; content?: unknown; metadata?: unknown; created_at?: unknown };
  const id = m.id === undefined && !options.requireId ? randomUUID() : checkId(m.id, 'message id');
  if (typeof m.role !== 'string' || !ROLES.has(m.role)) throw new AionError(ErrorCodes.VALIDATION_FAILED, `role is one of ${[...ROLES].join(', ')}`);
  if (typeof m.content !== 'string') throw new AionError(ErrorCodes.VALIDATION_FAILED, 'content is a string');
  if (options.maxContentBytes && Buffer.byteLength(m.content) > options.maxContentBytes)
    throw new AionError(ErrorCodes.PAYLOAD_TOO_LARGE, `content is limited to ${options.maxContentBytes} bytes`);
  if (m.created_at !== undefined && (!Number.isSafeInteger(m.created_at) || (m.created_at as number) < 0))
    throw new AionError(ErrorCodes.VALIDATION_FAILED, 'created_at is milliseconds since the epoch');
  return { id, role: m.role, content: m.content, metadata: checkMetadata(m.metadata), created_at: (m.created_at as number | undefined) ?? now };
}

/** The first line of the first user message, shortened at a word boundary. */
export function deriveTitle(content: string, length: number): string | null {
  const line = content.replace(/\s+/g, ' ').trim();
  if (!line) return null;
  if (line.length <= length) return line;
  const cut = line.slice(0, length - 1);
  const space = cut.lastIndexOf(' ');
  return `${(space > length / 2 ? cut.slice(0, space) : cut).trimEnd()}…`;
}

export function sessionView(s: SessionRow) {
  if (s.deleted_at !== null) return { id: s.id, deleted_at: s.deleted_at, seq: s.seq };
  return {
    id: s.id,
    owner_id: s.owner_id,
    tenant_id: s.tenant_id,
    title: s.title,
    title_updated_at: s.title_updated_at,
    message_count: s.message_count,
    metadata: s.metadata ? JSON.parse(s.metadata) : null,
    created_at: s.created_at,
    updated_at: s.updated_at,
    last_activity_at: s.last_activity_at,
    expires_at: s.expires_at,
    deleted_at: null,
    seq: s.seq,
  };
}

export function messageView(m: MessageRow) {
  return {
    id: m.id,
    session_id: m.session_id,
    role: m.role,
    content: m.content,
    metadata: m.metadata ? JSON.parse(m.metadata) : null,
    created_at: m.created_at,
    seq: m.seq,
  };
}

/** Opaque list cursors: the (created_at, id) of the last session of a page. */
export function encodeCursor(s: SessionRow): string {
  return Buffer.from(JSON.stringify([s.created_at, s.id])).toString('base64url');
}

export function decodeCursor(value: unknown): [number, string] | undefined {
  if (value === undefined) return undefined;
  try {
    const parsed = JSON.parse(Buffer.from(String(value), 'base64url').toString('utf8'));
    if (Array.isArray(parsed) && Number.isSafeInteger(parsed[0]) && typeof parsed[1] === 'string') return [parsed[0], parsed[1]];
  } catch {
    // Reported below.
  }
  throw new AionError(ErrorCodes.VALIDATION_FAILED, 'cursor is not one this server gave out');
}
