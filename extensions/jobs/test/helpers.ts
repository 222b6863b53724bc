import { randomBytes } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { requireServer } from '@aion/ext-storage/testing';
import { probeRedis, REDIS_URL } from '@aion/ext-auth/testing';
import { waitFor as waitForCondition } from '@aion/core';

export { probeRedis, REDIS_URL };

export const FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures');
export const CLI = resolve(FIXTURES, '..', '..', '..', '..', 'core', 'dist', 'src', 'cli', 'main.js');

export type BackendName = 'embedded' | 'bullmq';

/** Removes every key under a test's prefix. */
export async function dropPrefix(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

export interface BackendTarget {
  name: BackendName;
  /** `extensions["aion.jobs"]` for this backend, merged over `extra`. */
  jobsConfig(extra?: Record<string, unknown>): Record<string, unknown>;
}

/** Runs a suite on the embedded backend and on BullMQ (Redis: skipped with a notice, failed when CI=true). */
export function forEachBackend(title: string, suite: (target: BackendTarget) => void): void {
  for (const name of ['embedded', 'bullmq'] as const) {
    describe(`${title} [${name}]`, function () {
      // Worker processes start real kernels; a shared 2-core machine needs room.
      this.timeout(120_000);
      const prefix = `aion-test-${randomBytes(4).toString('hex')}`;
      if (name === 'bullmq') {
        before(async function () {
          requireServer(this, `Redis at ${REDIS_URL}`, await probeRedis());
        });
        after(async () => {
          if (!(await probeRedis())) await dropPrefix(prefix);
        });
      }
      suite({
        name,
        jobsConfig: (extra = {}) =>
          name === 'embedded' ? { ...extra, backend: 'embedded' } : { ...extra, backend: 'bullmq', redisUrl: REDIS_URL, redisPrefix: prefix },
      });
    });
  }
}

/** The test kit's waitFor with this suite's defaults. */
export const waitFor = <T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20_000, everyMs = 25) =>
  waitForCondition<T>(what, probe, timeoutMs, everyMs);
