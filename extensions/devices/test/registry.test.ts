import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { startTestKernel, type TestKernel } from '@aion/core';
import { call, createUser, signInAdmin, type Tokens } from '@aion/ext-auth/testing';
import { validateConfiguration, type DevicesConfiguration } from '../src/config.js';
import { PROTOCOL_VERSION, deviceToolName, isDeviceName, normalizeDeviceName, parseSkillPath, skillPath, uniqueDeviceName } from '../src/contract.js';
import { aion, rawDevice } from './support/helpers.js';

const defaults: DevicesConfiguration = {
  maxFrameBytes: 1048576,
  pingIntervalMs: 10000,
  pingTimeoutMs: 30000,
  handshakeTimeoutMs: 10000,
  maxInFlightPerDevice: 64,
  retryAfterSeconds: 1,
  timeouts: { sandboxMs: 5000, localSkillMs: 10000, remoteSkillMs: 30000, uiResponseMs: 60000 },
  expose: { skills: ['*'], models: [] },
  cluster: { redisPrefix: 'aion', presenceTtlMs: 15000 },
  sync: { enabled: true, intervalMs: 5000 },
};

describe('devices: the shared contract', () => {
  it('normalizes names across case, spaces, punctuation and Unicode', () => {
    assert.equal(normalizeDeviceName('  Grace’s  MacBook Pro '), 'grace-s-macbook-pro');
    assert.equal(normalizeDeviceName('ＷＯＲＫＳＴＡＴＩＯＮ'), 'workstation', 'full-width letters fold');
    assert.equal(normalizeDeviceName('Café GPU'), 'cafe-gpu', 'accents drop');
    assert.equal(normalizeDeviceName('Cafe\u0301 GPU'), 'cafe-gpu', 'a combining accent spells the same name');
    assert.equal(normalizeDeviceName('../../etc'), 'etc');
    assert.equal(normalizeDeviceName('!!!'), '');
    assert.equal(normalizeDeviceName('x'.repeat(100)).length, 63);
    assert.ok(isDeviceName('laptop-2') && !isDeviceName('Laptop') && !isDeviceName('a/b'));
  });

  it('resolves collisions with a numbered suffix', () => {
    const taken = new Set(['laptop', 'laptop-2']);
    assert.equal(
      uniqueDeviceName('laptop', (n) => taken.has(n)),
      'laptop-3',
    );
    assert.equal(
      uniqueDeviceName('phone', (n) => taken.has(n)),
      'phone',
    );
  });

  it('names skills on devices as <device>/<skill id> and tools as device.skill', () => {
    assert.equal(skillPath('laptop', 'text.stats'), 'laptop/text.stats');
    assert.deepEqual(parseSkillPath('laptop/text.stats'), { device: 'laptop', skill: 'text.stats' });
    assert.deepEqual(parseSkillPath('text.stats'), { skill: 'text.stats' });
    assert.equal(deviceToolName('laptop', 'text.stats'), 'laptop.text.stats');
  });

  it('validates the timeout hierarchy and liveness at load', () => {
    assert.doesNotThrow(() => validateConfiguration(defaults));
    assert.throws(
      () => validateConfiguration({ ...defaults, timeouts: { ...defaults.timeouts, remoteSkillMs: 9000 } }),
      (e: any) => e.code === 'CONFIG_INVALID' && /remoteSkillMs \(9000 ms\) must be longer than timeouts.localSkillMs/.test(e.message),
    );
    assert.throws(
      () => validateConfiguration({ ...defaults, pingTimeoutMs: 5000 }),
      (e: any) => e.code === 'CONFIG_INVALID' && /pingTimeoutMs/.test(e.message),
    );
  });
});

describe('devices: registry, tokens, HTTP and CLI', function () {
  let kernel: TestKernel;
  let admin: Tokens;

  before(async () => {
    kernel = await startTestKernel({ builtins: ['aion.storage', 'aion.auth', 'aion.devices'] });
    admin = await signInAdmin(kernel);
  });
  after(() => kernel?.stop());

  it('adds a device with a token shown once, normalizes its name and resolves collisions', async () => {
    const res = await call(kernel, 'POST', '/v1/hub/devices', { token: admin.access_token, body: { name: '  Grace’s MacBook ' } });
    assert.equal(res.status, 201, await res.clone().text());
    const added = (await res.json()) as any;
    assert.equal(added.device.name, 'grace-s-macbook');
    assert.equal(added.device.status, 'offline');
    assert.deepEqual(added.device.scopes, ['skills:expose', 'sessions:sync']);
    const claims = JSON.parse(Buffer.from(added.token.split('.')[1], 'base64url').toString());
    assert.equal(claims.type, 'device');
    assert.equal(claims.name, 'grace-s-macbook');
    assert.ok(claims.sub && claims.user_id && claims.tenant_id === 'default');
    const again = (await (await call(kernel, 'POST', '/v1/hub/devices', { token: admin.access_token, body: { name: 'GRACE’S macbook' } })).json()) as any;
    assert.equal(again.device.name, 'grace-s-macbook-2');
    const listed = (await (await call(kernel, 'GET', '/v1/hub/devices', { token: admin.access_token })).json()) as any;
    assert.deepEqual(
      listed.devices.map((d: any) => d.name),
      ['grace-s-macbook', 'grace-s-macbook-2'],
    );
    assert.ok(!JSON.stringify(listed).includes(added.token), 'the token is never listed');
  });

  it('loads without a router and says nothing of the devices provider it would contribute', async () => {
    const rows = (await (await call(kernel, 'GET', '/v1/extensions', { token: admin.access_token })).json()) as any;
    const devices = (Array.isArray(rows) ? rows : rows.extensions).find((e: any) => e.id === 'aion.devices');
    assert.equal(devices.state, 'active');
    assert.deepEqual(devices.warnings ?? [], []);
  });

  it('grants a device least privilege only', async () => {
    const res = await call(kernel, 'POST', '/v1/hub/devices', { token: admin.access_token, body: { name: 'greedy', scopes: ['skills:expose', '*'] } });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as any).error.code, 'VALIDATION_FAILED');
  });

  it('shows users only their own devices and lets them revoke only those', async () => {
    const bob = await createUser(kernel, admin.access_token, 'bob', { scopes: ['devices:read', 'devices:write'] });
    const mine = (await (await call(kernel, 'POST', '/v1/hub/devices', { token: bob.access_token, body: { name: 'bob phone' } })).json()) as any;
    assert.equal(mine.device.user_id, bob.id);
    const listed = (await (await call(kernel, 'GET', '/v1/hub/devices', { token: bob.access_token })).json()) as any;
    assert.deepEqual(
      listed.devices.map((d: any) => d.name),
      ['bob-phone'],
    );
    assert.equal(
      (await call(kernel, 'DELETE', '/v1/hub/devices/grace-s-macbook-2', { token: bob.access_token })).status,
      404,
      'another user’s device is not found',
    );
    assert.equal((await call(kernel, 'DELETE', '/v1/hub/devices/Bob%20Phone', { token: bob.access_token })).status, 204, 'names are normalized on revoke too');
    assert.deepEqual(((await (await call(kernel, 'GET', '/v1/hub/devices', { token: bob.access_token })).json()) as any).devices, []);
  });

  it('answers GET and DELETE /v1/devices with the hub’s devices beside the caller’s device credentials', async () => {
    const carol = await createUser(kernel, admin.access_token, 'carol', { scopes: ['devices:read', 'devices:write'] });
    const dave = await createUser(kernel, admin.access_token, 'dave', { scopes: ['devices:read', 'devices:write'] });
    assert.equal((await call(kernel, 'POST', '/v1/hub/devices', { token: carol.access_token, body: { name: 'Carol Desk' } })).status, 201);
    const created = await call(kernel, 'POST', '/v1/devices', { token: carol.access_token, body: { name: 'carol tablet', scopes: ['devices:read'] } });
    assert.equal(created.status, 201, await created.clone().text());
    const credential = (await created.json()) as any;
    const listed = ((await (await call(kernel, 'GET', '/v1/devices', { token: carol.access_token })).json()) as any).devices;
    assert.deepEqual(listed.map((d: any) => [d.kind, d.name]).sort(), [
      ['credentials', 'carol tablet'],
      ['spoke', 'carol-desk'],
    ]);
    const desk = listed.find((d: any) => d.kind === 'spoke');
    assert.equal(desk.status, 'offline');
    for (const field of ['last_seen_at', 'skills_count', 'protocol_version', 'address']) assert.ok(field in desk, `${field} is listed`);
    // Another user neither sees nor revokes carol's spoke through /v1/devices.
    assert.deepEqual(((await (await call(kernel, 'GET', '/v1/devices', { token: dave.access_token })).json()) as any).devices, []);
    assert.equal((await call(kernel, 'DELETE', '/v1/devices/carol-desk', { token: dave.access_token })).status, 404);
    assert.equal((await call(kernel, 'DELETE', '/v1/devices/Carol%20Desk', { token: carol.access_token })).status, 204);
    assert.equal((await call(kernel, 'DELETE', '/v1/devices/nothing-here', { token: carol.access_token })).status, 404);
    assert.equal((await call(kernel, 'DELETE', `/v1/devices/${credential.device.id}`, { token: carol.access_token })).status, 204);
    assert.deepEqual(((await (await call(kernel, 'GET', '/v1/devices', { token: carol.access_token })).json()) as any).devices, []);
  });

  it('refuses forged, malformed and revoked tokens at connect with DEVICE_TOKEN_INVALID', async () => {
    const forged = await new SignJWT({ type: 'device', name: 'evil', user_id: 'x', tenant_id: 'default', scopes: ['skills:expose'] })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject('00000000-0000-0000-0000-000000000000')
      .setJti('j')
      .setIssuer('aion.devices')
      .setAudience('aion-hub')
      .sign(new TextEncoder().encode('not-the-hub-key-not-the-hub-key-!!'));
    for (const token of [forged, 'garbage', undefined]) {
      const device = await rawDevice(kernel.url, token);
      const answer = JSON.parse(await device.next());
      assert.equal(answer.type, 'refused');
      assert.equal(answer.code, 'DEVICE_TOKEN_INVALID');
      await device.closed;
    }
    const added = (await (await call(kernel, 'POST', '/v1/hub/devices', { token: admin.access_token, body: { name: 'soon gone' } })).json()) as any;
    assert.equal((await call(kernel, 'DELETE', '/v1/hub/devices/soon-gone', { token: admin.access_token })).status, 204);
    const device = await rawDevice(kernel.url, added.token);
    const answer = JSON.parse(await device.next());
    assert.equal(answer.code, 'DEVICE_TOKEN_INVALID');
    assert.match(answer.message, /revoked/);
  });

  it('aion devices add | list | revoke from the shell, on the server’s data directory', async () => {
    const common = ['--data-dir', kernel.dataDir, '--builtins', 'aion.storage,aion.devices'];
    const added = await aion(['devices', 'add', 'Work Station', '--scopes', 'skills:expose,models:expose', ...common]);
    assert.equal(added.code, 0, added.stderr);
    const out = JSON.parse(added.stdout);
    assert.equal(out.device.name, 'work-station');
    assert.deepEqual(out.device.scopes, ['skills:expose', 'models:expose']);
    assert.match(out.token, /^ey/);
    const listed = await aion(['devices', 'list', ...common]);
    assert.ok(JSON.parse(listed.stdout).some((d: any) => d.name === 'work-station' && d.status === 'offline'));
    // Connected to the running server while the shell revokes it: the server drops it within seconds.
    const connected = await rawDevice(kernel.url, out.token);
    connected.ws.send(
      JSON.stringify({ type: 'hello', protocolVersion: PROTOCOL_VERSION, aionVersion: '0.1.0', device: 'work-station', manifests: [], skills: [] }),
    );
    assert.equal(JSON.parse(await connected.next()).type, 'welcome');
    const revoked = await aion(['devices', 'revoke', 'work station', ...common]);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, /work-station revoked/);
    const revokedAt = Date.now();
    await connected.closed;
    assert.ok(Date.now() - revokedAt < 10_000, 'dropped within seconds of the revocation');
    const unknown = await aion(['devices', 'revoke', 'nothing-here', ...common]);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /DEVICE_NOT_FOUND|no device/);
  });
});
