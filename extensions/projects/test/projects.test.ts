import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestKernel, type TestKernel } from '@aion/core';
import { AUTH_EXTENSION_DIR, call, createUser, signInAdmin, type Tokens } from '@aion/ext-auth/testing';
import { STORAGE_EXTENSION_DIR, forEachDatabase } from '@aion/ext-storage/testing';
import { createGitRepo, PROJECTS_EXTENSION_DIR, type TestRepo } from '../src/testing.js';

const READER_FIXTURE = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures', 'reader');

async function api(kernel: TestKernel, method: string, path: string, token: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await call(kernel, method, path, { token, body });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

type User = Tokens & { id: string };

forEachDatabase('aion.projects', (db) => {
  let kernel: TestKernel | undefined;
  let admin: Tokens;
  let alice: User;
  let bob: User;
  // Folders users may register; `outside` is a folder they may not.
  let openRoot: string;
  let outside: string;
  let repo: TestRepo;
  const principal = (u: User, scopes = ['projects:read', 'projects:write']) => ({ sub: u.id, tenant_id: 'default', scopes });
  const fromExtension = (method: string, ...args: unknown[]) =>
    kernel!.executeCommand<{ ok: boolean; value?: any; code?: string; message?: string }>('projectstest.call', method, ...args);

  before(async function () {
    this.timeout(120_000);
    openRoot = realpathSync(mkdtempSync(join(tmpdir(), 'aion-projects-open-')));
    outside = realpathSync(mkdtempSync(join(tmpdir(), 'aion-projects-outside-')));
    writeFileSync(join(outside, 'secret.txt'), 'top secret\n');
    repo = await createGitRepo(
      {
        'README.md': '# Demo\n',
        'src/index.ts': 'export const answer = 42;\n',
        'big.txt': 'x'.repeat(5000),
      },
      { parent: openRoot },
    );
    symlinkSync(join(outside, 'secret.txt'), join(repo.path, 'leak.txt'));
    symlinkSync(outside, join(repo.path, 'leakdir'));
    symlinkSync('src/index.ts', join(repo.path, 'alias.ts'));
    kernel = await startTestKernel({
      extensions: [STORAGE_EXTENSION_DIR, AUTH_EXTENSION_DIR, PROJECTS_EXTENSION_DIR, READER_FIXTURE],
      config: {
        extensions: {
          'aion.storage': db.storageConfig(),
          'aion.auth': { scryptCost: 1024, rateLimits: { enabled: false } },
          'aion.projects': { localRoots: [openRoot], maxFileBytes: 4096, cloneTimeoutMs: 60000, cloneHosts: ['127.0.0.1', '*.example.com'] },
        },
      },
    });
    admin = await signInAdmin(kernel);
    alice = await createUser(kernel, admin.access_token, 'alice', { scopes: ['projects:read', 'projects:write'] });
    bob = await createUser(kernel, admin.access_token, 'bob', { scopes: ['projects:read', 'projects:write'] });
  });
  after(async () => {
    await kernel?.stop();
    rmSync(openRoot, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  it('registers a local git repository, shows it to its owner, and hides it from another user', async () => {
    const k = kernel!;
    const created = await api(k, 'POST', '/v1/projects', alice.access_token, { name: 'demo', repository: repo.path });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.match(created.body.id, /^prj_/);
    assert.equal(created.body.name, 'demo');
    assert.equal(created.body.repository, repo.path);
    assert.equal(created.body.path, repo.path);
    assert.equal(created.body.kind, 'local');
    assert.deepEqual(created.body.owner, { sub: alice.id, tenant_id: 'default' });
    assert.ok(!Number.isNaN(Date.parse(created.body.created_at)));
    const id = created.body.id;

    assert.equal((await api(k, 'GET', `/v1/projects/${id}`, alice.access_token)).body.id, id);
    assert.ok((await api(k, 'GET', '/v1/projects', alice.access_token)).body.projects.some((p: any) => p.id === id));

    const asBob = await api(k, 'GET', `/v1/projects/${id}`, bob.access_token);
    assert.equal(asBob.status, 404);
    assert.equal(asBob.body.error.code, 'PROJECT_NOT_FOUND');
    assert.ok(!(await api(k, 'GET', '/v1/projects', bob.access_token)).body.projects.some((p: any) => p.id === id), "bob's list does not show alice's project");
    const bobDelete = await api(k, 'DELETE', `/v1/projects/${id}`, bob.access_token);
    assert.equal(bobDelete.status, 404);
    assert.equal(bobDelete.body.error.code, 'PROJECT_NOT_FOUND');
    assert.equal((await api(k, 'GET', `/v1/projects/${id}`, alice.access_token)).status, 200, 'still there after bob tried to delete it');

    const asAdmin = await api(k, 'GET', '/v1/projects', admin.access_token);
    assert.ok(
      asAdmin.body.projects.some((p: any) => p.id === id),
      'an admin sees every project',
    );
    assert.equal((await api(k, 'GET', `/v1/projects/${id}`, admin.access_token)).status, 200);
  });

  it('needs projects:write to register and delete, projects:read to list', async () => {
    const k = kernel!;
    const reader = await createUser(k, admin.access_token, `reader-${Date.now()}`, { scopes: ['projects:read'] });
    const nobody = await createUser(k, admin.access_token, `nobody-${Date.now()}`, { scopes: ['sessions:read'] });
    assert.equal((await api(k, 'POST', '/v1/projects', reader.access_token, { name: 'x', repository: repo.path })).status, 403);
    assert.equal((await api(k, 'GET', '/v1/projects', reader.access_token)).status, 200);
    assert.equal((await api(k, 'GET', '/v1/projects', nobody.access_token)).status, 403);
    const res = await k.request('/v1/projects', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'x', repository: repo.path }),
    });
    assert.equal(res.status, 401, 'no credentials');
  });

  it('registers a plain folder (no git) as a local project', async () => {
    const folder = mkdtempSync(join(openRoot, 'plain-'));
    writeFileSync(join(folder, 'notes.md'), 'plain\n');
    const created = await api(kernel!, 'POST', '/v1/projects', alice.access_token, { name: 'plain', repository: folder });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const file = await fromExtension('resolveFile', created.body.id, 'notes.md', { for: principal(alice) });
    assert.equal(file.value?.content, 'plain\n');
  });

  it('refuses bad registrations with INVALID_PROJECT and a message that says what to send', async () => {
    const k = kernel!;
    const file = join(openRoot, 'a-file.txt');
    writeFileSync(file, 'not a folder');
    const cases: Array<[unknown, RegExp]> = [
      [{ repository: repo.path }, /name is required/],
      [{ name: '  ', repository: repo.path }, /name is required/],
      [{ name: 'x'.repeat(201), repository: repo.path }, /at most 200/],
      [{ name: 'n' }, /repository is required/],
      [{ name: 'n', repository: 'relative/path' }, /neither an absolute path nor a URL/],
      [{ name: 'n', repository: join(openRoot, 'missing') }, /does not exist/],
      [{ name: 'n', repository: file }, /is not a folder/],
      [{ name: 'n', repository: 'ftp://example.com/repo.git' }, /https, http, ssh, git or file/],
      [{ name: 'n', repository: 'ext::sh -c touch% /tmp/pwned' }, /neither an absolute path nor a URL|not ext/],
      [{ name: 'n', repository: '--upload-pack=touch /tmp/pwned' }, /may not start with "-"/],
      [{ name: 'n', repository: 42 }, /repository is required/],
      [{ name: 'n', repository: 'https://169.254.169.254/latest/meta-data.git' }, /not allowed here.*cloneHosts/],
      [{ name: 'n', repository: 'git@internal.corp:team/repo.git' }, /cloning from internal.corp is not allowed/],
      [{ name: 'n', repository: 'https://example.com.evil.net/repo.git' }, /not allowed here/],
      [[1, 2], /JSON object/],
    ];
    for (const [body, message] of cases) {
      const res = await api(k, 'POST', '/v1/projects', alice.access_token, body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.body.error.code, 'INVALID_PROJECT', JSON.stringify(body));
      assert.match(res.body.error.message, message, JSON.stringify(body));
    }
  });

  it('lets only admins register folders outside localRoots, by path or file:// URL', async () => {
    const k = kernel!;
    for (const repository of [outside, `file://${outside}`]) {
      const res = await api(k, 'POST', '/v1/projects', alice.access_token, { name: 'sneaky', repository });
      assert.equal(res.status, 400, repository);
      assert.equal(res.body.error.code, 'INVALID_PROJECT');
      assert.match(res.body.error.message, /localRoots/);
    }
    // A symlink inside an open root that leads outside is judged by where it leads.
    const link = join(openRoot, 'link-out');
    symlinkSync(outside, link);
    const viaLink = await api(k, 'POST', '/v1/projects', alice.access_token, { name: 'sneaky', repository: link });
    assert.equal(viaLink.body.error?.code, 'INVALID_PROJECT');
    const byAdmin = await api(k, 'POST', '/v1/projects', admin.access_token, { name: 'ops', repository: outside });
    assert.equal(byAdmin.status, 201);
  });

  it('clones a file:// URL with the real git under the data directory, and removes the clone on delete', async () => {
    const k = kernel!;
    const created = await api(k, 'POST', '/v1/projects', alice.access_token, { name: 'cloned', repository: repo.url });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.kind, 'clone');
    assert.equal(created.body.repository, repo.url);
    assert.ok(created.body.path.startsWith(realpathSync(k.dataDir)), `${created.body.path} is under the data directory`);
    assert.ok(existsSync(join(created.body.path, '.git')), 'a real clone');
    const file = await fromExtension('resolveFile', created.body.id, 'src/index.ts', { for: principal(alice) });
    assert.deepEqual(file, { ok: true, value: { path: 'src/index.ts', size: 26, encoding: 'utf8', content: 'export const answer = 42;\n' } });
    assert.equal((await api(k, 'DELETE', `/v1/projects/${created.body.id}`, alice.access_token)).status, 204);
    assert.ok(!existsSync(created.body.path), 'the clone is removed');
    assert.equal((await api(k, 'GET', `/v1/projects/${created.body.id}`, alice.access_token)).status, 404);
    assert.ok(existsSync(repo.path), 'the source repository is untouched');
  });

  it('answers REPOSITORY_UNREACHABLE when git cannot clone, and leaves nothing behind', async () => {
    const k = kernel!;
    const notRepo = mkdtempSync(join(openRoot, 'not-a-repo-'));
    for (const repository of [`file://${notRepo}`, `file://${join(openRoot, 'nothing-here')}`, 'http://127.0.0.1:1/nothing.git']) {
      const res = await api(k, 'POST', '/v1/projects', alice.access_token, { name: 'broken', repository });
      assert.equal(res.status, 422, `${repository}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, 'REPOSITORY_UNREACHABLE');
    }
    const repos = join(k.dataDir, 'storage', 'aion.projects', 'repos');
    const left = existsSync(repos) ? readdirSync(repos) : [];
    const live = (await api(k, 'GET', '/v1/projects', admin.access_token)).body.projects.map((p: any) => p.id);
    assert.deepEqual(
      left.filter((d) => !live.includes(d)),
      [],
      'no half-made clone is left',
    );
  });

  it('resolveFile reads files for another extension and refuses paths out of the project', async () => {
    const k = kernel!;
    const id = (await api(k, 'POST', '/v1/projects', alice.access_token, { name: 'files', repository: repo.path })).body.id;
    const as = { for: principal(alice) };
    const ok = await fromExtension('resolveFile', id, './src//index.ts', as);
    assert.equal(ok.value?.path, 'src/index.ts');
    assert.equal(ok.value?.content, 'export const answer = 42;\n');
    assert.equal(
      (await fromExtension('resolveFile', id, 'alias.ts', as)).value?.content,
      'export const answer = 42;\n',
      'a symlink inside the project is followed',
    );
    assert.equal(
      (await fromExtension('resolveFile', id, 'README.md', { ...as, encoding: 'base64' })).value?.content,
      Buffer.from('# Demo\n').toString('base64'),
    );

    const refused: Array<[string, string]> = [
      ['../outside.txt', 'PATH_OUTSIDE_PROJECT'],
      ['src/../../x', 'PATH_OUTSIDE_PROJECT'],
      [join(outside, 'secret.txt'), 'PATH_OUTSIDE_PROJECT'],
      ['/etc/passwd', 'PATH_OUTSIDE_PROJECT'],
      ['leak.txt', 'PATH_OUTSIDE_PROJECT'],
      ['leakdir/secret.txt', 'PATH_OUTSIDE_PROJECT'],
      ['.git/config', 'PATH_OUTSIDE_PROJECT'],
      ['src/.git/config', 'PATH_OUTSIDE_PROJECT'],
      ['', 'PATH_OUTSIDE_PROJECT'],
      ['missing.ts', 'FILE_NOT_FOUND'],
      ['src', 'FILE_NOT_FOUND'],
      ['big.txt', 'FILE_TOO_LARGE'],
    ];
    for (const [path, code] of refused) {
      const res = await fromExtension('resolveFile', id, path, as);
      assert.equal(res.ok, false, path);
      assert.equal(res.code, code, `${path}: ${res.message}`);
    }
    const capped = await fromExtension('resolveFile', id, 'README.md', { ...as, maxBytes: 3 });
    assert.equal(capped.code, 'FILE_TOO_LARGE', 'the caller can lower the cap');
    const notRaised = await fromExtension('resolveFile', id, 'big.txt', { ...as, maxBytes: 10_000_000 });
    assert.equal(notRaised.code, 'FILE_TOO_LARGE', 'but not raise it past maxFileBytes');
  });

  it("refuses another user's project through the API, and serves an admin", async () => {
    const id = (await api(kernel!, 'POST', '/v1/projects', alice.access_token, { name: 'private', repository: repo.path })).body.id;
    assert.equal((await fromExtension('get', id, { for: principal(bob) })).code, 'PROJECT_NOT_FOUND');
    assert.equal((await fromExtension('resolveFile', id, 'README.md', { for: principal(bob) })).code, 'PROJECT_NOT_FOUND');
    const otherTenant = await fromExtension('get', id, { for: { sub: alice.id, tenant_id: 'acme', scopes: [] } });
    assert.equal(otherTenant.code, 'PROJECT_NOT_FOUND', 'the same user id in another tenant is someone else');
    const bobsKey = await fromExtension('get', id, { for: { sub: 'key-1', owner: bob.id, tenant_id: 'default', scopes: [] } });
    assert.equal(bobsKey.code, 'PROJECT_NOT_FOUND', "bob's API key acts for bob");
    const alicesKey = await fromExtension('get', id, { for: { sub: 'key-2', owner: alice.id, tenant_id: 'default', scopes: [] } });
    assert.equal(alicesKey.value?.id, id, "alice's API key acts for alice");
    const asAdmin = await fromExtension('resolveFile', id, 'README.md', { for: { sub: 'root', tenant_id: 'default', scopes: ['*'] } });
    assert.equal(asAdmin.value?.content, '# Demo\n');
    const got = await fromExtension('get', id);
    assert.deepEqual(Object.keys(got.value).sort(), ['createdAt', 'id', 'kind', 'name', 'ownerId', 'path', 'repository', 'tenantId']);
    assert.equal(got.value.ownerId, alice.id);
    assert.equal(got.value.tenantId, 'default');
    const missing = await fromExtension('get', 'prj_nothing');
    assert.equal(missing.code, 'PROJECT_NOT_FOUND');
  });

  it('refuses a project whose folder was replaced by a symlink after registration', async () => {
    const folder = mkdtempSync(join(openRoot, 'swap-'));
    writeFileSync(join(folder, 'a.txt'), 'a\n');
    const id = (await api(kernel!, 'POST', '/v1/projects', alice.access_token, { name: 'swap', repository: folder })).body.id;
    rmSync(folder, { recursive: true });
    symlinkSync(outside, folder);
    const res = await fromExtension('resolveFile', id, 'secret.txt', { for: principal(alice) });
    assert.equal(res.code, 'PATH_OUTSIDE_PROJECT', res.message);
  });
});
