import assert from 'node:assert/strict';
import { AionError, CancellationTokenSource, isAionError } from '@aion/extension-api';
import { DeviceLink, LinkHandlers, type LinkViolation } from '../src/deviceLink.js';
import { DeviceProtocol } from '../src/contract.js';
import { ChatStream } from '../src/hub.js';

/** A link whose frames out are collected, as the hub's socket would send them; `handlers` as a hub shares them. */
function link(maxFrameBytes = 1024, handlers = new LinkHandlers()) {
  const sent: any[] = [];
  const violations: LinkViolation[] = [];
  const peer = { send: (frame: string) => void sent.push(JSON.parse(frame)), violation: (v: LinkViolation) => void violations.push(v) };
  const l = new DeviceLink(peer, maxFrameBytes, handlers);
  return { l, sent, violations, peer };
}

describe("devices: the hub's JSON-RPC link to one device", () => {
  it('answers a request with its result, and an error with its stable code as an AionError', async () => {
    const { l, sent } = link();
    const ok = l.sendRequest(DeviceProtocol.ping, { sentAt: 1 });
    const failing = l.sendRequest(DeviceProtocol.executeSkill, { skill: 's', args: {} } as never);
    assert.deepEqual(
      sent.map((m) => [m.id, m.method]),
      [
        [1, '$devicePing'],
        [2, '$deviceExecuteSkill'],
      ],
    );
    l.receive(JSON.stringify({ jsonrpc: '2.0', id: 2, error: { code: -32050, message: 'no such skill', data: { code: 'DEVICE_NOT_FOUND', status: 404 } } }));
    l.receive(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { sentAt: 1 } }));
    assert.deepEqual(await ok, { sentAt: 1 });
    await assert.rejects(failing, (err: unknown) => isAionError(err) && err.code === 'DEVICE_NOT_FOUND' && err.status === 404);
  });

  it("tells the device when the hub gives up on a call, and still takes the device's answer", async () => {
    const { l, sent } = link();
    const cancel = new CancellationTokenSource();
    const pending = l.sendRequest(DeviceProtocol.ping, { sentAt: 1 }, cancel.token);
    cancel.cancel();
    assert.deepEqual(sent[1], { jsonrpc: '2.0', method: '$/cancelRequest', params: { id: 1 } });
    l.receive(JSON.stringify({ jsonrpc: '2.0', id: 1, error: { code: -32800, message: 'cancelled' } }));
    await assert.rejects(pending, (err: unknown) => isAionError(err) && err.code === 'CANCELLED');
  });

  it("answers the device's requests: a handler's AionError with its code, an unknown method with -32601", async () => {
    let askedBy: unknown;
    const handlers = new LinkHandlers().onRequest(DeviceProtocol.syncSessions, (_params, peer) => {
      askedBy = peer;
      throw new AionError('FORBIDDEN', 'no sessions:sync scope');
    });
    const { l, sent, peer } = link(1024, handlers);
    l.receive(JSON.stringify({ jsonrpc: '2.0', id: 'a', method: '$deviceSyncSessions', params: {} }));
    l.receive(JSON.stringify({ jsonrpc: '2.0', id: 'b', method: '$deviceNoSuchThing', params: {} }));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(sent.find((m) => m.id === 'a').error, {
      code: -32050,
      message: 'no sessions:sync scope',
      data: { code: 'FORBIDDEN' },
    });
    assert.equal(sent.find((m) => m.id === 'b').error.code, -32601);
    assert.equal(askedBy, peer, 'a shared handler hears which link asked');
  });

  it('refuses oversized and malformed frames without closing, and an oversized request or answer never leaves', async () => {
    const { l, sent, violations } = link(
      200,
      new LinkHandlers().onRequest(DeviceProtocol.syncSessions, () => ({ big: 'z'.repeat(300) }) as never),
    );
    l.receive('x'.repeat(201));
    l.receive('{not json');
    l.receive(JSON.stringify({ hello: 'not json-rpc' }));
    assert.deepEqual(
      violations.map((v) => v.code),
      ['FRAME_TOO_LARGE', 'MALFORMED_FRAME', 'MALFORMED_FRAME'],
    );
    await assert.rejects(l.sendRequest(DeviceProtocol.ping, { sentAt: 'y'.repeat(300) as never }), /FRAME_TOO_LARGE|exceeds/);
    l.receive(JSON.stringify({ jsonrpc: '2.0', id: 7, method: '$deviceSyncSessions', params: {} }));
    await new Promise((r) => setImmediate(r));
    assert.equal(sent.find((m) => m.id === 7).error.data.code, 'FRAME_TOO_LARGE');
    assert.ok(!l.isClosed);
  });

  it('fails every pending call with the reason the link closed, and sends nothing after', async () => {
    const { l, sent } = link();
    const pending = l.sendRequest(DeviceProtocol.ping, { sentAt: 1 });
    l.close(new AionError('DEVICE_UNAVAILABLE', 'device lab disconnected'));
    await assert.rejects(pending, (err: unknown) => isAionError(err) && err.code === 'DEVICE_UNAVAILABLE');
    await assert.rejects(l.sendRequest(DeviceProtocol.ping, { sentAt: 2 }), /disconnected/);
    l.sendNotification(DeviceProtocol.skillsChanged, { skills: [] });
    assert.equal(sent.length, 1);
  });
});

describe("devices: a device model's answer on the hub", () => {
  it('queues no more events than the credit it granted; one more ends the answer', async () => {
    let overruns = 0;
    const chat = new ChatStream(2, () => overruns++);
    chat.push({ type: 'token', text: 'a' });
    chat.push({ type: 'token', text: 'b' });
    assert.equal(overruns, 0);
    chat.grant(1);
    chat.push({ type: 'token', text: 'c' });
    assert.equal(overruns, 0, 'a grant makes room for one more');
    chat.push({ type: 'token', text: 'd' });
    assert.equal(overruns, 1, 'past the window: the device ignored the backpressure');
    chat.events.end();
    const queued: unknown[] = [];
    for await (const e of chat.events) queued.push(e);
    assert.deepEqual(
      queued.map((e: any) => e.text),
      ['a', 'b', 'c'],
      'the event past the window was not queued',
    );
  });
});
