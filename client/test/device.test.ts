import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { type AionApiError, AionClient, type DeviceCall, type DeviceConnection, type DeviceConnectionOptions, type DeviceSkill } from '../src/index.js';
import { startHub, type Hub } from './hub.js';

const READ: DeviceSkill = {
  id: 'workspace.read',
  title: 'Read a file',
  description: 'Reads a file of the workspace',
  tags: ['workspace'],
  inputSchema: { type: 'object', properties: { path: { type: 'string' } }, required: ['path'], additionalProperties: false },
};
const WAIT: DeviceSkill = { id: 'workspace.wait', title: 'Wait', description: 'Waits until cancelled', tags: [], inputSchema: { type: 'object' } };

describe('@aion/client: a device connected to a real hub', function () {
  this.timeout(60_000);
  let hub: Hub;
  let admin: AionClient;
  let token: string;
  let device: DeviceConnection | undefined;
  const calls: DeviceCall[] = [];
  let aborted = 0;

  const connect = (overrides: Partial<DeviceConnectionOptions> = {}) =>
    admin.devices.connect({
      token,
      device: 'ide-laptop',
      skills: () => [READ, WAIT],
      createSocket: (url, headers) => new WebSocket(url, { headers }),
      backoff: { baseMs: 50, maxMs: 200 },
      execute: async (call, signal) => {
        calls.push(call);
        if (call.skill === 'workspace.wait') {
          await new Promise<void>((resolve) => signal.addEventListener('abort', () => (aborted++, resolve()), { once: true }));
          return { result: 'stopped' };
        }
        const path = (call.args as { path: string }).path;
        if (path.includes('..')) throw Object.assign(new Error(`${path} is outside the workspace`), { code: 'PATH_OUTSIDE_WORKSPACE' });
        return { result: { path, text: `contents of ${path}` } };
      },
      ...overrides,
    });

  before(async () => {
    hub = await startHub({
      devices: true,
      extensions: { 'aion.devices': { timeouts: { sandboxMs: 500, localSkillMs: 1000, remoteSkillMs: 1500, uiResponseMs: 3000 } } },
    });
    admin = new AionClient({ baseUrl: hub.url });
    await admin.auth.login(hub.admin.username, hub.admin.password);
    const added = await admin.devices.add({ name: 'IDE laptop' });
    assert.equal(added.device.name, 'ide-laptop');
    token = added.token;
  });
  after(async () => {
    device?.stop();
    admin?.close();
    await hub?.stop();
  });

  it('connects, is listed online with its skills, and serves a call from the hub', async () => {
    device = connect();
    device.start();
    await device.waitOnline(10_000);
    const [listed] = await admin.devices.list();
    assert.deepEqual([listed!.name, listed!.status, listed!.skills_count], ['ide-laptop', 'online', 2]);
    const grouped = await admin.devices.skills({ q: 'read' });
    assert.deepEqual(
      grouped.skills.map((s) => [s.id, s.devices.map((d) => d.path), s.device_count]),
      [['workspace.read', ['ide-laptop/workspace.read'], 1]],
    );
    const answer = await admin.skills.execute<{ path: string; text: string }>('ide-laptop/workspace.read', { path: 'src/app.ts' });
    assert.deepEqual(answer.result, { path: 'src/app.ts', text: 'contents of src/app.ts' });
    assert.equal(calls.at(-1)!.caller.type, 'user', 'the hub forwards who is calling');
  });

  it("passes the device's own error code back to the hub's caller", async () => {
    const err = await admin.skills.execute('ide-laptop/workspace.read', { path: '../../etc/passwd' }).then(
      () => assert.fail('expected a refusal'),
      (e: AionApiError) => e,
    );
    assert.equal(err.code, 'PATH_OUTSIDE_WORKSPACE');
  });

  it('aborts the call on the device when the hub gives up at its deadline', async () => {
    const err = await admin.skills.execute('ide-laptop/workspace.wait', {}).then(
      () => assert.fail('expected a timeout'),
      (e: AionApiError) => e,
    );
    assert.equal(err.code, 'DEVICE_TIMEOUT');
    const until = Date.now() + 5_000;
    while (aborted === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    assert.equal(aborted, 1, "the device's signal fired");
  });

  it('refuses a device of another protocol version, naming both, and does not retry', async () => {
    const other = connect({ protocolVersion: 99 });
    other.start();
    try {
      const err = await other.waitOnline(10_000).then(
        () => assert.fail('expected a refusal'),
        (e: AionApiError) => e,
      );
      assert.equal(err.code, 'DEVICE_PROTOCOL_MISMATCH');
      assert.match(err.message, /99/);
      assert.equal(other.state, 'refused');
    } finally {
      other.stop();
    }
  });

  it('is dropped when revoked, and stops instead of retrying', async () => {
    await admin.devices.revoke('ide-laptop');
    const until = Date.now() + 5_000;
    while (device!.state !== 'refused' && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    assert.equal(device!.state, 'refused');
    assert.equal(device!.refusal?.code, 'DEVICE_TOKEN_INVALID');
  });
});
