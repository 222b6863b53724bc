import assert from 'node:assert/strict';
import { loadConfig, probeRedis, startTestKernel, TEST_REDIS_URL, type TestKernel } from '../src/index.js';
import { fixture } from './helpers.js';

interface Info {
  self: { id: string; host: string; pid: number; startedAt: string };
  members: Array<{ id: string }> | null;
}

describe('aion.cluster: the kernels an extension runs among', function () {
  this.timeout(60_000);
  const kernels: TestKernel[] = [];
  const start = (server: Record<string, unknown> = {}) =>
    startTestKernel({ extensions: [fixture('cluster')], config: { server } }).then((k) => (kernels.push(k), k));
  const info = (k: TestKernel) => k.executeCommand<Info>('cluster.info');
  after(() => Promise.all(kernels.map((k) => k.stop())));

  it('names this kernel, and answers no members without Redis: alone it cannot tell a stopped peer from a live one', async () => {
    const k = await start();
    const { self, members } = await info(k);
    assert.equal(self.pid, process.pid);
    assert.match(self.id, new RegExp(`-${process.pid}-[0-9a-f]{8}$`));
    assert.ok(!Number.isNaN(Date.parse(self.startedAt)));
    assert.equal(members, null);
  });

  it('lists the kernels sharing a Redis, and drops one at once when it stops', async function () {
    const problem = await probeRedis();
    if (problem) {
      if (process.env.CI) throw new Error(`Redis at ${TEST_REDIS_URL} is required in CI: ${problem}`);
      console.log(`    (skipped: Redis at ${TEST_REDIS_URL} is unreachable: ${problem})`);
      this.skip();
    }
    const server = { redisUrl: TEST_REDIS_URL, cluster: { heartbeatMs: 200, livenessMs: 1_000 } };
    const a = await start(server);
    const b = await start(server);
    const [ia, ib] = [await info(a), await info(b)];
    assert.notEqual(ia.self.id, ib.self.id);
    const ids = (i: Info) => new Set(i.members!.map((m) => m.id));
    for (const i of [ia, ib]) {
      assert.ok(ids(i).has(ia.self.id) && ids(i).has(ib.self.id), 'each sees both');
    }
    // Past the liveness window: renewed presence keeps both listed.
    await new Promise((r) => setTimeout(r, 1_500));
    assert.ok(ids(await info(a)).has(ib.self.id), 'B renewed its presence');
    await b.stop();
    kernels.splice(kernels.indexOf(b), 1);
    assert.ok(!ids(await info(a)).has(ib.self.id), 'B left on a clean stop');
  });

  it('refuses a liveness window shorter than two heartbeats', () => {
    assert.throws(
      () => loadConfig({ overrides: { server: { cluster: { heartbeatMs: 1_000, livenessMs: 1_500 } } }, env: {} }),
      (err: Error & { code?: string }) => err.code === 'CONFIG_INVALID' && /livenessMs \(1500\) must be at least twice/.test(err.message),
    );
  });
});
