import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestKernel, type TestKernel } from '@aion/core';
import { AUTH_EXTENSION_DIR, call } from '@aion/ext-auth/testing';
import { STORAGE_EXTENSION_DIR, type DatabaseTarget } from '@aion/ext-storage/testing';

export const SESSIONS_EXTENSION_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** storage + auth + sessions on the suite's database; rate limits off so tests can be quick. */
export function startSessionsKernel(db: DatabaseTarget, sessions: Record<string, unknown> = {}): Promise<TestKernel> {
  return startTestKernel({
    extensions: [STORAGE_EXTENSION_DIR, AUTH_EXTENSION_DIR, SESSIONS_EXTENSION_DIR],
    config: {
      extensions: {
        'aion.storage': db.storageConfig(),
        'aion.auth': { scryptCost: 1024, rateLimits: { enabled: false } },
        'aion.sessions': sessions,
      },
    },
  });
}

/** `call` that parses JSON and returns status with body. */
export async function api(kernel: TestKernel, method: string, path: string, token: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await call(kernel, method, path, { token, body });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}
