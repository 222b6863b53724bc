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

describe("@aion/client: a device model's answer under the hub's credit", () => {
  it('sends no more events than the hub granted, and goes on as it grants more', async () => {
    // A hand-made hub: welcomes the device, asks for a chat with a window of 2 events, then grants 2 at a time.
    const { WebSocketServer } = await import('ws');
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => server.once('listening', r));
    const events: unknown[] = [];
    const answers: Array<{ id: number }> = [];
    const order: string[] = [];
    const answerIndexOf = (id: number) => order.indexOf(`answer ${id}`);
    const lastEventIndexOf = (stream: string) => order.lastIndexOf(`event ${stream}`);
    let hubSocket!: WebSocket;
    const connected = new Promise<void>((resolve) =>
      server.on('connection', (ws) => {
        hubSocket = ws as unknown as WebSocket;
        ws.on('message', (data) => {
          const message = JSON.parse(String(data));
          if (message.type === 'hello') {
            ws.send(
              JSON.stringify({
                type: 'welcome',
                protocolVersion: message.protocolVersion,
                aionVersion: '0.1.0',
                device: 'pc',
                pingIntervalMs: 60_000,
                pingTimeoutMs: 120_000,
              }),
            );
            resolve();
          } else if (message.method === '$deviceChatEvent') {
            events.push(message.params.event);
            order.push(`event ${message.params.stream}`);
          } else if (message.id !== undefined && message.method === undefined) {
            answers.push(message);
            order.push(`answer ${message.id}`);
          }
        });
      }),
    );
    let produced = 0;
    const { DeviceConnection } = await import('../src/index.js');
    const device = new DeviceConnection({
      hubUrls: [`http://127.0.0.1:${(server.address() as { port: number }).port}`],
      token: 'x.y.z',
      device: 'pc',
      skills: () => [],
      execute: async () => ({ result: null }),
      models: () => [{ id: 'm' }],
      chat: async (call, emit) => {
        if (call.stream === 's2') {
          // Fire and forget: it never awaits emit.
          for (let i = 0; i < 5; i++) void emit({ type: 'token', text: String(i) });
          void emit({ type: 'done', finishReason: 'stop' });
          return;
        }
        for (let i = 0; i < 5; i++) {
          produced++;
          await emit({ type: 'token', text: String(i) });
        }
        await emit({ type: 'done', finishReason: 'stop' });
      },
      createSocket: (url, headers) => new WebSocket(url, { headers }),
    });
    device.start();
    try {
      await connected;
      const chat = {
        model: 'm',
        request: {},
        caller: { sub: 'u', type: 'user', tenant_id: 'default', owner: 'u', scopes: [] },
        correlationId: 'c',
        deadline: Date.now() + 60_000,
        stream: 's1',
        credit: 2,
      };
      hubSocket.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: '$deviceChat', params: chat }));
      const settle = () => new Promise((r) => setTimeout(r, 200));
      await settle();
      assert.equal(events.length, 2, 'two events, then it waits');
      assert.equal(produced, 3, 'the producer waits on the emit of the event that found no credit');
      hubSocket.send(JSON.stringify({ jsonrpc: '2.0', method: '$deviceChatCredit', params: { stream: 's1', credit: 2 } }));
      await settle();
      assert.equal(events.length, 4);
      hubSocket.send(JSON.stringify({ jsonrpc: '2.0', method: '$deviceChatCredit', params: { stream: 'another', credit: 10 } }));
      await settle();
      assert.equal(events.length, 4, 'a grant for another stream changes nothing');
      hubSocket.send(JSON.stringify({ jsonrpc: '2.0', method: '$deviceChatCredit', params: { stream: 's1', credit: 10 } }));
      await settle();
      assert.deepEqual(events.at(-1), { type: 'done', finishReason: 'stop' });
      assert.equal(events.length, 6);
      // A producer that does not await emit still stays within the window: the device holds its events.
      events.length = 0;
      hubSocket.send(JSON.stringify({ jsonrpc: '2.0', id: 2, method: '$deviceChat', params: { ...chat, stream: 's2', credit: 2 } }));
      await settle();
      assert.equal(events.length, 2);
      hubSocket.send(JSON.stringify({ jsonrpc: '2.0', method: '$deviceChatCredit', params: { stream: 's2', credit: 100 } }));
      await settle();
      assert.equal(events.length, 6);
      assert.ok(answers.findIndex((a) => a.id === 2) >= 0, 'the answer came');
      assert.ok(answerIndexOf(2) > lastEventIndexOf('s2'), 'after every event of its stream');
    } finally {
      device.stop();
      server.close();
    }
  });
});
