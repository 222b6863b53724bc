import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);

export const PACKAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const PROBE_FIXTURE = join(PACKAGE_DIR, 'test', 'fixtures', 'probe');
export const ROUTER_DIR = dirname(require.resolve('@aion/ext-router/package.json'));
export const OPENAI_DIR = dirname(require.resolve('@aion/ext-provider-openai/package.json'));
/** The router's test authentication: fixed bearer tokens mapped to principals by configuration. */
export const TEST_AUTH = join(ROUTER_DIR, 'test', 'fixtures', 'test-auth');

export const TOKENS = {
  admin: { sub: 'admin', scopes: ['*'] },
  scraper: { sub: 'prometheus', scopes: ['metrics:read'] },
  user: { sub: 'user', scopes: ['tasks:write', 'tasks:read', 'models:read'] },
};

export const bearer = (token: keyof typeof TOKENS) => ({ authorization: `Bearer ${token}` });

export const chat = (content = 'hello') => ({
  method: 'POST',
  headers: { ...bearer('user'), 'content-type': 'application/json' },
  body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }] }),
});

/** Polls `probe` until it returns a value (the kernel reports about once a second). */
export async function until<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
