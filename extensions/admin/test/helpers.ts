import { existsSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PACKAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CONSOLE_DIR = join(PACKAGE_DIR, 'dist', 'console');
/** Screenshots of each console page, for a person to look at after a run (git-ignored). */
export const ARTIFACTS_DIR = join(PACKAGE_DIR, 'test-artifacts');

/** The built-in extensions the console's tests run with. */
export const CONSOLE_BUILTINS = ['aion.storage', 'aion.auth', 'aion.sessions', 'aion.observability', 'aion.admin'];

export function assertConsoleBuilt(): void {
  if (!existsSync(join(CONSOLE_DIR, 'index.html'))) throw new Error(`the admin console is not built: run "npm run build" first (expected ${CONSOLE_DIR})`);
}

/** A GET with the path sent exactly as written (fetch would resolve `..` before sending it). */
export function rawGet(
  base: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const url = new URL(base);
  return new Promise((resolvePromise, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, method: 'GET', path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Polls `probe` until it returns a value. */
export async function until<T>(probe: () => Promise<T | undefined> | T | undefined, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
