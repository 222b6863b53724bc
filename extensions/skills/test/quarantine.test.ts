import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startTestKernel, type TestKernel } from '@aion/core';
import { SkillQuarantine } from '../src/quarantine.js';
import { bearer, fixture, newKey, removeDir, signedHostilePack, skillsRoot, startService, tempDir } from './support/helpers.js';

describe('quarantine of a skill the sandbox keeps killing', function () {
  this.timeout(120_000);
  const key = newKey();
  let work: string;
  let kernel: TestKernel;
  let config: Record<string, unknown>;

  const startKernel = () =>
    startTestKernel({
      extensions: [skillsRoot, fixture('test-auth'), fixture('js-skills')],
      config: { dataDir: join(work, 'data'), extensions: { 'aion.skills': config } },
    });

  before(async () => {
    work = tempDir();
    config = {
      trustedKeys: [{ name: 'test', publicKey: key.publicKeyLine }],
      packsDir: join(work, 'skills'),
      quarantineDir: join(work, 'refused-packs'),
      rateLimit: { enabled: false },
      wasm: { workers: 1 },
      quarantine: { maxFailures: 3, windowMs: 300_000 },
    };
    const setup = await startService({ dataDir: work, config });
    await setup.service.installPack(await signedHostilePack(join(work, 'src-hostile'), key));
    await setup.stop();
    kernel = await startKernel();
  });

  after(async () => {
    await kernel?.stop();
    removeDir(work);
  });

  const exec = async (id: string, args: unknown = {}, token = 'runner') => {
    const res = await kernel.request(`/v1/skills/${id}/execute`, { method: 'POST', headers: bearer(token), body: JSON.stringify({ args }) });
    return { status: res.status, body: (await res.json()) as any };
  };
  const describeSkill = async (id: string) => (await (await kernel.request(`/v1/skills/${id}`, { headers: bearer('reader') })).json()) as any;
  const enable = (id: string, token = 'admin') => kernel.request(`/v1/skills/${id}/enable`, { method: 'POST', headers: bearer(token) });
  const echoStillWorks = async () => {
    const echo = await exec('hostile.echo', { text: 'neighbour' });
    assert.equal(echo.status, 200, JSON.stringify(echo.body));
    assert.deepEqual(echo.body.result, { text: 'neighbour' });
  };

  it('quarantines a WASM skill after three timeouts, refuses it with 423, and leaves its neighbours serving', async () => {
    for (let i = 0; i < 3; i++) {
      const [loop] = await Promise.all([exec('hostile.loop'), echoStillWorks()]);
      assert.equal(loop.status, 504);
      assert.equal(loop.body.error.code, 'TIMEOUT');
    }
    const refused = await exec('hostile.loop');
    assert.equal(refused.status, 423);
    assert.equal(refused.body.error.code, 'SKILL_QUARANTINED');
    assert.match(
      refused.body.error.message,
      /quarantined\. The sandbox had to kill it 3 times within 300 s \(TIMEOUT, TIMEOUT, TIMEOUT\); the last time: The skill did not finish within 300 ms\. An operator lifts the quarantine by enabling the skill/,
    );
    assert.equal(refused.body.error.details.enable, 'POST /v1/skills/hostile.loop/enable');
    assert.deepEqual(
      refused.body.error.details.quarantine.failures.map((f: { code: string }) => f.code),
      ['TIMEOUT', 'TIMEOUT', 'TIMEOUT'],
    );

    const described = await describeSkill('hostile.loop');
    assert.equal(described.state, 'quarantined');
    assert.equal(described.enabled, false);
    assert.match(described.quarantine.reason, /3 times within 300 s/);
    assert.ok(Date.parse(described.quarantine.at) > 0);
    const listed = (await (await kernel.request('/v1/skills?tag=hostile&limit=100', { headers: bearer('reader') })).json()) as any;
    const states = Object.fromEntries(listed.skills.map((s: { id: string; state: string }) => [s.id, s.state]));
    assert.equal(states['hostile.loop'], 'quarantined');
    assert.equal(states['hostile.grow'], 'enabled');
    await echoStillWorks();
    assert.equal((await describeSkill('hostile.echo')).state, 'enabled');
  });

  it('is lifted only by the admin enable route, which also resets the window', async () => {
    assert.equal((await enable('hostile.loop', 'runner')).status, 403);
    const res = await enable('hostile.loop');
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { id: 'hostile.loop', enabled: true });
    assert.equal((await describeSkill('hostile.loop')).state, 'enabled');
    // It runs again: two more kills, then an enable that forgets them, then one more kill.
    assert.equal((await exec('hostile.loop')).status, 504);
    assert.equal((await exec('hostile.loop')).status, 504);
    assert.equal((await enable('hostile.loop')).status, 200);
    assert.equal((await exec('hostile.loop')).status, 504);
    assert.equal((await describeSkill('hostile.loop')).state, 'enabled', 'the two kills before the enable were still counted');
    assert.equal((await exec('hostile.loop')).status, 504);
    assert.equal((await exec('hostile.loop')).status, 504);
    assert.equal((await exec('hostile.loop')).status, 423);
  });

  it('counts a process skill killed by a signal, not failures the sandbox did not have to kill', async () => {
    for (let i = 0; i < 3; i++) {
      assert.equal((await exec('hostile.native', { fail: true })).status, 502);
      assert.equal((await exec('hostile.fail')).body.error.code, 'SKILL_FAILED');
      assert.equal((await exec('hostile.grow')).body.error.code, 'MEMORY_LIMIT');
      assert.equal((await exec('hostile.bigout')).body.error.code, 'OUTPUT_TOO_LARGE');
      assert.equal((await exec('demo.hang')).body.error.code, 'TIMEOUT');
    }
    for (const id of ['hostile.native', 'hostile.fail', 'hostile.grow', 'hostile.bigout', 'demo.hang'])
      assert.equal((await describeSkill(id)).state, 'enabled', id);

    for (let i = 0; i < 3; i++) {
      const died = await exec('hostile.native', { die: true });
      assert.equal(died.status, 502);
      assert.match(died.body.error.message, /killed by SIGKILL/);
    }
    const refused = await exec('hostile.native', { text: 'hello' });
    assert.equal(refused.status, 423);
    assert.equal(refused.body.error.code, 'SKILL_QUARANTINED');
    await echoStillWorks();
  });

  it('keeps a quarantine across a restart until the skill is enabled', async () => {
    await kernel.stop();
    kernel = await startKernel();
    assert.equal((await describeSkill('hostile.native')).state, 'quarantined');
    assert.equal((await exec('hostile.native', { text: 'x' })).status, 423);
    assert.equal((await enable('hostile.native')).status, 200);
    const ok = await exec('hostile.native', { text: 'back' });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.result.echoed, 'back');
  });
});

describe('SkillQuarantine', () => {
  let now = 0;
  const clock = () => now;

  it('counts fatal failures in a sliding window', () => {
    const quarantine = new SkillQuarantine({ enabled: true, maxFailures: 3, windowMs: 1000 }, clock);
    now = 0;
    assert.equal(quarantine.recordFatal('a', 'TIMEOUT', 'slow'), undefined);
    now = 600;
    assert.equal(quarantine.recordFatal('a', 'TIMEOUT', 'slow'), undefined);
    now = 1100; // the first failure has left the window
    assert.equal(quarantine.recordFatal('a', 'MEMORY_LIMIT', 'big'), undefined);
    assert.equal(quarantine.recordFatal('b', 'TIMEOUT', 'other skill'), undefined);
    now = 1500;
    const record = quarantine.recordFatal('a', 'TIMEOUT', 'slow again');
    assert.ok(record);
    assert.deepEqual(
      record.failures.map((f) => f.code),
      ['TIMEOUT', 'MEMORY_LIMIT', 'TIMEOUT'],
    );
    assert.match(record.reason, /3 times within 1 s .*the last time: slow again/);
    assert.equal(quarantine.get('b'), undefined);
    assert.equal(quarantine.release('a'), true);
    assert.equal(quarantine.get('a'), undefined);
    assert.equal(quarantine.release('a'), false);
  });

  it('quarantines nothing when turned off', () => {
    const quarantine = new SkillQuarantine({ enabled: false, maxFailures: 1, windowMs: 1000 }, clock);
    assert.equal(quarantine.recordFatal('a', 'TIMEOUT', 'slow'), undefined);
    assert.equal(quarantine.get('a'), undefined);
  });
});
