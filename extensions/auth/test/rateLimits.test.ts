import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { startTestKernel, type TestKernel } from '@aion/core';
import { forEachDatabase, requireServer, STORAGE_EXTENSION_DIR } from '@aion/ext-storage/testing';
import { AUTH_EXTENSION_DIR, call, createUser, signInAdmin } from '../src/testing.js';
import { probeRedis, REDIS_URL } from '../src/testing.js';

/** Sends requests until one is refused; answers how many passed and the refusal. */
async function untilRefused(
  send: () => Promise<Response>,
  max: number,
): Promise<{ passed: number; refused?: Response; elapsedMs: number; remaining: number[] }> {
  const started = performance.now();
  const remaining: number[] = [];
  for (let i = 0; i < max; i++) {
    const res = await send();
    if (res.status === 429) return { passed: i, refused: res, elapsedMs: performance.now() - started, remaining };
    remaining.push(Number(res.headers.get('ratelimit-remaining')));
    await res.arrayBuffer();
  }
  return { passed: max, elapsedMs: performance.now() - started, remaining };
}

forEachDatabase('aion.auth rate limits', (db) => {
  let kernel: TestKernel | undefined;
  let apiKey: string;

  before(async () => {
    kernel = await startTestKernel({
      extensions: [STORAGE_EXTENSION_DIR, AUTH_EXTENSION_DIR],
      config: { extensions: { 'aion.storage': db.storageConfig(), 'aion.auth': { scryptCost: 1024 } } },
    });
    const admin = await signInAdmin(kernel);
    const alice = await createUser(kernel, admin.access_token, 'alice');
    apiKey = ((await (await call(kernel, 'POST', '/v1/api-keys', { token: alice.access_token, body: { name: 'load' } })).json()) as { key: string }).key;
  });
  after(async () => kernel?.stop());

  it('lets an API key burst to 120, then answers 429 with a Retry-After that is honest', async () => {
    const run = await untilRefused(() => call(kernel!, 'GET', '/v1/me', { apiKey }), 200);
    // 60/min refills one token a second while the burst is being spent.
    const refilled = Math.floor(run.elapsedMs / 1000);
    assert.ok(run.passed >= 120 && run.passed <= 120 + refilled + 1, `${run.passed} passed in ${Math.round(run.elapsedMs)} ms`);
    assert.equal(run.remaining[0], 119);
    const refused = run.refused!;
    const body = (await refused.json()) as { error: { code: string } };
    assert.equal(body.error.code, 'RATE_LIMITED');
    assert.equal(refused.headers.get('retry-after'), '1', 'the next token arrives within a second');
    assert.equal(refused.headers.get('ratelimit-limit'), '120');
    assert.equal(refused.headers.get('ratelimit-remaining'), '0');
    assert.equal(refused.headers.get('ratelimit-policy'), '60;w=60;burst=120');
    assert.ok(Number(refused.headers.get('ratelimit-reset')) > 100, 'the bucket takes about two minutes to fill again');
    await sleep(Number(refused.headers.get('retry-after')) * 1000);
    assert.equal((await call(kernel!, 'GET', '/v1/me', { apiKey })).status, 200, 'a request after Retry-After passes');
    assert.equal((await call(kernel!, 'GET', '/v1/me', { apiKey })).status, 429, 'and the one after it does not');
  });

  it('limits requests without an API key per address at 120 a minute', async () => {
    const run = await untilRefused(() => kernel!.request('/v1/me'), 200);
    assert.ok(run.passed <= 120 + Math.floor(run.elapsedMs / 500) + 1, `${run.passed} passed`);
    assert.equal(run.refused?.status, 429);
    assert.ok(Number(run.refused!.headers.get('retry-after')) >= 1);
    assert.equal(run.refused!.headers.get('ratelimit-limit'), '120');
  });
});

forEachDatabase('aion.auth rate limits per principal', (db) => {
  let kernel: TestKernel | undefined;

  before(async () => {
    // Refills of one token a minute cannot blur counts within a test.
    kernel = await startTestKernel({
      extensions: [STORAGE_EXTENSION_DIR, AUTH_EXTENSION_DIR],
      config: {
        extensions: {
          'aion.storage': db.storageConfig(),
          'aion.auth': { scryptCost: 1024, rateLimits: { perIp: { perMinute: 1, burst: 3 }, perPrincipal: { perMinute: 1, burst: 5 } } },
        },
      },
    });
  });
  after(async () => kernel?.stop());

  it('charges signed-in requests to their user or device, not to the address every client behind a proxy shares', async () => {
    const admin = await signInAdmin(kernel!);
    const alice = await createUser(kernel!, admin.access_token, 'alice');
    const bob = await createUser(kernel!, admin.access_token, 'bob');
    const device = (
      (await (await call(kernel!, 'POST', '/v1/devices', { token: alice.access_token, body: { name: 'phone' } })).json()) as { access_token: string }
    ).access_token;

    const aliceRun = await untilRefused(() => call(kernel!, 'GET', '/v1/me', { token: alice.access_token }), 10);
    assert.equal(aliceRun.passed, 4, 'five in all, one spent registering the device; more than the address’s three');
    assert.deepEqual(aliceRun.remaining, [3, 2, 1, 0]);
    const refused = aliceRun.refused!;
    const body = (await refused.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'RATE_LIMITED');
    assert.match(body.error.message, /this user/);
    assert.ok(Number(refused.headers.get('retry-after')) >= 50, `one token a minute: Retry-After ${refused.headers.get('retry-after')}`);
    assert.equal(refused.headers.get('ratelimit-limit'), '5');
    assert.equal(refused.headers.get('ratelimit-policy'), '1;w=60;burst=5');

    assert.equal(
      (await untilRefused(() => call(kernel!, 'GET', '/v1/me', { token: bob.access_token }), 10)).passed,
      5,
      'bob, from the same address, has his own bucket',
    );
    assert.equal((await untilRefused(() => call(kernel!, 'GET', '/v1/me', { token: device }), 10)).passed, 5, 'so has alice’s device');

    const anonymous = await untilRefused(() => kernel!.request('/v1/me'), 10);
    assert.equal(anonymous.passed, 3, 'signed-in traffic spent none of the address’s bucket');
    assert.equal(anonymous.refused!.headers.get('ratelimit-limit'), '3');
    const guessing = await call(kernel!, 'GET', '/v1/me', { token: 'not-a-token' });
    assert.equal(guessing.status, 429, 'bad credentials are charged to the address');
  });
});

forEachDatabase('aion.auth rate limits shared through Redis', (db) => {
  let dir: string;
  let a: TestKernel | undefined;
  let b: TestKernel | undefined;
  const prefix = `aion-test-${randomBytes(4).toString('hex')}:`;

  before(async function () {
    requireServer(this, `Redis at ${REDIS_URL}`, await probeRedis());
    dir = mkdtempSync(join(tmpdir(), 'aion-redis-'));
    const config = {
      'aion.storage': db.storageConfig({ sqlite: { path: join(dir, 'shared.db') } }),
      'aion.auth': { scryptCost: 1024, redisUrl: REDIS_URL, rateLimits: { redisKeyPrefix: prefix, perApiKey: { perMinute: 6, burst: 6 } } },
    };
    a = await startTestKernel({ extensions: [STORAGE_EXTENSION_DIR, AUTH_EXTENSION_DIR], config: { extensions: config } });
    b = await startTestKernel({ extensions: [STORAGE_EXTENSION_DIR, AUTH_EXTENSION_DIR], config: { extensions: config } });
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (a) {
      const redis = new Redis(REDIS_URL);
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
    }
  });

  it('two kernels enforce one limit together', async () => {
    const admin = await signInAdmin(a!);
    const alice = await createUser(a!, admin.access_token, 'alice');
    const key = ((await (await call(b!, 'POST', '/v1/api-keys', { token: alice.access_token, body: { name: 'shared' } })).json()) as { key: string }).key;
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await call(i % 2 === 0 ? a! : b!, 'GET', '/v1/me', { apiKey: key })).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200, 429, 429], 'six tokens in all, not six per kernel');
    const refused = await call(b!, 'GET', '/v1/me', { apiKey: key });
    assert.equal(refused.status, 429);
    const retryAfter = Number(refused.headers.get('retry-after'));
    assert.ok(retryAfter >= 9 && retryAfter <= 10, `one token every 10 s: Retry-After ${retryAfter}`);
  });
});
