import assert from 'node:assert/strict';
import { io as connectSocket } from 'socket.io-client';
import { probeRedis, startTestKernel, TEST_REDIS_URL, type TestKernel } from '../src/index.js';
import { fixture } from './helpers.js';

const REDIS_URL = TEST_REDIS_URL;

describe('socket.io across kernels on one Redis', function () {
  this.timeout(60_000);
  const kernels: TestKernel[] = [];
  const start = (redisUrl: string) =>
    startTestKernel({
      extensions: [fixture('basic'), fixture('test-auth')],
      config: { server: { redisUrl }, permissions: { grants: { 'fixtures.test-auth': { kernelHost: true } } } },
    });

  before(async function () {
    const problem = await probeRedis();
    if (problem) {
      if (process.env.CI) throw new Error(`Redis at ${REDIS_URL} is required in CI: ${problem}`);
      console.log(`    (skipped: Redis at ${REDIS_URL} is unreachable: ${problem})`);
      this.skip();
    }
    kernels.push(await start(REDIS_URL), await start(REDIS_URL));
  });
  after(() => Promise.all(kernels.map((k) => k.stop())));

  it('delivers a publication made on one kernel to a client subscribed on another', async () => {
    const [a, b] = kernels as [TestKernel, TestKernel];
    const socket = connectSocket(b.url, { auth: { token: 'good' }, transports: ['websocket'] });
    try {
      await new Promise<void>((resolve, reject) => socket.on('connect', resolve).on('connect_error', reject));
      assert.deepEqual(await socket.emitWithAck('subscribe', { room: 'user:ada' }), { ok: true, room: 'user:ada' });
      const got = new Promise((resolve) => socket.on('note', resolve));
      const res = await a.request('/v1/basic/publish', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ room: 'user:ada', data: { from: 'a' } }),
      });
      assert.equal(res.status, 202);
      assert.deepEqual(await got, { from: 'a' });
    } finally {
      socket.close();
    }
  });

  it('refuses to start when the configured Redis does not answer, naming it with the password masked', async () => {
    await assert.rejects(start('redis://user:hunter2@127.0.0.1:1'), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'CONFIG_INVALID');
      assert.match(err.message, /server\.redisUrl redis:\/\/user:\*\*\*@127\.0\.0\.1:1\/? does not answer/);
      assert.doesNotMatch(err.message, /hunter2/);
      return true;
    });
  });
});
