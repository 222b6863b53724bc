import assert from 'node:assert/strict';
import { readFileSync, rmSync, symlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startTestKernel, type TestKernel } from '../src/index.js';
import { ExtensionRegistry } from '../src/registry/extensionRegistry.js';
import { base, fixture, tempDir, writeExtension } from './helpers.js';

type Outcome = { ok: boolean; value?: unknown; code?: string; message?: string };
const repositoryModules = resolve(fixture('.'), '..', '..', '..', 'node_modules');

/** Writes the hostile extension as `<name>` asking for `host`, with extra manifest fields. */
function intruder(root: string, name: string, aion: Record<string, unknown>, extra: Record<string, unknown> = {}): void {
  writeExtension(
    root,
    name,
    {
      ...base({ name, publisher: 'evil', type: 'module', main: 'extension.js' }),
      contributes: { routes: [{ method: 'POST', path: `/v1/${name}/try`, auth: 'none' }] },
      aion,
      ...extra,
    },
    { 'extension.js': readFileSync(join(fixture('hostile'), 'extension.js'), 'utf8') },
  );
}

function vault(root: string): void {
  writeExtension(
    root,
    'vault',
    base({ name: 'vault', type: 'module', main: 'e.js', aion: { host: 'shared', api: { access: 'privileged', methods: { ping: 'public' } } } }),
    {
      'e.js': 'export function activate() { return { ping: () => "pong", unlock: () => "opened" }; }',
    },
  );
}

const attempt = async (kernel: TestKernel, name: string, body: Record<string, unknown>): Promise<Outcome> => {
  const res = await kernel.request(`/v1/${name}/try`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as Outcome;
};

async function signIn(kernel: TestKernel, username: string, password: string): Promise<string> {
  const res = await kernel.request('/v1/auth/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return ((await res.json()) as { access_token: string }).access_token;
}

function initialAdmin(kernel: TestKernel): { username: string; password: string } {
  const text = readFileSync(join(kernel.dataDir, 'storage', 'aion.auth', 'initial-admin.txt'), 'utf8');
  return { username: /username: (\S+)/.exec(text)![1]!, password: /password: (\S+)/.exec(text)![1]! };
}

const hosts = ['shared', 'dedicated'] as const;

describe('containment: a hostile extension gets only what its manifest and the operator grant', function () {
  this.timeout(60_000);
  let kernel: TestKernel;
  let root: string;
  let adminToken: string;
  const probe = 'AION_TEST_ENV_PROBE_VALUE';

  before(async () => {
    root = tempDir('aion-hostile-');
    symlinkSync(repositoryModules, join(root, 'node_modules'));
    for (const host of hosts)
      intruder(
        root,
        `intruder-${host}`,
        { host, permissions: { secrets: ['AION_JWT_SECRET', 'OPENAI_API_KEY', 'INTRUDER_PROBE'] } },
        { contributes: { routes: [{ method: 'POST', path: `/v1/intruder-${host}/try`, auth: 'none' }], secrets: [{ name: 'AION_JWT_SECRET' }] } },
      );
    vault(root);
    intruder(root, 'squatter', { host: 'kernel' });
    intruder(root, 'spawner', { host: 'shared', permissions: { childProcess: true } });
    process.env.INTRUDER_PROBE = probe;
    process.env.OPENAI_API_KEY = 'sk-from-the-environment';
    kernel = await startTestKernel({ extensions: [root], builtins: ['aion.auth', 'aion.provider-openai'], strict: false });
    const admin = initialAdmin(kernel);
    adminToken = await signIn(kernel, admin.username, admin.password);
  });
  after(async () => {
    delete process.env.INTRUDER_PROBE;
    delete process.env.OPENAI_API_KEY;
    await kernel?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  const users = async () => {
    const res = await kernel.request('/v1/users', { headers: { authorization: `Bearer ${adminToken}` } });
    return ((await res.json()) as { users: Array<{ username: string }> }).users.map((u) => u.username);
  };

  for (const host of hosts) {
    describe(`from a ${host} host`, () => {
      const name = `intruder-${host}`;

      it('runs where the kernel placed it, under the permission model', () => {
        const record = kernel.kernel.get(ExtensionRegistry).get(`evil.${name}`)!;
        assert.equal(record.hostKind, host);
        assert.equal(record.enforcement, 'os');
      });

      it('cannot create an admin through the privileged auth.createUser command', async () => {
        const outcome = await attempt(kernel, name, { attack: 'createAdmin', username: `mallory-${host}` });
        assert.equal(outcome.ok, false);
        assert.equal(outcome.code, 'FORBIDDEN');
        assert.match(outcome.message!, /permissions\.grants\["evil\.intruder-[a-z]+"\]\.commands/);
        assert.ok(!(await users()).includes(`mallory-${host}`));
      });

      it("cannot read the kernel signing key, another extension's secret, or the environment by declaring them", async () => {
        const jwt = await attempt(kernel, name, { attack: 'readSecret', name: 'AION_JWT_SECRET' });
        assert.equal(jwt.code, 'SECRET_NOT_GRANTED');
        const openai = await attempt(kernel, name, { attack: 'readSecret', name: 'OPENAI_API_KEY' });
        assert.equal(openai.code, 'SECRET_NOT_GRANTED');
        assert.match(openai.message!, /belongs to aion\.provider-openai/);
        const env = await attempt(kernel, name, { attack: 'readSecret', name: 'INTRUDER_PROBE' });
        assert.deepEqual(env, { ok: true, value: null });
      });

      it('cannot read files outside its folders: the data directory, the database, /etc/passwd', async () => {
        for (const path of [join(kernel.dataDir, 'storage', 'aion.auth', 'initial-admin.txt'), join(kernel.dataDir, 'aion.db'), '/etc/passwd']) {
          const outcome = await attempt(kernel, name, { attack: 'readFile', path });
          assert.equal(outcome.ok, false, `read ${path}`);
          assert.equal(outcome.code, 'ERR_ACCESS_DENIED');
        }
      });

      it('cannot start processes', async () => {
        const outcome = await attempt(kernel, name, { attack: 'spawn' });
        assert.equal(outcome.code, 'ERR_ACCESS_DENIED');
      });

      it('cannot call a privileged API method, and can call its public ones', async () => {
        assert.deepEqual(await attempt(kernel, name, { attack: 'callApi', extension: 't.vault', method: 'ping' }), { ok: true, value: 'pong' });
        const outcome = await attempt(kernel, name, { attack: 'callApi', extension: 't.vault', method: 'unlock' });
        assert.equal(outcome.code, 'FORBIDDEN');
        assert.match(outcome.message!, /apis: \["t\.vault#unlock"\]/);
      });
    });
  }

  it('cannot take over a command another extension declares', async () => {
    await attempt(kernel, 'intruder-shared', { attack: 'hijackCommand' });
    const created = (await kernel.executeCommand('auth.createUser', { username: 'operator-made', password: 'q'.repeat(20) })) as {
      user?: { username: string };
      hijacked?: boolean;
    };
    assert.equal(created.hijacked, undefined);
    assert.equal(created.user?.username, 'operator-made');
  });

  it('cannot tap http.authenticate to sign anybody in', async () => {
    assert.deepEqual(await attempt(kernel, 'intruder-shared', { attack: 'tapAuthenticate' }), { ok: true, value: 'tapped' });
    const res = await kernel.request('/v1/users');
    assert.equal(res.status, 401);
    const record = kernel.kernel.get(ExtensionRegistry).get('evil.intruder-shared')!;
    assert.ok(record.warnings.some((w) => w.code === 'FORBIDDEN' && /http\.authenticate/.test(w.message)));
  });

  it('runs a privileged command for a signed-in user only when that user holds its scopes', async () => {
    const allowed = await attempt(kernel, 'intruder-shared', { attack: 'createAdminFor', username: 'made-for-admin', authorization: `Bearer ${adminToken}` });
    assert.equal(allowed.ok, true, allowed.message);
    const created = await kernel.request('/v1/users', {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'reader', password: 'r'.repeat(20), scopes: ['sessions:read'] }),
    });
    assert.equal(created.status, 201, await created.clone().text());
    const readerToken = await signIn(kernel, 'reader', 'r'.repeat(20));
    const refused = await attempt(kernel, 'intruder-shared', { attack: 'createAdminFor', username: 'made-for-reader', authorization: `Bearer ${readerToken}` });
    assert.equal(refused.code, 'FORBIDDEN');
    const forged = await attempt(kernel, 'intruder-shared', {
      attack: 'createAdminFor',
      username: 'made-for-nobody',
      authorization: 'Bearer forged.token.value',
    });
    assert.equal(forged.code, 'UNAUTHENTICATED');
    const names = await users();
    assert.ok(names.includes('made-for-admin'));
    assert.ok(!names.includes('made-for-reader') && !names.includes('made-for-nobody'));
  });

  it('refuses an extension that asks for the kernel host, or for child processes, without the operator', () => {
    const registry = kernel.kernel.get(ExtensionRegistry);
    for (const id of ['evil.squatter', 'evil.spawner']) {
      const record = registry.get(id)!;
      assert.equal(record.state, 'skipped');
      assert.equal(record.errors[0]?.code, 'PERMISSION_DENIED');
      assert.match(record.errors[0]!.message, /permissions\.grants\["evil\.(squatter|spawner)"\]/);
    }
  });
});

describe('containment: what the operator grants', function () {
  this.timeout(60_000);
  let kernel: TestKernel;
  let root: string;

  before(async () => {
    root = tempDir('aion-granted-');
    symlinkSync(repositoryModules, join(root, 'node_modules'));
    intruder(root, 'trusted-helper', { host: 'shared', permissions: { secrets: ['OPENAI_API_KEY'] } });
    vault(root);
    process.env.OPENAI_API_KEY = 'sk-granted';
    kernel = await startTestKernel({
      extensions: [root],
      builtins: ['aion.auth', 'aion.provider-openai'],
      config: { permissions: { grants: { 'evil.trusted-helper': { commands: ['auth.createUser'], apis: ['t.vault#unlock'], secrets: ['OPENAI_API_KEY'] } } } },
    });
  });
  after(async () => {
    delete process.env.OPENAI_API_KEY;
    await kernel?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('a granted command, API method and secret work, and the grant shows in its own host', async () => {
    const created = await attempt(kernel, 'trusted-helper', { attack: 'createAdmin', username: 'granted-admin' });
    assert.equal(created.ok, true, created.message);
    assert.deepEqual(await attempt(kernel, 'trusted-helper', { attack: 'callApi', extension: 't.vault', method: 'unlock' }), { ok: true, value: 'opened' });
    assert.deepEqual(await attempt(kernel, 'trusted-helper', { attack: 'readSecret', name: 'OPENAI_API_KEY' }), { ok: true, value: 'sk-granted' });
    const registry = kernel.kernel.get(ExtensionRegistry);
    assert.notEqual(registry.get('evil.trusted-helper')!.hostKey, registry.get('t.vault')!.hostKey);
  });
});
