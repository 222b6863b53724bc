import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { startTestKernel, type TestKernel } from '@aion/core';
import { forEachDatabase, STORAGE_EXTENSION_DIR } from '@aion/ext-storage/testing';
import { AUTH_EXTENSION_DIR, call, createUser, initialAdmin, login, signInAdmin, type Tokens } from '../src/testing.js';

const JWT_SECRET = 'test-secret-0123456789-abcdefghijklmnopqrstuvwxyz';

async function json(res: Response): Promise<any> {
  return res.json();
}

/** A token signed with the kernel's key, with claims of the test's choosing. */
function forge(claims: Record<string, unknown>, options: { secret?: string; expiresAt?: number } = {}) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ type: 'user', scopes: ['*'], tenant_id: 'default', owner: 'u1', ...claims })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(String(claims.sub ?? 'u1'))
    .setIssuer('aion')
    .setAudience('aion')
    .setIssuedAt(now - 120)
    .setExpirationTime(options.expiresAt ?? now + 600)
    .sign(new TextEncoder().encode(options.secret ?? JWT_SECRET));
}

async function audit(kernel: TestKernel, token: string, event: string): Promise<any[]> {
  const res = await call(kernel, 'GET', `/v1/auth/audit?event=${event}`, { token });
  assert.equal(res.status, 200);
  return (await json(res)).events;
}

forEachDatabase('aion.auth', (db) => {
  let kernel: TestKernel | undefined;
  let dir: string;
  let admin: Tokens;
  const start = () => {
    const secretsFile = join(dir, 'secrets.json');
    writeFileSync(secretsFile, JSON.stringify({ 'aion.auth': { AION_JWT_SECRET: JWT_SECRET } }));
    return startTestKernel({
      extensions: [STORAGE_EXTENSION_DIR, AUTH_EXTENSION_DIR],
      config: {
        secretsFile,
        extensions: {
          'aion.storage': db.storageConfig({ sqlite: { path: join(dir, 'aion.db') } }),
          'aion.auth': { scryptCost: 1024, rateLimits: { perIp: { perMinute: 6000, burst: 6000 }, login: { perAccount: { attempts: 3, windowSeconds: 60 } } } },
        },
      },
    });
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'aion-auth-'));
    kernel = await start();
    admin = await signInAdmin(kernel);
  });
  after(async () => {
    await kernel?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates the first admin once, with one-time credentials in a file only its user can read', async () => {
    const file = join(kernel!.dataDir, 'storage', 'aion.auth', 'initial-admin.txt');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(initialAdmin(kernel!).username, 'admin');
    const me = await json(await call(kernel!, 'GET', '/v1/me', { token: admin.access_token }));
    assert.equal(me.type, 'user');
    assert.deepEqual(me.scopes, ['*']);
    assert.equal(me.tenant_id, 'default');
    assert.equal(me.user.username, 'admin');
  });

  it('answers 401 without credentials and with wrong ones, and audits failed and successful logins', async () => {
    const none = await kernel!.request('/v1/me');
    assert.equal(none.status, 401);
    assert.equal((await json(none)).error.code, 'UNAUTHENTICATED');
    const notBearer = await kernel!.request('/v1/me', { headers: { authorization: 'Basic YTpi' } });
    assert.equal(notBearer.status, 401);
    const wrong = await call(kernel!, 'POST', '/v1/auth/login', { body: { username: 'admin', password: 'not the password' } });
    assert.equal(wrong.status, 401);
    const unknown = await call(kernel!, 'POST', '/v1/auth/login', { body: { username: 'nobody', password: 'whatever' } });
    assert.equal(unknown.status, 401);
    assert.equal((await json(unknown)).error.message, (await json(wrong)).error.message, 'unknown users and wrong passwords look alike');
    const failures = await audit(kernel!, admin.access_token, 'login_failed');
    assert.deepEqual(failures.map((e) => e.subject).sort(), ['admin', 'nobody']);
    assert.ok((await audit(kernel!, admin.access_token, 'login_succeeded')).length >= 1);
  });

  it('refuses tampered, foreign-key and expired tokens, the last with TOKEN_EXPIRED', async () => {
    const [h, p, s] = admin.access_token.split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...claims, scopes: ['*', 'more'] })).toString('base64url')}.${s}`;
    const badSignature = `${h}.${p}.${s!.slice(0, -4)}AAAA`;
    for (const token of [tampered, badSignature, await forge({ sub: claims.sub }, { secret: 'another-secret-0123456789-0123456789' }), 'not-a-jwt']) {
      const res = await call(kernel!, 'GET', '/v1/me', { token });
      assert.equal(res.status, 401, token);
      assert.equal((await json(res)).error.code, 'UNAUTHENTICATED');
    }
    const expired = await forge({ sub: claims.sub, owner: claims.sub }, { expiresAt: Math.floor(Date.now() / 1000) - 5 });
    const res = await call(kernel!, 'GET', '/v1/me', { token: expired });
    assert.equal(res.status, 401);
    assert.equal((await json(res)).error.code, 'TOKEN_EXPIRED');
    assert.match(res.headers.get('www-authenticate') ?? '', /Bearer/);
    const valid = await call(kernel!, 'GET', '/v1/me', { token: await forge({ sub: claims.sub, owner: claims.sub }) });
    assert.equal(valid.status, 200, 'the same key and claims, unexpired, pass');
  });

  it('answers 403 for a valid token without the route’s scope', async () => {
    const reader = await createUser(kernel!, admin.access_token, 'reader', { scopes: ['sessions:read'] });
    const res = await call(kernel!, 'GET', '/v1/api-keys', { token: reader.access_token });
    assert.equal(res.status, 403);
    const body = await json(res);
    assert.equal(body.error.code, 'FORBIDDEN');
    assert.deepEqual(body.error.details, { missingScopes: ['keys:read'] });
    const users = await call(kernel!, 'POST', '/v1/users', { token: reader.access_token, body: { username: 'x', password: 'long enough password' } });
    assert.equal(users.status, 403, 'only admins create users');
  });

  it('creates API keys shown once, stored hashed, with a visible prefix and scopes, and revokes them', async () => {
    const alice = await createUser(kernel!, admin.access_token, 'alice');
    const created = await call(kernel!, 'POST', '/v1/api-keys', { token: alice.access_token, body: { name: 'ci', scopes: ['sessions:read', 'keys:read'] } });
    assert.equal(created.status, 201);
    const key = await json(created);
    assert.match(key.key, /^aion_[0-9a-f]{12}_[A-Za-z0-9_-]{40,}$/);
    assert.equal(key.prefix, key.key.slice(0, 17));
    const listed = (await json(await call(kernel!, 'GET', '/v1/api-keys', { token: alice.access_token }))).api_keys;
    assert.deepEqual(
      listed.map((k: any) => [k.id, k.prefix, k.key]),
      [[key.id, key.prefix, undefined]],
    );

    for (const auth of [{ apiKey: key.key }, { token: key.key }]) {
      const me = await json(await call(kernel!, 'GET', '/v1/me', auth));
      assert.equal(me.type, 'service');
      assert.equal(me.owner, alice.id);
      assert.deepEqual(me.scopes, ['sessions:read', 'keys:read']);
    }
    assert.equal((await call(kernel!, 'POST', '/v1/api-keys', { apiKey: key.key, body: { name: 'x' } })).status, 403, 'the key lacks keys:write');
    const escalate = await call(kernel!, 'POST', '/v1/api-keys', { token: alice.access_token, body: { name: 'x', scopes: ['users:write'] } });
    assert.equal(escalate.status, 403, 'no scopes beyond the creator’s');
    const forged = key.key.slice(0, -3) + 'xyz';
    assert.equal((await call(kernel!, 'GET', '/v1/me', { apiKey: forged })).status, 401);

    assert.equal((await call(kernel!, 'DELETE', `/v1/api-keys/${key.id}`, { token: admin.access_token })).status, 404, 'another user’s key is not found');
    assert.equal((await call(kernel!, 'DELETE', `/v1/api-keys/${key.id}`, { token: alice.access_token })).status, 204);
    const revoked = await call(kernel!, 'GET', '/v1/me', { apiKey: key.key });
    assert.equal(revoked.status, 401);
    assert.match((await json(revoked)).error.message, /revoked/);
    assert.deepEqual(
      (await audit(kernel!, admin.access_token, 'key_created')).map((e) => e.subject),
      [key.id],
    );
    assert.deepEqual(
      (await audit(kernel!, admin.access_token, 'key_revoked')).map((e) => e.subject),
      [key.id],
    );
  });

  it('rotates refresh tokens, and a reused one revokes its whole family', async () => {
    const first = await login(kernel!, 'admin', initialAdmin(kernel!).password);
    const second = await json(await call(kernel!, 'POST', '/v1/auth/refresh', { body: { refresh_token: first.refresh_token } }));
    assert.ok(second.access_token && second.refresh_token !== first.refresh_token);
    assert.equal((await call(kernel!, 'GET', '/v1/me', { token: second.access_token })).status, 200);

    const reuse = await call(kernel!, 'POST', '/v1/auth/refresh', { body: { refresh_token: first.refresh_token } });
    assert.equal(reuse.status, 401);
    assert.equal((await json(reuse)).error.code, 'REFRESH_TOKEN_REUSED');
    const afterReuse = await call(kernel!, 'POST', '/v1/auth/refresh', { body: { refresh_token: second.refresh_token } });
    assert.equal(afterReuse.status, 401, 'the newest token of the family is revoked too');
    assert.match((await json(afterReuse)).error.message, /revoked/);
    const events = await audit(kernel!, admin.access_token, 'refresh_reused');
    assert.equal(events.length, 1);
    assert.equal(events[0].details.revoked, 2);

    const other = await json(await call(kernel!, 'POST', '/v1/auth/refresh', { body: { refresh_token: admin.refresh_token } }));
    assert.ok(other.access_token, 'another sign-in of the same user is untouched');
    admin = other;
  });

  it('ends a sign-in on logout', async () => {
    const tokens = await login(kernel!, 'alice', 'pw-alice-0123456789');
    assert.equal((await call(kernel!, 'POST', '/v1/auth/logout', { body: { refresh_token: tokens.refresh_token } })).status, 204);
    assert.equal((await call(kernel!, 'POST', '/v1/auth/refresh', { body: { refresh_token: tokens.refresh_token } })).status, 401);
  });

  it('registers devices that act for their owner, and revoking one ends its tokens', async () => {
    const bob = await createUser(kernel!, admin.access_token, 'bob');
    const res = await call(kernel!, 'POST', '/v1/devices', { token: bob.access_token, body: { name: 'laptop' } });
    assert.equal(res.status, 201);
    const device = await json(res);
    assert.deepEqual(device.device.scopes, ['sessions:read', 'sessions:write']);
    const me = await json(await call(kernel!, 'GET', '/v1/me', { token: device.access_token }));
    assert.equal(me.type, 'device');
    assert.equal(me.sub, device.device.id);
    assert.equal(me.owner, bob.id);
    assert.equal(me.device.name, 'laptop');
    assert.equal(
      (await call(kernel!, 'POST', '/v1/devices', { token: device.access_token, body: { name: 'child' } })).status,
      403,
      'a device cannot register devices',
    );

    const renamed = await json(await call(kernel!, 'PATCH', `/v1/devices/${device.device.id}`, { token: bob.access_token, body: { name: 'work laptop' } }));
    assert.equal(renamed.name, 'work laptop');
    assert.deepEqual(
      (await json(await call(kernel!, 'GET', '/v1/devices', { token: bob.access_token }))).devices.map((d: any) => d.name),
      ['work laptop'],
    );
    assert.equal(
      (await call(kernel!, 'GET', `/v1/devices/${device.device.id}`, { token: admin.access_token })).status,
      404,
      'another user’s device is not found',
    );

    const refreshed = await json(await call(kernel!, 'POST', '/v1/auth/refresh', { body: { refresh_token: device.refresh_token } }));
    assert.ok(refreshed.access_token);
    assert.equal((await call(kernel!, 'DELETE', `/v1/devices/${device.device.id}`, { token: bob.access_token })).status, 204);
    assert.equal((await call(kernel!, 'POST', '/v1/auth/refresh', { body: { refresh_token: refreshed.refresh_token } })).status, 401);
  });

  it('throttles failed logins per account, even for the right password, with Retry-After', async () => {
    const carol = await createUser(kernel!, admin.access_token, 'carol');
    for (let i = 0; i < 3; i++) assert.equal((await call(kernel!, 'POST', '/v1/auth/login', { body: { username: 'carol', password: 'wrong' } })).status, 401);
    const blocked = await call(kernel!, 'POST', '/v1/auth/login', { body: { username: 'carol', password: carol.password } });
    assert.equal(blocked.status, 429);
    assert.equal((await json(blocked)).error.code, 'RATE_LIMITED');
    const retryAfter = Number(blocked.headers.get('retry-after'));
    assert.ok(retryAfter > 0 && retryAfter <= 60, `Retry-After ${retryAfter}`);
    assert.equal((await audit(kernel!, admin.access_token, 'login_throttled')).length, 1);
  });

  it('creates users with the auth.createUser command (aion users create)', async () => {
    const made = await kernel!.executeCommand<{ user: { username: string; scopes: string[] }; password: string }>('auth.createUser', { username: 'Dave' });
    assert.equal(made.user.username, 'dave');
    assert.ok(made.password.length >= 16, 'a generated one-time password');
    await login(kernel!, 'dave', made.password);
    await assert.rejects(kernel!.executeCommand('auth.createUser', { username: 'dave', password: 'another password' }), /already exists/);
  });

  it('keeps users and the signing key across a restart and does not create another admin', async () => {
    await kernel!.stop();
    kernel = await start();
    assert.equal(existsSync(join(kernel.dataDir, 'storage', 'aion.auth', 'initial-admin.txt')), false);
    assert.equal((await call(kernel, 'GET', '/v1/me', { token: admin.access_token })).status, 200, 'tokens survive a restart');
    const users = (await json(await call(kernel, 'GET', '/v1/users', { token: admin.access_token }))).users;
    assert.deepEqual(
      users.map((u: any) => u.username),
      ['admin', 'alice', 'bob', 'carol', 'dave', 'reader'],
    );
  });

  it('counts users for admins, with numbers and no names', async () => {
    const counts = await call(kernel!, 'GET', '/v1/users/counts', { token: admin.access_token });
    assert.equal(counts.status, 200);
    const body = await json(counts);
    assert.deepEqual(Object.keys(body).sort(), ['disabled', 'users']);
    assert.equal(body.users, 6);
    assert.equal(typeof body.disabled, 'number');
    const plain = await createUser(kernel!, admin.access_token, 'plain', { scopes: ['sessions:read'] });
    assert.equal((await call(kernel!, 'GET', '/v1/users/counts', { token: plain.access_token })).status, 403, 'a user without users:read');
    assert.equal((await json(await call(kernel!, 'GET', '/v1/users/counts', { token: admin.access_token }))).users, 7);
  });
});
