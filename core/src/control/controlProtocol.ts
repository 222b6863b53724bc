import { lstatSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { AionError } from '@aion/extension-api';

/**
 * The local control channel: newline-delimited JSON over a Unix domain socket in the data directory.
 * The server opens with `hello` (protocol version, capabilities); the client answers `auth` (its
 * protocol version and the shared secret); the server answers `ready` or an error and closes.
 * Then `{ id, method, params }` → `{ id, result }` | `{ id, error }`.
 */
export const CONTROL_PROTOCOL_VERSION = 1;

export const ControlErrorCodes = {
  /** The two sides speak different protocol versions. */
  PROTOCOL_MISMATCH: 'CONTROL_PROTOCOL_MISMATCH',
  /** No server listens on the socket (none running, or a stale socket). */
  UNAVAILABLE: 'CONTROL_UNAVAILABLE',
  /** The socket or secret file is not this user's alone: refuse to trust it or to send it the secret. */
  UNSAFE: 'CONTROL_UNSAFE',
} as const;

/** Methods the server answers; sent in `hello` as its capabilities. */
export const CONTROL_METHODS = ['extensions.list', 'health', 'reload', 'commands.execute'] as const;
export type ControlMethod = (typeof CONTROL_METHODS)[number];

export type ServerMessage =
  | { type: 'hello'; protocol: number; capabilities: string[] }
  | { type: 'ready'; server: { version: string; pid: number; url: string } }
  | { type: 'error'; code: string; message: string }
  | { id: number; result: unknown }
  | { id: number; error: { code: string; message: string } };

export type ClientMessage = { type: 'auth'; protocol: number; secret: string } | { id: number; method: string; params?: Record<string, unknown> };

/** A line longer than this is refused: nothing the protocol sends comes close. */
export const MAX_LINE_BYTES = 64 * 1024;

export const controlSocketPath = (dataDir: string) => join(dataDir, 'aion.sock');
export const controlSecretPath = (dataDir: string) => join(dataDir, 'control.secret');

/** Throws CONTROL_UNSAFE unless `path` belongs to this user and no one else may read or write it. */
export function assertPrivate(path: string, what: string): Stats {
  const stats = lstatSync(path);
  if (stats.isSymbolicLink()) throw new AionError(ControlErrorCodes.UNSAFE, `${what} ${path} is a symbolic link: refusing to use it`);
  const uid = process.getuid?.();
  if (uid !== undefined && stats.uid !== uid)
    throw new AionError(ControlErrorCodes.UNSAFE, `${what} ${path} belongs to uid ${stats.uid}, not to you (uid ${uid}): refusing to use it`);
  if ((stats.mode & 0o077) !== 0)
    throw new AionError(ControlErrorCodes.UNSAFE, `${what} ${path} has mode ${(stats.mode & 0o777).toString(8)}; it must be 600 (chmod 600 ${path})`);
  return stats;
}

/** Splits a socket's data into JSON messages; an oversized or malformed line calls `onBad`. */
export function readMessages(socket: NodeJS.ReadableStream, onMessage: (message: Record<string, unknown>) => void, onBad: (reason: string) => void): void {
  let buffer = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (!line.trim()) continue;
      let message: unknown;
      try {
        message = JSON.parse(line);
      } catch {
        return onBad('a line is not JSON');
      }
      if (!message || typeof message !== 'object' || Array.isArray(message)) return onBad('a message is not a JSON object');
      onMessage(message as Record<string, unknown>);
    }
    if (buffer.length > MAX_LINE_BYTES) onBad(`a line exceeds ${MAX_LINE_BYTES} bytes`);
  });
}
