import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Principal } from '@aion/extension-api';
import { probeRedis, TEST_REDIS_URL } from '@aion/core';
import { newKey, removeDir, signedHostilePack, startService, tempDir } from './support/helpers.js';

const REDIS_URL = TEST_REDIS_URL;

const user = (sub: string): Principal => ({ sub, type: 'user', scopes: ['skills:read', 'skills:execute'], tenant_id: 'default' });

describe('skill rate limits shared by two kernels through Redis', function () {
  this.timeout(60_000);
  const key = newKey();
  let work: string;
  const services: Array<Awaited<ReturnType<typeof startService>>> = [];

  before(async function () {
    const problem = await probeRedis();
    if (problem) {
      if (process.env.CI === 'true') throw new Error(`Redis at ${REDIS_URL} is required when CI=true: ${problem}`);
      console.log(`      notice: skipping — Redis at ${REDIS_URL} is unreachable (${problem})`);
      this.skip();
    }
    work = tempDir();
    const pack = await signedHostilePack(join(work, 'pack'), key);
    // One prefix per run, so buckets of earlier runs do not count.
    const rateLimit = { capacity: 3, refillPerSecond: 0.1, redisUrl: REDIS_URL, redisPrefix: `aion-test:${randomUUID()}` };
    for (let i = 0; i < 2; i++) {
      const s = await startService({ config: { trustedKeys: [key.publicKeyLine], rateLimit } });
      await s.service.installPack(pack);
      services.push(s);
    }
  });
  after(async () => {
    for (const s of services) await s.stop();
    if (work) removeDir(work);
  });

  it('counts one caller’s calls on both kernels against one bucket, exactly', async () => {
    const [a, b] = services as [Awaited<ReturnType<typeof startService>>, Awaited<ReturnType<typeof startService>>];
    const call = (s: typeof a, who = 'greedy') => s.service.execute('hostile.echo', { text: 'x' }, { principal: user(who), via: 'api' });
    await call(a);
    await call(b);
    await call(a);
    await assert.rejects(call(b), (err: { code: string; headers?: Record<string, string> }) => {
      assert.equal(err.code, 'RATE_LIMITED', 'the fourth call, on the other kernel, finds the bucket empty');
      assert.equal(err.headers?.['Retry-After'], '10');
      return true;
    });
    await call(b, 'someone-else');
  });
});
