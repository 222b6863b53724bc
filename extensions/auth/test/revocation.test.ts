import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestKernel, type TestKernel } from '@aion/core';
import { forEachDatabase, requireServer, STORAGE_EXTENSION_DIR } from '@aion/ext-storage/testing';
import { RevocationList } from '../src/revocations.js';
import { AUTH_EXTENSION_DIR, call, createUser, login, signInAdmin, type Tokens } from '../src/testing.js';
import { probeRedis, REDIS_URL } from '../src/testing.js';

async function me(kernel: TestKernel, token: string): Promise<{ status: number; code?: string }> {
  const res = await call(kernel, 'GET', '/v1/me', { token });
  const body = (await res.json()) as { error?: { code: string } };
  return { status: res.status, code: body.error?.code };
}

const REFUSED = { status: 401, code: 'TOKEN_REVOKED' };
const ACCEPTED = { status: 200, code: undefined };

/** Asks until the answer changes from `from` or the deadline passes; answers the last one. */
async function meOnceChanged(kernel: TestKernel, token: string, from: { status: number }, deadlineMs = 10_000): Promise<{ status: number; code?: string }> {
  const until = Date.now() + deadlineMs;
  let answer = await me(kernel, token);
  while (answer.status === from.status && Date.now() < until) {
    await sleep(20);
    answer = await me(kernel, token);
  }
  return answer;
}

describe('aion.auth RevocationList', () => {
  it('refuses tokens of a revoked sign-in or subject, and forgets the entry once they have expired', () => {
    const list = new RevocationList();
    const now = 1_000_000;
    list.add({ kind: 'family', ids: ['signin-1'], until: now + 900_000 });
    list.add({ kind: 'subject', ids: ['device-1'], until: now + 60_000 });
    assert.equal(list.rejects({ sub: 'user-1', fam: 'signin-1' }, now), true);
    assert.equal(list.rejects({ sub: 'device-1', fam: 'signin-2' }, now), true);
    assert.equal(list.rejects({ sub: 'user-1', fam: 'signin-2' }, now), false);
    assert.equal(list.rejects({ sub: 'user-1' }, now), false);
    list.add({ kind: 'family', ids: ['signin-1'], until: now + 1 });
    assert.equal(list.rejects({ sub: 'user-1', fam: 'signin-1' }, now + 600_000), true, 'an earlier expiry never shortens an entry');
    list.sweep(now + 60_000);
    assert.equal(list.size, 1, 'the device entry is gone once its tokens have expired');
    list.sweep(now + 900_000);
    assert.equal(list.size, 0);
    assert.equal(list.rejects({ sub: 'user-1', fam: 'signin-1' }, now + 900_000), false);
  });
});

forEachDatabase('aion.auth revocation of access tokens', (db) => {
  let kernel: TestKernel | undefined;
  let dir: string;
  let admin: Tokens;
  let alice: Tokens & { id: string; password: string };

  const start = () =>
    startTestKernel({
      extensions: [STORAGE_EXTENSION_DIR, AUTH_EXTENSION_DIR],
      config: {
        extensions: {
          'aion.storage': db.storageConfig({ sqlite: { path: join(dir, 'aion.db') } }),
          'aion.auth': { scryptCost: 1024, rateLimits: { enabled: false } },
        },
      },
    });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'aion-auth-revocation-'));
    kernel = await start();
    admin = await signInAdmin(kernel);
    alice = await createUser(kernel, admin.access_token, 'alice');
  });
  after(async () => {
    await kernel?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses the access token of a sign-in after logout, by refresh token or by the access token itself', async () => {
    const first = await login(kernel!, 'alice', alice.password);
    const second = await login(kernel!, 'alice', alice.password);
    assert.deepEqual(await me(kernel!, first.access_token), ACCEPTED);
    assert.equal((await call(kernel!, 'POST', '/v1/auth/logout', { body: { refresh_token: first.refresh_token } })).status, 204);
    assert.deepEqual(await me(kernel!, first.access_token), REFUSED);
    assert.deepEqual(await me(kernel!, second.access_token), ACCEPTED, 'another sign-in of the same user goes on');

    assert.equal((await call(kernel!, 'POST', '/v1/auth/logout', { token: second.access_token })).status, 204);
    assert.deepEqual(await me(kernel!, second.access_token), REFUSED);
    const res = await call(kernel!, 'GET', '/v1/me', { token: second.access_token });
    assert.match(res.headers.get('www-authenticate') ?? '', /invalid_token/);
    assert.match(((await res.json()) as { error: { message: string } }).error.message, /sign in again/);
  });

  it('refuses every access token of a sign-in revoked because a refresh token was used twice', async () => {
    const first = await login(kernel!, 'alice', alice.password);
    const rotated = (await (await call(kernel!, 'POST', '/v1/auth/refresh', { body: { refresh_token: first.refresh_token } })).json()) as Tokens;
    assert.deepEqual(await me(kernel!, rotated.access_token), ACCEPTED);
    const reuse = await call(kernel!, 'POST', '/v1/auth/refresh', { body: { refresh_token: first.refresh_token } });
    assert.equal(reuse.status, 401);
    assert.deepEqual(await me(kernel!, rotated.access_token), REFUSED, 'the thief’s or the owner’s newest token alike');
    assert.deepEqual(await me(kernel!, first.access_token), REFUSED);
  });

  it('refuses the access token of a revoked device', async () => {
    const res = await call(kernel!, 'POST', '/v1/devices', { token: alice.access_token, body: { name: 'phone' } });
    const device = (await res.json()) as Tokens & { device: { id: string } };
    assert.deepEqual(await me(kernel!, device.access_token), ACCEPTED);
    assert.equal((await call(kernel!, 'DELETE', `/v1/devices/${device.device.id}`, { token: alice.access_token })).status, 204);
    assert.deepEqual(await me(kernel!, device.access_token), REFUSED);
  });

  it('ends the other sign-ins of a user who changes the password, and keeps this one', async () => {
    const here = await login(kernel!, 'alice', alice.password);
    const elsewhere = await login(kernel!, 'alice', alice.password);
    const next = 'a brand new password';
    assert.equal(
      (await call(kernel!, 'POST', '/v1/me/password', { token: here.access_token, body: { current_password: alice.password, new_password: next } })).status,
      204,
    );
    alice.password = next;
    assert.deepEqual(await me(kernel!, elsewhere.access_token), REFUSED);
    assert.equal((await call(kernel!, 'POST', '/v1/auth/refresh', { body: { refresh_token: elsewhere.refresh_token } })).status, 401);
    assert.deepEqual(await me(kernel!, here.access_token), ACCEPTED);
    assert.equal((await call(kernel!, 'POST', '/v1/auth/refresh', { body: { refresh_token: here.refresh_token } })).status, 200);
  });

  it('still refuses an ended sign-in’s access token after a restart', async () => {
    const ended = await login(kernel!, 'alice', alice.password);
    assert.equal((await call(kernel!, 'POST', '/v1/auth/logout', { token: ended.access_token })).status, 204);
    const live = await login(kernel!, 'alice', alice.password);
    await kernel!.stop();
    kernel = await start();
    assert.deepEqual(await me(kernel, ended.access_token), REFUSED);
    assert.deepEqual(await me(kernel, live.access_token), ACCEPTED);
  });
});

forEachDatabase('aion.auth revocation shared through Redis', (db) => {
  let dir: string;
  let a: TestKernel | undefined;
  let b: TestKernel | undefined;
  let alice: Tokens & { id: string; password: string };

  before(async function () {
    requireServer(this, `Redis at ${REDIS_URL}`, await probeRedis());
    dir = mkdtempSync(join(tmpdir(), 'aion-auth-revocation-redis-'));
    const config = {
      'aion.storage': db.storageConfig({ sqlite: { path: join(dir, 'shared.db') } }),
      // A long key cache: only the announcement through Redis can make the other kernel refuse a revoked key in time.
      'aion.auth': {
        scryptCost: 1024,
        redisUrl: REDIS_URL,
        apiKeyCacheSeconds: 300,
        revocations: { redisChannel: `aion-test-${randomBytes(4).toString('hex')}:revocations` },
        rateLimits: { enabled: false },
      },
    };
    a = await startTestKernel({ extensions: [STORAGE_EXTENSION_DIR, AUTH_EXTENSION_DIR], config: { extensions: config } });
    b = await startTestKernel({ extensions: [STORAGE_EXTENSION_DIR, AUTH_EXTENSION_DIR], config: { extensions: config } });
    alice = await createUser(a, (await signInAdmin(a)).access_token, 'alice');
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a sign-in ended on one kernel is refused by the other, which had already accepted its token', async () => {
    const signIn = await login(a!, 'alice', alice.password);
    assert.deepEqual(await me(b!, signIn.access_token), ACCEPTED);
    assert.equal((await call(a!, 'POST', '/v1/auth/logout', { token: signIn.access_token })).status, 204);
    assert.deepEqual(await meOnceChanged(b!, signIn.access_token, ACCEPTED), REFUSED);
  });

  it('a device revoked on one kernel is refused by the other', async () => {
    const device = (await (await call(b!, 'POST', '/v1/devices', { token: alice.access_token, body: { name: 'tablet' } })).json()) as Tokens & {
      device: { id: string };
    };
    assert.deepEqual(await me(a!, device.access_token), ACCEPTED);
    assert.deepEqual(await me(b!, device.access_token), ACCEPTED);
    assert.equal((await call(b!, 'DELETE', `/v1/devices/${device.device.id}`, { token: alice.access_token })).status, 204);
    assert.deepEqual(await meOnceChanged(a!, device.access_token, ACCEPTED), REFUSED);
  });

  it('an API key revoked on one kernel is refused at once by both, although the other holds it in its cache', async () => {
    const created = await call(a!, 'POST', '/v1/api-keys', { token: alice.access_token, body: { name: 'ci', scopes: ['keys:read'] } });
    assert.equal(created.status, 201);
    const key = (await created.json()) as { id: string; key: string };
    const listKeys = async (kernel: TestKernel) => (await call(kernel, 'GET', '/v1/api-keys', { apiKey: key.key })).status;
    assert.equal(await listKeys(a!), 200);
    assert.equal(await listKeys(b!), 200, 'kernel B has read the key and caches it');
    assert.equal((await call(a!, 'DELETE', `/v1/api-keys/${key.id}`, { token: alice.access_token })).status, 204);
    assert.equal(await listKeys(a!), 401, 'the revoking kernel refuses it with its next request');
    const until = Date.now() + 5_000;
    let status = await listKeys(b!);
    while (status === 200 && Date.now() < until) {
      await sleep(20);
      status = await listKeys(b!);
    }
    assert.equal(status, 401, 'kernel B refuses it well within the cache lifetime of 300 s');
  });
});
