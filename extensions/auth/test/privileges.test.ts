import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestKernel, type TestKernel } from '@aion/core';
import type { Principal } from '@aion/extension-api';
import { forEachDatabase, STORAGE_EXTENSION_DIR } from '@aion/ext-storage/testing';
import { AUTH_EXTENSION_DIR, call, createUser, login, signInAdmin, type Tokens } from '../src/testing.js';

const PASSWORD = 'a long enough password';

async function json(res: Response): Promise<any> {
  return res.json();
}

/** The error a refused request answered, after checking its status. */
async function refusal(res: Response, status: number): Promise<{ code: string; message: string; details?: any }> {
  const body = await json(res);
  assert.equal(res.status, status, JSON.stringify(body));
  return body.error;
}

async function apiKey(kernel: TestKernel, token: string, scopes: string[]): Promise<string> {
  const res = await call(kernel, 'POST', '/v1/api-keys', { token, body: { name: `key ${scopes.join(' ')}`, scopes } });
  assert.equal(res.status, 201, await res.clone().text());
  return (await json(res)).key;
}

/** The principal the kernel hands routes for this credential, as an extension would pass it on. */
async function principalOf(kernel: TestKernel, credential: { token?: string; apiKey?: string }): Promise<Principal> {
  const me = await json(await call(kernel, 'GET', '/v1/me', credential));
  return { sub: me.sub, type: me.type, scopes: me.scopes, tenant_id: me.tenant_id, owner: me.owner };
}

forEachDatabase('aion.auth privileges', (db) => {
  let kernel: TestKernel | undefined;
  let admin: Tokens;
  let dir: string;

  /** Kernels of this suite share one database (and so users and the signing key). */
  const startKernel = (auth: Record<string, unknown> = {}) =>
    startTestKernel({
      extensions: [STORAGE_EXTENSION_DIR, AUTH_EXTENSION_DIR],
      config: {
        extensions: {
          'aion.storage': db.storageConfig({ sqlite: { path: join(dir, 'aion.db') } }),
          'aion.auth': { scryptCost: 1024, rateLimits: { enabled: false }, ...auth },
        },
      },
    });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'aion-auth-privileges-'));
    kernel = await startKernel();
    admin = await signInAdmin(kernel);
  });
  after(async () => {
    await kernel?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const createAs = (credential: { token?: string; apiKey?: string }, body: Record<string, unknown>) =>
    call(kernel!, 'POST', '/v1/users', { ...credential, body: { password: PASSWORD, ...body } });

  it('an API key holding * cannot create an administrator or a user holding users:write', async () => {
    const everything = await apiKey(kernel!, admin.access_token, ['*']);
    for (const [body, scopes] of [
      [{ username: 'mallory', admin: true }, ['*']],
      [{ username: 'mallory', scopes: ['*'] }, ['*']],
      [{ username: 'mallory', scopes: ['users:write', 'sessions:read'] }, ['users:write']],
    ] as const) {
      const error = await refusal(await createAs({ apiKey: everything }, body), 403);
      assert.equal(error.code, 'INTERACTIVE_SIGN_IN_REQUIRED');
      assert.deepEqual(error.details, { scopes });
      assert.match(error.message, new RegExp(`${scopes[0] === '*' ? '\\*' : scopes[0]}.*API key`));
    }
    assert.equal((await call(kernel!, 'POST', '/v1/auth/login', { body: { username: 'mallory', password: PASSWORD } })).status, 401, 'no such user was made');
    assert.equal((await createAs({ apiKey: everything }, { username: 'worker', scopes: ['sessions:read'] })).status, 201, 'an ordinary user is fine');
  });

  it('an API key holding users:write creates users only within its own scopes, and never another holder of users:write', async () => {
    const recruiter = await apiKey(kernel!, admin.access_token, ['users:write', 'sessions:read']);
    const broader = await refusal(await createAs({ apiKey: recruiter }, { username: 'eve', scopes: ['sessions:read', 'sessions:write', 'audit:read'] }), 403);
    assert.equal(broader.code, 'SCOPE_NOT_GRANTABLE');
    assert.deepEqual(broader.details, { scopes: ['sessions:write', 'audit:read'] });
    assert.match(broader.message, /sessions:write, audit:read/);
    assert.equal(
      (await refusal(await createAs({ apiKey: recruiter }, { username: 'eve' }), 403)).code,
      'SCOPE_NOT_GRANTABLE',
      'the default user scopes are more than the key holds',
    );
    assert.equal(
      (await refusal(await createAs({ apiKey: recruiter }, { username: 'eve', scopes: ['users:write'] }), 403)).code,
      'INTERACTIVE_SIGN_IN_REQUIRED',
    );
    assert.equal((await createAs({ apiKey: recruiter }, { username: 'reader', scopes: ['sessions:read'] })).status, 201);
  });

  it('a device token cannot create an administrator, nor keys or devices', async () => {
    const res = await call(kernel!, 'POST', '/v1/devices', { token: admin.access_token, body: { name: 'admin laptop', scopes: ['*'] } });
    assert.equal(res.status, 201);
    const device = (await json(res)).access_token;
    const error = await refusal(await createAs({ token: device }, { username: 'mallory', admin: true }), 403);
    assert.equal(error.code, 'INTERACTIVE_SIGN_IN_REQUIRED');
    assert.match(error.message, /a device/);
    assert.equal((await call(kernel!, 'POST', '/v1/api-keys', { token: device, body: { name: 'x' } })).status, 403);
    assert.equal((await call(kernel!, 'POST', '/v1/devices', { token: device, body: { name: 'x' } })).status, 403);
  });

  it('a signed-in user creates users, keys and devices within its own scopes; admin: true asks for *', async () => {
    const ops = await createUser(kernel!, admin.access_token, 'ops', { scopes: ['users:write', 'sessions:read', 'keys:write', 'devices:write'] });
    const asAdmin = await refusal(await createAs({ token: ops.access_token }, { username: 'root2', admin: true }), 403);
    assert.equal(asAdmin.code, 'SCOPE_NOT_GRANTABLE');
    assert.deepEqual(asAdmin.details, { scopes: ['*'] });
    assert.equal((await refusal(await createAs({ token: ops.access_token }, { username: 'root2', admin: 'yes' }), 400)).code, 'VALIDATION_FAILED');
    assert.equal(
      (await createAs({ token: ops.access_token }, { username: 'ops2', scopes: ['users:write', 'sessions:read'] })).status,
      201,
      'a person may make another operator within their own scopes',
    );

    const key = await refusal(
      await call(kernel!, 'POST', '/v1/api-keys', { token: ops.access_token, body: { name: 'wide', scopes: ['sessions:read', 'audit:read'] } }),
      403,
    );
    assert.equal(key.code, 'SCOPE_NOT_GRANTABLE');
    assert.deepEqual(key.details, { scopes: ['audit:read'] });
    const device = await refusal(await call(kernel!, 'POST', '/v1/devices', { token: ops.access_token, body: { name: 'wide', scopes: ['*'] } }), 403);
    assert.equal(device.code, 'SCOPE_NOT_GRANTABLE');
    assert.deepEqual(device.details, { scopes: ['*'] });
    const everything = await apiKey(kernel!, admin.access_token, ['*']);
    assert.equal(
      (await call(kernel!, 'POST', '/v1/api-keys', { apiKey: everything, body: { name: 'copy', scopes: ['*'] } })).status,
      403,
      'a key never mints keys',
    );
  });

  it('auth.createUser with a principal acts within what the database says that principal holds; without one, for the operator', async () => {
    const alice = await createUser(kernel!, admin.access_token, 'alice');
    const keyPrincipal = await principalOf(kernel!, { apiKey: await apiKey(kernel!, admin.access_token, ['*']) });
    assert.equal(keyPrincipal.type, 'service');
    await assert.rejects(kernel!.executeCommand('auth.createUser', { username: 'mallory', admin: true }, keyPrincipal), {
      code: 'INTERACTIVE_SIGN_IN_REQUIRED',
    });

    const claimsEverything = { ...(await principalOf(kernel!, { token: alice.access_token })), scopes: ['*'] };
    await assert.rejects(kernel!.executeCommand('auth.createUser', { username: 'mallory', scopes: ['users:write'] }, claimsEverything), (err: any) => {
      assert.equal(err.code, 'SCOPE_NOT_GRANTABLE');
      assert.deepEqual(err.details, { scopes: ['users:write'] });
      return true;
    });
    await assert.rejects(
      kernel!.executeCommand(
        'auth.createUser',
        { username: 'mallory' },
        { ...claimsEverything, sub: '00000000-0000-4000-8000-000000000000', owner: undefined },
      ),
      { code: 'UNAUTHENTICATED' },
    );
    await assert.rejects(kernel!.executeCommand('auth.createUser', { username: 'mallory' }, 'root'), { code: 'VALIDATION_FAILED' });

    const byAdmin = await kernel!.executeCommand<{ user: { scopes: string[] } }>(
      'auth.createUser',
      { username: 'root2', admin: true, password: PASSWORD },
      await principalOf(kernel!, { token: admin.access_token }),
    );
    assert.deepEqual(byAdmin.user.scopes, ['*']);
    const byOperator = await kernel!.executeCommand<{ user: { scopes: string[] } }>('auth.createUser', { username: 'root3', admin: true, password: PASSWORD });
    assert.deepEqual(byOperator.user.scopes, ['*'], 'the console needs no principal');
    await login(kernel!, 'root3', PASSWORD);
  });

  it('with adminCreation "any", an API key holding users:write may create holders of users:write, still within its scopes', async () => {
    const lenient = await startKernel({ adminCreation: 'any' });
    try {
      const recruiter = await apiKey(lenient, admin.access_token, ['users:write', 'sessions:read']);
      assert.equal(
        (await call(lenient, 'POST', '/v1/users', { apiKey: recruiter, body: { username: 'deputy', password: PASSWORD, scopes: ['users:write'] } })).status,
        201,
      );
      const error = await refusal(
        await call(lenient, 'POST', '/v1/users', { apiKey: recruiter, body: { username: 'boss', password: PASSWORD, admin: true } }),
        403,
      );
      assert.equal(error.code, 'SCOPE_NOT_GRANTABLE');
    } finally {
      await lenient.stop();
    }
  });
});
