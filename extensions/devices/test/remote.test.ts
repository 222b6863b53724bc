import assert from 'node:assert/strict';
import { startTestKernel, type TestKernel } from '@aion/core';
import { call, createUser, signInAdmin, type Tokens } from '@aion/ext-auth/testing';
import { PROTOCOL_VERSION } from '../src/contract.js';
import { rawDevice, startSpoke, waitFor, type SpokeProcess } from './support/helpers.js';

const PING_INTERVAL_MS = 200;
const PING_TIMEOUT_MS = 1500;

async function json(res: Response): Promise<any> {
  return res.json();
}

describe('devices: a spoke process connected to a hub', function () {
  let hub: TestKernel;
  let admin: Tokens;
  let token: string;
  let spoke: SpokeProcess;

  const device = async (name: string) =>
    ((await json(await call(hub, 'GET', '/v1/hub/devices', { token: admin.access_token }))).devices as any[]).find((d) => d.name === name);
  const execute = (path: string, args: unknown, as = admin.access_token) => call(hub, 'POST', `/v1/skills/${path}/execute`, { token: as, body: { args } });

  before(async () => {
    hub = await startTestKernel({
      builtins: ['aion.storage', 'aion.auth', 'aion.devices'],
      config: {
        server: { bodyLimit: 8 * 1024 * 1024, realtime: { messagesPerSecond: 100000, burst: 100000, refusalsBeforeDisconnect: 100 } },
        extensions: {
          'aion.devices': {
            pingIntervalMs: PING_INTERVAL_MS,
            pingTimeoutMs: PING_TIMEOUT_MS,
            maxInFlightPerDevice: 2,
            timeouts: { sandboxMs: 500, localSkillMs: 1000, remoteSkillMs: 5000, uiResponseMs: 10000 },
          },
        },
      },
    });
    admin = await signInAdmin(kernelUser());
    const added = await json(await call(hub, 'POST', '/v1/hub/devices', { token: admin.access_token, body: { name: 'Lab Laptop' } }));
    token = added.token;
    spoke = startSpoke(hub.url, token, { config: { extensions: { 'aion.devices': { pingIntervalMs: PING_INTERVAL_MS, pingTimeoutMs: PING_TIMEOUT_MS } } } });
    await waitFor('the spoke to come online', async () => (await device('lab-laptop'))?.status === 'online' || undefined, 60_000, 100).catch((err) => {
      throw new Error(`${(err as Error).message}\n${spoke.output()}`);
    });
  });
  function kernelUser() {
    return hub;
  }
  after(async () => {
    await spoke?.stop();
    await hub?.stop();
  });

  it('lists the device online with its protocol version, address and skills', async () => {
    const d = await device('lab-laptop');
    assert.equal(d.status, 'online');
    assert.equal(d.protocol_version, PROTOCOL_VERSION);
    assert.equal(d.skills_count, 4);
    assert.equal(d.address, '127.0.0.1');
    assert.ok(d.last_seen_at > Date.now() - 10_000);
  });

  it('runs a skill on the device through the hub', async () => {
    const res = await execute('lab-laptop/demo.echo', { text: 'hello' });
    assert.equal(res.status, 200, await res.clone().text());
    const body = await json(res);
    assert.equal(body.result.echoed, 'hello');
    assert.notEqual(body.result.pid, process.pid, 'it ran in another process');
    assert.equal(body.device, 'lab-laptop');
  });

  it('groups device skills by id with devices and device_count', async () => {
    const body = await json(await call(hub, 'GET', '/v1/hub/skills?q=echo', { token: admin.access_token }));
    assert.equal(body.total, 1);
    assert.equal(body.skills[0].id, 'demo.echo');
    assert.equal(body.skills[0].device_count, 1);
    assert.equal(body.skills[0].devices[0].path, 'lab-laptop/demo.echo');
  });

  it('checks the schema and scopes on the hub before anything reaches the device', async () => {
    const bad = await execute('lab-laptop/demo.echo', { text: 42 });
    assert.equal(bad.status, 400);
    assert.equal((await json(bad)).error.code, 'VALIDATION_FAILED');
    const carol = await createUser(hub, admin.access_token, 'carol', { scopes: ['skills:execute', 'devices:read'] });
    const foreign = await execute('lab-laptop/demo.echo', { text: 'x' }, carol.access_token);
    assert.equal(foreign.status, 404, 'another user’s device is not found');
    const missing = await execute('lab-laptop/demo.nothing', {});
    assert.equal(missing.status, 404);
    assert.equal((await json(missing)).error.code, 'DEVICE_NOT_FOUND');
    const offline = await execute('nowhere/demo.echo', {});
    assert.equal(offline.status, 404);
  });

  it('answers FRAME_TOO_LARGE for an answer over the frame cap, and the next call still works', async () => {
    const res = await execute('lab-laptop/demo.big', { size: 2 * 1024 * 1024 });
    assert.equal(res.status, 413, await res.clone().text());
    assert.equal((await json(res)).error.code, 'FRAME_TOO_LARGE');
    const after = await execute('lab-laptop/demo.echo', { text: 'still here' });
    assert.equal(after.status, 200);
  });

  it('bounds calls in flight to one device: the rest get 429 DEVICE_BUSY with Retry-After', async () => {
    const calls = await Promise.all(Array.from({ length: 6 }, () => execute('lab-laptop/demo.slow', { ms: 400 })));
    const statuses = calls.map((r) => r.status).sort();
    assert.deepEqual(statuses.filter((s) => s === 200).length, 2, `statuses: ${statuses}`);
    const busy = calls.filter((r) => r.status === 429);
    assert.equal(busy.length, 4);
    assert.equal(busy[0]!.headers.get('retry-after'), '1');
    assert.equal((await json(busy[0]!)).error.code, 'DEVICE_BUSY');
  });

  it('fails a call with DEVICE_TIMEOUT at its deadline', async () => {
    const started = Date.now();
    const res = await execute('lab-laptop/demo.slow', { ms: 20_000 });
    assert.equal(res.status, 504);
    assert.equal((await json(res)).error.code, 'DEVICE_TIMEOUT');
    assert.ok(Date.now() - started < 8_000);
  });

  it('fails in-flight calls with DEVICE_UNAVAILABLE within the liveness timeout when the device stops answering, then reconnects', async () => {
    const pending = execute('lab-laptop/demo.slow', { ms: 3_000 });
    await new Promise((r) => setTimeout(r, 100));
    // A stopped process keeps its TCP connection open and answers nothing: a half-open device.
    spoke.child.kill('SIGSTOP');
    const started = Date.now();
    const res = await pending;
    const waited = Date.now() - started;
    assert.equal(res.status, 503, await res.clone().text());
    assert.equal((await json(res)).error.code, 'DEVICE_UNAVAILABLE');
    assert.ok(waited <= PING_TIMEOUT_MS + 2 * PING_INTERVAL_MS + 500, `failed after ${waited} ms`);
    assert.equal((await device('lab-laptop')).status, 'offline');
    const offline = await execute('lab-laptop/demo.echo', { text: 'x' });
    assert.equal(offline.status, 503);
    assert.ok(offline.headers.get('retry-after'));
    spoke.child.kill('SIGCONT');
    await waitFor('the spoke to reconnect', async () => (await device('lab-laptop'))?.status === 'online' || undefined, 30_000, 100);
    const again = await execute('lab-laptop/demo.echo', { text: 'back' });
    assert.equal(again.status, 200);
  });

  it('refuses a spoke of another protocol version, naming both versions', async () => {
    const raw = await rawDevice(hub.url, token);
    raw.ws.send(
      JSON.stringify({ type: 'hello', protocolVersion: PROTOCOL_VERSION + 98, aionVersion: '9.9.9', device: 'lab-laptop', manifests: [], skills: [] }),
    );
    const answer = JSON.parse(await raw.next());
    assert.equal(answer.type, 'refused');
    assert.equal(answer.code, 'DEVICE_PROTOCOL_MISMATCH');
    assert.match(answer.message, new RegExp(`protocol ${PROTOCOL_VERSION + 98} \\(Aion 9\\.9\\.9\\).*protocol ${PROTOCOL_VERSION} \\(Aion`));
    await raw.closed;
    assert.equal((await device('lab-laptop')).status, 'online', 'the real spoke is untouched');
  });

  it('refuses a spoke that claims a name its token does not carry', async () => {
    const raw = await rawDevice(hub.url, token);
    raw.ws.send(JSON.stringify({ type: 'hello', protocolVersion: PROTOCOL_VERSION, aionVersion: '0.1.0', device: 'someone-else', manifests: [], skills: [] }));
    const answer = JSON.parse(await raw.next());
    assert.equal(answer.code, 'DEVICE_NAME_MISMATCH');
    await raw.closed;
  });

  it('answers malformed JSON-RPC and oversized frames with a typed error and keeps the connection', async () => {
    const added = await json(await call(hub, 'POST', '/v1/hub/devices', { token: admin.access_token, body: { name: 'hostile' } }));
    const raw = await rawDevice(hub.url, added.token);
    raw.ws.send(JSON.stringify({ type: 'hello', protocolVersion: PROTOCOL_VERSION, aionVersion: '0.1.0', device: 'hostile', manifests: [], skills: [] }));
    assert.equal(JSON.parse(await raw.next()).type, 'welcome');
    raw.ws.send('{not json');
    const notJson = JSON.parse(await nextNotice(raw));
    assert.equal(notJson.params.code, 'MALFORMED_FRAME');
    raw.ws.send(JSON.stringify({ hello: 'not json-rpc' }));
    assert.equal(JSON.parse(await nextNotice(raw)).params.code, 'MALFORMED_FRAME');
    raw.ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'x', params: { pad: 'p'.repeat(1024 * 1024 + 10) } }));
    assert.equal(JSON.parse(await nextNotice(raw)).params.code, 'FRAME_TOO_LARGE');
    // Still connected: it answers the hub's pings.
    const ping = JSON.parse(await nextMatching(raw, (f) => f.method === '$devicePing'));
    raw.ws.send(JSON.stringify({ jsonrpc: '2.0', id: ping.id, result: ping.params }));
    assert.equal((await device('hostile')).status, 'online');
    raw.ws.close();
  });

  it('drops a revoked device at once; the spoke stops instead of retrying', async () => {
    assert.equal((await call(hub, 'DELETE', '/v1/hub/devices/lab-laptop', { token: admin.access_token })).status, 204);
    const res = await execute('lab-laptop/demo.echo', { text: 'x' });
    assert.equal(res.status, 404);
    await waitFor('the spoke to report its refusal', () => (/DEVICE_TOKEN_INVALID/.test(spoke.output()) ? true : undefined), 20_000, 100);
  });
});

async function nextMatching(raw: { ws: { send(data: string): void }; next(): Promise<string> }, test: (f: any) => boolean): Promise<string> {
  for (;;) {
    const frame = await raw.next();
    const message = JSON.parse(frame);
    if (test(message)) return frame;
    // A live device answers the hub's pings while it waits for something else (the hub sends the next only then).
    if (message.method === '$devicePing') raw.ws.send(JSON.stringify({ jsonrpc: '2.0', id: message.id, result: message.params }));
  }
}

function nextNotice(raw: { ws: { send(data: string): void }; next(): Promise<string> }): Promise<string> {
  return nextMatching(raw, (f) => f.method === '$deviceError');
}
