import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const fixtures = fileURLToPath(new URL('../../test/fixtures/', import.meta.url));
export const fixture = (name: string) => join(fixtures, name);

/** Writes an extension folder from a manifest object (or raw text) and optional files. */
export function writeExtension(root: string, folder: string, manifest: object | string, files: Record<string, string> = {}): string {
  const dir = join(root, folder);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), typeof manifest === 'string' ? manifest : JSON.stringify(manifest));
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  return dir;
}

export const tempDir = (prefix = 'aion-core-') => mkdtempSync(join(tmpdir(), prefix));

export async function waitFor<T>(probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export const base = (extra: object = {}) => ({ publisher: 't', version: '1.0.0', engines: { aion: '^0.1.0' }, ...extra });

/** An extension whose route answers the version its code was written with. */
export function writeVersioned(root: string, version: number): string {
  return writeExtension(
    root,
    'versioned',
    base({
      name: 'versioned',
      main: 'extension.js',
      type: 'module',
      activationEvents: ['onStartup'],
      contributes: { routes: [{ method: 'GET', path: '/v1/versioned' }] },
      aion: { host: 'shared' },
    }),
    {
      'extension.js': `import * as aion from '@aion/extension-api';\nexport function activate(ctx) { ctx.subscriptions.push(aion.http.handle('GET /v1/versioned', () => ({ body: { version: ${version}, pid: process.pid } }))); }\n`,
    },
  );
}
