import assert from 'node:assert/strict';
import { appendFile, cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startTestKernel, type TestKernel } from '@aion/core';
import { aion } from './support/cli.js';
import { bearer, fixture, newKey, removeDir, signedHostilePack, skillsRoot, startService, tempDir, until, writeHostilePack } from './support/helpers.js';

describe('skills over HTTP', function () {
  this.timeout(90_000);
  const key = newKey();
  let work: string;
  let kernel: TestKernel;
  let skillsConfig: Record<string, unknown>;

  before(async () => {
    work = tempDir();
    skillsConfig = {
      trustedKeys: [{ name: 'test', publicKey: key.publicKeyLine }],
      packsDir: join(work, 'skills'),
      quarantineDir: join(work, 'quarantine'),
      apiCallers: ['fixtures.tool-user'],
      rateLimit: { capacity: 30, refillPerSecond: 10 },
      wasm: { workers: 1 },
    };
    // Installed before the server starts, as an operator would have done.
    const setup = await startService({ dataDir: work, config: skillsConfig });
    await setup.service.installPack(await signedHostilePack(join(work, 'src-hostile'), key));
    await setup.stop();
    kernel = await startTestKernel({
      extensions: [skillsRoot, fixture('test-auth'), fixture('js-skills'), fixture('tool-user')],
      // tool-user runs tools for principals it names: the operator grants it the privileged skills API.
      config: { extensions: { 'aion.skills': skillsConfig }, permissions: { grants: { 'fixtures.tool-user': { apis: ['aion.skills'] } } } },
    });
  });

  after(async () => {
    await kernel?.stop();
    removeDir(work);
  });

  const get = (path: string, token = 'runner') => kernel.request(path, { headers: bearer(token) });
  const exec = (id: string, args: unknown, token = 'runner') =>
    kernel.request(`/v1/skills/${id}/execute`, { method: 'POST', headers: bearer(token), body: JSON.stringify({ args }) });

  it('needs authentication and the declared scopes', async () => {
    assert.equal((await kernel.request('/v1/skills')).status, 401);
    assert.equal((await exec('hostile.echo', { text: 'x' }, 'reader')).status, 403);
    assert.equal((await get('/v1/skill-packs', 'runner')).status, 403);
  });

  it('searches skills from packs and extensions, grouped by skill with their devices', async () => {
    const all = (await (await get('/v1/skills', 'reader')).json()) as any;
    const ids = all.skills.map((s: { id: string }) => s.id);
    for (const id of ['hostile.echo', 'hostile.native', 'demo.reverse', 'demo.hang']) assert.ok(ids.includes(id), id);
    const found = (await (await get('/v1/skills?q=reverse%20text')).json()) as any;
    assert.equal(found.skills[0].id, 'demo.reverse');
    assert.deepEqual(found.skills[0].devices, [{ id: 'hub', name: 'hub', kind: 'hub', local: true }]);
    assert.equal(found.skills[0].device_count, 1);
    assert.deepEqual(
      ((await (await get('/v1/skills?tag=demo&tag=text')).json()) as any).skills.map((s: { id: string }) => s.id),
      ['demo.reverse'],
    );
    assert.equal(((await (await get('/v1/skills?limit=2')).json()) as any).skills.length, 2);
  });

  it('describes a skill with its schemas', async () => {
    const res = await get('/v1/skills/hostile.echo');
    assert.equal(res.status, 200);
    const skill = (await res.json()) as any;
    assert.equal(skill.inputSchema.required[0], 'text');
    assert.equal(skill.outputSchema.type, 'object');
    assert.equal(skill.runtime, 'wasm');
    assert.equal(skill.source.signer, 'test');
    const missing = await get('/v1/skills/none.such');
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as any).error.code, 'SKILL_NOT_FOUND');
  });

  it('executes WASM, process and js skills', async () => {
    const wasm = await exec('hostile.echo', { text: 'over http' });
    assert.equal(wasm.status, 200);
    const body = (await wasm.json()) as any;
    assert.deepEqual(body.result, { text: 'over http' });
    assert.equal(typeof body.duration_ms, 'number');
    assert.equal(((await (await exec('hostile.native', { text: 'n' })).json()) as any).result.echoed, 'n');
    assert.deepEqual(((await (await exec('demo.reverse', { text: 'abc' })).json()) as any).result, { reversed: 'cba' });
  });

  it('answers 400 listing what failed the schema', async () => {
    const res = await exec('hostile.echo', { text: 5, more: 1 });
    assert.equal(res.status, 400);
    const { error } = (await res.json()) as any;
    assert.equal(error.code, 'VALIDATION_FAILED');
    assert.deepEqual(error.details.errors.map((e: { path: string }) => e.path).sort(), ['/more', '/text']);
    assert.equal((await kernel.request('/v1/skills/hostile.echo/execute', { method: 'POST', headers: bearer('runner'), body: '[1]' })).status, 400);
  });

  it('stops js skills that hang or answer too much, and keeps serving', async () => {
    const hang = exec('demo.hang', {});
    const meanwhile = await exec('hostile.echo', { text: 'still here' });
    assert.equal(meanwhile.status, 200);
    const hung = await hang;
    assert.equal(hung.status, 504);
    assert.equal(((await hung.json()) as any).error.code, 'TIMEOUT');
    const flood = await exec('demo.flood', { size: 5000 });
    assert.equal(flood.status, 502);
    assert.equal(((await flood.json()) as any).error.code, 'OUTPUT_TOO_LARGE');
    assert.equal((await exec('demo.flood', { size: 10 })).status, 200);
  });

  it("enforces a skill's own scope", async () => {
    const res = await exec('demo.special', {});
    assert.equal(res.status, 403);
    assert.deepEqual(((await res.json()) as any).error.details, { missingScopes: ['text:special'] });
    assert.equal((await exec('demo.special', {}, 'special')).status, 200);
  });

  it('reports skill failures with a stable code and no host paths', async () => {
    const res = await exec('hostile.fail', {});
    assert.equal(res.status, 502);
    const { error } = (await res.json()) as any;
    assert.equal(error.code, 'SKILL_FAILED');
    assert.doesNotMatch(JSON.stringify(error), /\/home\/someone|\/tmp\/|node_modules/);
    const grow = (await (await exec('hostile.grow', {})).json()) as any;
    assert.equal(grow.error.code, 'MEMORY_LIMIT');
  });

  it('rate-limits each caller with 429 and Retry-After, and records usage', async () => {
    let limited: Response | undefined;
    for (let i = 0; i < 40 && !limited; i++) {
      const res = await exec('hostile.echo', { text: `${i}` }, 'other');
      if (res.status === 429) limited = res;
      else await res.arrayBuffer();
    }
    assert.ok(limited, 'a 429 arrived');
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);
    assert.equal(((await limited.json()) as any).error.code, 'RATE_LIMITED');
    assert.equal((await exec('hostile.echo', { text: 'x' }, 'runner')).status, 200, 'other callers are not affected');
    const usage = ((await (await get('/v1/skill-usage?skill=hostile.echo&caller=default/otto', 'admin')).json()) as any).usage;
    assert.equal(usage.length, 1);
    assert.ok(usage[0].calls >= 30);
    assert.ok(usage[0].errorsByCode.RATE_LIMITED >= 1);
  });

  it('disables and enables a skill', async () => {
    assert.equal((await kernel.request('/v1/skills/demo.reverse/disable', { method: 'POST', headers: bearer('runner') })).status, 403);
    assert.deepEqual(await (await kernel.request('/v1/skills/demo.reverse/disable', { method: 'POST', headers: bearer('admin') })).json(), {
      id: 'demo.reverse',
      enabled: false,
    });
    const res = await exec('demo.reverse', { text: 'x' });
    assert.equal(res.status, 409);
    assert.equal(((await res.json()) as any).error.code, 'SKILL_DISABLED');
    await kernel.request('/v1/skills/demo.reverse/enable', { method: 'POST', headers: bearer('admin') });
    assert.equal((await exec('demo.reverse', { text: 'x' })).status, 200);
  });

  it('offers tools to another extension and runs them for a principal', async () => {
    const principal = { sub: 'task-owner', type: 'user', scopes: ['skills:execute'], tenant_id: 'default' };
    const tools = (
      (await (
        await kernel.request('/v1/tool-user/tools', { method: 'POST', headers: bearer('runner'), body: JSON.stringify({ q: 'reverse', principal }) })
      ).json()) as any
    ).tools;
    assert.deepEqual(tools[0], {
      type: 'function',
      function: {
        name: 'demo__reverse',
        description: 'Reverse text. Reverses a string, character by character.',
        parameters: { type: 'object', required: ['text'], properties: { text: { type: 'string', maxLength: 10000 } }, additionalProperties: false },
      },
    });
    const call = async (name: string, args: unknown, who = principal) =>
      (
        await kernel.request('/v1/tool-user/call', { method: 'POST', headers: bearer('runner'), body: JSON.stringify({ name, args, principal: who }) })
      ).json() as any;
    const ok = await call('demo__reverse', '{"text":"loop"}');
    assert.equal(ok.ok, true);
    assert.equal(ok.content, '{"reversed":"pool"}');
    const denied = await call('demo__reverse', { text: 'x' }, { ...principal, scopes: [] });
    assert.equal(denied.ok, false);
    assert.equal(denied.error.code, 'FORBIDDEN');
    const usage = ((await (await get('/v1/skill-usage?skill=demo.reverse', 'admin')).json()) as any).usage;
    assert.ok(usage.some((u: { caller: string }) => u.caller === 'default/task-owner via fixtures.tool-user'));
  });

  it('installs with the CLI into a running server, which loads the pack without a restart', async () => {
    const config = join(work, 'aion.config.json');
    await writeFile(config, JSON.stringify({ extensions: { 'aion.skills': skillsConfig } }));
    const keys = join(work, 'keys');
    const generated = await aion(['keys', 'generate', '--out', keys, '--name', 'author', '--data-dir', join(work, 'cli-data'), '--config', config]);
    assert.equal(generated.code, 0, generated.stderr);
    assert.match(generated.stdout, /"publicKey": "ed25519:/);
    assert.match(await readFile(join(keys, 'author.key'), 'utf8'), /BEGIN PRIVATE KEY/);
    // The author signs with the key this host trusts.
    await writeFile(join(keys, 'trusted.key'), key.privateKeyPem);
    const src = await writeHostilePack(join(work, 'cli-src'), { name: 'clipack' });
    const archive = join(work, 'clipack.tgz');
    const tampered = join(work, 'cli-tampered');
    const signed = await aion([
      'skills',
      'sign',
      src,
      '--key',
      join(keys, 'trusted.key'),
      '--out',
      archive,
      '--data-dir',
      join(work, 'cli-data'),
      '--config',
      config,
    ]);
    assert.equal(signed.code, 0, signed.stderr);
    assert.match(signed.stdout, new RegExp(`signed clipack 1.0.0 with key ${key.keyId}`));
    await cp(src, tampered, { recursive: true });
    await writeFile(
      join(tampered, 'pack.json'),
      (await readFile(join(tampered, 'pack.json'), 'utf8')).replace('"clipack"', '"clipack2"').replace(/clipack\./g, 'clipack2.'),
    );
    await appendFile(join(tampered, 'schemas/text.input.json'), ' ');

    const [installed, refused] = await Promise.all([
      aion(['skills', 'install', archive, '--data-dir', join(work, 'cli-data'), '--config', config]),
      aion(['skills', 'install', tampered, '--data-dir', join(work, 'cli-data'), '--config', config]),
    ]);
    assert.equal(installed.code, 0, installed.stderr);
    assert.match(installed.stdout, /installed clipack 1\.0\.0 \(signed by test/);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /PACK_(TAMPERED|BAD_SIGNATURE).*quarantine/);

    // The running server was never told: it notices the folder change.
    await until(async () => (await exec('clipack.echo', { text: 'no restart' })).status === 200, 'the running server to load clipack');
    const packs = (await (await get('/v1/skill-packs', 'admin')).json()) as any;
    assert.ok(packs.installed.some((p: { name: string; signer: string }) => p.name === 'clipack'));
    assert.ok(packs.quarantined.some((q: { pack: string }) => q.pack === 'clipack2'));

    const listed = await aion(['skills', 'list', '--data-dir', join(work, 'cli-data'), '--config', config]);
    assert.match(listed.stdout, /clipack 1\.0\.0 signed by test/);
    assert.match(listed.stdout, /Quarantined:\n {2}clipack2-/);

    const removed = await aion(['skills', 'remove', 'clipack', '--data-dir', join(work, 'cli-data'), '--config', config]);
    assert.equal(removed.code, 0, removed.stderr);
    await until(async () => (await exec('clipack.echo', { text: 'x' })).status === 404, 'the running server to drop clipack');
  });
});
