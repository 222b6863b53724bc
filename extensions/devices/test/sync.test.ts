import assert from 'node:assert/strict';
import { call, createUser, signInAdmin, type Tokens } from '@aion/ext-auth/testing';
import {
  listeningUrl,
  removeDir,
  spokeAuth,
  spokeSkills,
  startHubProcess,
  startSpoke,
  waitFor,
  type HubProcess,
  type SpokeProcess,
} from './support/helpers.js';

const DEVICES = { pingIntervalMs: 200, pingTimeoutMs: 1500, sync: { intervalMs: 300 } };
const SPOKE = {
  builtins: 'aion.storage,aion.skills,aion.sessions,aion.devices',
  extensionDirs: [spokeSkills, spokeAuth],
  config: { extensions: { 'aion.devices': DEVICES } },
};

/**
 * Offline sessions: the spoke keeps its user's sessions in its own database and syncs them with the
 * hub through the device connection whenever it is connected (the sessions sync API on both sides).
 */
describe('devices: a spoke’s sessions sync with the hub', function () {
  let hub: HubProcess;
  let spoke: SpokeProcess;
  let alice: Tokens & { id: string };
  let token: string;
  let spokeUrl: string;
  const hubKernel = () => ({ dataDir: hub.dataDir, request: (path: string, init?: RequestInit) => fetch(hub.url + path, init) });
  const onSpoke = (method: string, path: string, body?: unknown) =>
    fetch(spokeUrl + path, {
      method,
      headers: { authorization: `Bearer user:${alice.id}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
  const hubSession = async (id: string) => {
    const res = await call(hubKernel(), 'GET', `/v1/sessions/${id}`, { token: alice.access_token });
    return res.status === 200 ? ((await res.json()) as any) : undefined;
  };
  const spokeSession = async (id: string) => {
    const res = await onSpoke('GET', `/v1/sessions/${id}`);
    return res.status === 200 ? ((await res.json()) as any) : undefined;
  };
  const deviceStatus = async () =>
    (((await (await call(hubKernel(), 'GET', '/v1/hub/devices', { token: alice.access_token })).json()) as any).devices as any[])[0]?.status;

  async function launchSpoke(dataDir?: string): Promise<void> {
    spoke = startSpoke(hub.url, token, { ...SPOKE, dataDir });
    await waitFor('the spoke online', async () => ((await deviceStatus()) === 'online' ? true : undefined), 60_000, 100).catch((err) => {
      throw new Error(`${(err as Error).message}\n${spoke.output()}`);
    });
    spokeUrl = await waitFor('the spoke’s local server', () => listeningUrl(spoke.child.pid!), 10_000);
  }

  before(async () => {
    hub = await startHubProcess(
      { extensions: { 'aion.auth': { scryptCost: 1024, rateLimits: { enabled: false } }, 'aion.devices': DEVICES } },
      'aion.storage,aion.auth,aion.sessions,aion.devices',
    );
    const admin = await signInAdmin(hubKernel());
    alice = await createUser(hubKernel(), admin.access_token, 'alice', { scopes: ['sessions:read', 'sessions:write', 'devices:read', 'devices:write'] });
    token = ((await (await call(hubKernel(), 'POST', '/v1/hub/devices', { token: alice.access_token, body: { name: 'alice laptop' } })).json()) as any).token;
    await launchSpoke();
  });
  after(async () => {
    await spoke?.stop();
    await hub?.stop();
  });

  it('pushes what the spoke wrote and pulls what the hub has, both ways', async () => {
    assert.equal((await onSpoke('POST', '/v1/sessions', { id: 'from-spoke', title: 'written on the laptop' })).status, 201);
    for (const [i, content] of ['one', 'two'].entries())
      assert.equal((await onSpoke('POST', '/v1/sessions/from-spoke/messages', { id: `spoke-m${i}`, role: 'user', content })).status, 201);
    assert.equal(
      (await call(hubKernel(), 'POST', '/v1/sessions', { token: alice.access_token, body: { id: 'from-hub', title: 'written on the hub' } })).status,
      201,
    );
    assert.equal(
      (
        await call(hubKernel(), 'POST', '/v1/sessions/from-hub/messages', {
          token: alice.access_token,
          body: { id: 'hub-m0', role: 'user', content: 'hello laptop' },
        })
      ).status,
      201,
    );
    const up = await waitFor(
      'the spoke’s session on the hub',
      async () => ((await hubSession('from-spoke'))?.message_count === 2 ? hubSession('from-spoke') : undefined),
      20_000,
      100,
    );
    assert.equal(up.title, 'written on the laptop');
    assert.deepEqual(
      up.messages.map((m: any) => m.content),
      ['one', 'two'],
    );
    const down = await waitFor(
      'the hub’s session on the spoke',
      async () => ((await spokeSession('from-hub'))?.message_count === 1 ? spokeSession('from-hub') : undefined),
      20_000,
      100,
    );
    assert.equal(down.messages[0].content, 'hello laptop');
  });

  it('keeps serving while the hub is unreachable, then syncs with nothing lost or duplicated, whatever the clocks say', async () => {
    const mark = spoke.output().length;
    hub.child.kill('SIGSTOP');
    try {
      // A stopped hub answers nothing: the spoke's watchdog gives up on it after pingTimeoutMs.
      await waitFor('the spoke to go offline', () => (/spoke: offline/.test(spoke.output().slice(mark)) ? true : undefined), 20_000, 100);
      // Written offline, one message with a clock a day ahead: order comes from sequences, not clocks.
      assert.equal((await onSpoke('POST', '/v1/sessions', { id: 'offline', title: 'on the train' })).status, 201);
      assert.equal(
        (await onSpoke('POST', '/v1/sessions/offline/messages', { id: 'off-m0', role: 'user', content: 'first', created_at: Date.now() + 86_400_000 })).status,
        201,
      );
      assert.equal((await onSpoke('POST', '/v1/sessions/offline/messages', { id: 'off-m1', role: 'assistant', content: 'second' })).status, 201);
      assert.equal((await onSpoke('POST', '/v1/sessions/from-spoke/messages', { id: 'spoke-m2', role: 'user', content: 'three' })).status, 201);
    } finally {
      hub.child.kill('SIGCONT');
    }
    const synced = await waitFor(
      'the offline writes on the hub',
      async () => {
        const [a, b] = [await hubSession('offline'), await hubSession('from-spoke')];
        return a?.message_count === 2 && b?.message_count === 3 ? { a, b } : undefined;
      },
      60_000,
      200,
    );
    assert.deepEqual(
      synced.a.messages.map((m: any) => m.content),
      ['first', 'second'],
    );
    assert.deepEqual(
      synced.b.messages.map((m: any) => m.content),
      ['one', 'two', 'three'],
    );
  });

  it('a restarted spoke replays nothing twice: its cursors survive and pushes are idempotent', async () => {
    const before = await (await call(hubKernel(), 'GET', '/v1/sessions', { token: alice.access_token })).json();
    const dataDir = spoke.dataDir;
    await spoke.stop(true);
    try {
      await launchSpoke(dataDir);
      // Several sync rounds pass (every 300 ms, and one on connect).
      await new Promise((r) => setTimeout(r, 2_000));
      const after = (await (await call(hubKernel(), 'GET', '/v1/sessions', { token: alice.access_token })).json()) as any;
      assert.deepEqual(
        after.sessions.map((s: any) => [s.id, s.message_count]).sort(),
        (before as any).sessions.map((s: any) => [s.id, s.message_count]).sort(),
      );
      const local = (await (await onSpoke('GET', '/v1/sessions')).json()) as any;
      assert.deepEqual(
        local.sessions.map((s: any) => [s.id, s.message_count]).sort(),
        after.sessions.map((s: any) => [s.id, s.message_count]).sort(),
        'both sides hold the same sessions',
      );
    } finally {
      if (spoke.dataDir !== dataDir) removeDir(dataDir);
    }
  });

  it('refuses sync to a device token without sessions:sync', async () => {
    const added = (await (
      await call(hubKernel(), 'POST', '/v1/hub/devices', { token: alice.access_token, body: { name: 'skills only', scopes: ['skills:expose'] } })
    ).json()) as any;
    const other = startSpoke(hub.url, added.token, SPOKE);
    try {
      await waitFor('the refusal', () => (/lacks the sessions:sync scope/.test(other.output()) ? true : undefined), 60_000, 200);
    } finally {
      await other.stop();
    }
  });
});
