import assert from 'node:assert/strict';
import { startTestKernel, type TestKernel } from '@aion/core';
import { call, createUser, signInAdmin, type Tokens } from '@aion/ext-auth/testing';
import { startFakeOllama, type FakeOllama } from '@aion/ext-provider-ollama/testing';
import { PROTOCOL_VERSION } from '../src/contract.js';
import { CHAT_CREDIT } from '../src/deviceModels.js';
import { rawDevice, startSpoke, waitFor, type SpokeProcess } from './support/helpers.js';

const LONG = Array.from({ length: 3 * CHAT_CREDIT }, (_, i) => `w${i} `);
const SPOKE_BUILTINS = 'aion.storage,aion.skills,aion.devices,aion.router,aion.provider-ollama';

/** The spoke's own kernel: a router and Ollama (a fake one, speaking Ollama's wire format), offering its models. */
function spokeConfig(ollama: FakeOllama, models: string[] = ['ollama']) {
  return {
    extensions: {
      'aion.devices': { pingIntervalMs: 200, pingTimeoutMs: 1500, expose: { models } },
      'aion.router': { providers: { ollama: { enabled: true } } },
      'aion.provider-ollama': { baseUrl: ollama.url, timeoutMs: 10_000 },
    },
  };
}

describe("devices: a spoke's models as a provider with residency device:<name>", function () {
  this.timeout(120_000);
  let hub: TestKernel;
  let ollama: FakeOllama;
  let alice: Tokens;
  let bob: Tokens & { id: string };
  let spoke: SpokeProcess | undefined;
  const json = async (res: Response) => res.json() as Promise<any>;
  const task = (token: string, body: Record<string, unknown>) =>
    call(hub, 'POST', '/v1/tasks', { token, body: { intent: 'chat', messages: [{ role: 'user', content: 'hello there' }], wait: true, ...body } });
  const deviceModels = async (token: string) =>
    ((await json(await call(hub, 'GET', '/v1/models', { token }))).data as Array<{ id: string; aion?: { residency?: unknown } }>).filter((m) =>
      m.id.startsWith('devices/'),
    );

  before(async () => {
    ollama = await startFakeOllama({
      models: ['llama3.1:latest'],
      chunkDelayMs: 5,
      // `[long]`: an answer of more events than the hub's credit window, so the spoke must wait for grants.
      reply: (request) =>
        JSON.stringify(request.body ?? {}).includes('[long]') ? { kind: 'answer', text: LONG } : { kind: 'answer', text: ['Hello', ' from', ' the', ' fake.'] },
    });
    // The hub has no model of its own: a local-only task can only run on a user's device.
    hub = await startTestKernel({
      builtins: ['aion.storage', 'aion.auth', 'aion.devices', 'aion.router'],
      config: {
        extensions: {
          'aion.router': { providers: { devices: { enabled: true } }, defaults: { privacy: 'local-only' } },
          'aion.devices': { pingIntervalMs: 200, pingTimeoutMs: 1500 },
        },
      },
    });
    alice = await signInAdmin(hub);
    bob = await createUser(hub, alice.access_token, 'bob', { scopes: ['tasks:write', 'tasks:read', 'models:read'] });
    const { token } = await json(
      await call(hub, 'POST', '/v1/hub/devices', { token: alice.access_token, body: { name: 'Lab Laptop', scopes: ['skills:expose', 'models:expose'] } }),
    );
    spoke = startSpoke(hub.url, token, { builtins: SPOKE_BUILTINS, extensionDirs: [], config: spokeConfig(ollama) });
    await waitFor('the device model in the catalog', async () => (await deviceModels(alice.access_token)).length > 0, 60_000, 100).catch((err) => {
      throw new Error(`${(err as Error).message}\n${spoke?.output()}`);
    });
  });
  after(async () => {
    await spoke?.stop();
    await hub?.stop();
    await ollama?.close();
  });

  it("lists the device's model to its owner, resident on the device", async () => {
    const [model] = await deviceModels(alice.access_token);
    assert.equal(model!.id, 'devices/lab-laptop/llama3.1:latest');
    assert.deepEqual(model!.aion!.residency, { scope: 'device', device: 'lab-laptop' });
  });

  it("routes the owner's local-only task to the device, streamed through the hub from the spoke's Ollama", async () => {
    const before = ollama.requests.length;
    const res = await task(alice.access_token, { privacy: 'local-only' });
    assert.equal(res.status, 200, await res.clone().text());
    const done = await json(res);
    assert.equal(done.status, 'OK', JSON.stringify(done));
    assert.deepEqual([done.engine.provider, done.engine.model], ['devices', 'lab-laptop/llama3.1:latest']);
    assert.equal(done.result.text, 'Hello from the fake.');
    const sent = ollama.requests.slice(before).filter((r) => r.path === '/api/chat');
    assert.equal(sent.length, 1, 'the spoke called its own Ollama once');
    assert.equal(sent[0]!.body.model, 'llama3.1:latest');
    assert.equal(sent[0]!.body.messages.at(-1).content, 'hello there');
  });

  it("streams an answer longer than the hub's credit window: the spoke waits for each grant and nothing is lost", async () => {
    const res = await call(hub, 'POST', '/v1/tasks', {
      token: alice.access_token,
      body: { intent: 'chat', messages: [{ role: 'user', content: '[long] please' }], wait: true, privacy: 'local-only' },
    });
    const done = await json(res);
    assert.equal(done.status, 'OK', JSON.stringify(done.error) + spoke!.output().slice(-3000));
    assert.equal(done.result.text, LONG.join(''));
  });

  it("never offers another user's device: not listed, not routed, not reachable by name", async () => {
    assert.deepEqual(await deviceModels(bob.access_token), []);
    const res = await task(bob.access_token, { privacy: 'local-only' });
    const body = await json(res);
    assert.notEqual(body.status, 'OK', JSON.stringify(body));
    assert.doesNotMatch(JSON.stringify(body), /lab-laptop/, "the answer does not even name alice's device");
    const named = await call(hub, 'POST', '/v1/chat/completions', {
      token: bob.access_token,
      body: { model: 'devices/lab-laptop/llama3.1:latest', messages: [{ role: 'user', content: 'hi' }] },
    });
    assert.equal(named.status, 404, await named.clone().text());
    assert.match((await json(named)).error.message, /serves none/, "the 404 lists none of alice's models");
  });

  it('answers an OpenAI client of the hub with the device model, streamed', async () => {
    const res = await call(hub, 'POST', '/v1/chat/completions', {
      token: alice.access_token,
      body: { model: 'devices/lab-laptop/llama3.1:latest', stream: true, messages: [{ role: 'user', content: 'hi' }] },
    });
    assert.equal(res.status, 200, await res.clone().text());
    const text = await res.text();
    const tokens = text
      .split('\n')
      .filter((l) => l.startsWith('data: {'))
      .map((l) => JSON.parse(l.slice(6)).choices?.[0]?.delta?.content ?? '')
      .join('');
    assert.equal(tokens, 'Hello from the fake.');
  });

  it('refuses a device that offers models without models:expose on its token', async () => {
    const { token } = await json(
      await call(hub, 'POST', '/v1/hub/devices', { token: alice.access_token, body: { name: 'No Models', scopes: ['skills:expose'] } }),
    );
    const device = await rawDevice(hub.url, token);
    device.ws.send(
      JSON.stringify({
        type: 'hello',
        protocolVersion: PROTOCOL_VERSION,
        aionVersion: '0.1.0',
        device: 'no-models',
        manifests: [],
        skills: [],
        models: [{ id: 'sneaky' }],
      }),
    );
    const answer = JSON.parse(await device.next());
    assert.equal(answer.type, 'refused');
    assert.equal(answer.code, 'FORBIDDEN');
    assert.match(answer.message, /models:expose/);
    await device.closed;
  });

  it('fails a task cut by the device leaving, and drops its models; the task then finds no engine', async () => {
    const slow = await startFakeOllama({ models: ['llama3.1:latest'], replies: [{ kind: 'stall', text: ['Hel'] }] });
    await spoke!.stop();
    const { token } = await json(
      await call(hub, 'POST', '/v1/hub/devices', { token: alice.access_token, body: { name: 'Slow Laptop', scopes: ['skills:expose', 'models:expose'] } }),
    );
    spoke = startSpoke(hub.url, token, { builtins: SPOKE_BUILTINS, extensionDirs: [], config: spokeConfig(slow) });
    try {
      await waitFor(
        'the slow device model',
        async () => (await deviceModels(alice.access_token)).some((m) => m.id.startsWith('devices/slow-laptop/')),
        60_000,
        100,
      );
      const pending = task(alice.access_token, { privacy: 'local-only' });
      await waitFor('the spoke to call its Ollama', () => slow.requests.some((r) => r.path === '/api/chat'), 30_000);
      spoke.child.kill('SIGKILL');
      const res = await pending;
      const body = await json(res);
      assert.notEqual(body.status, 'OK', JSON.stringify(body));
      assert.match(JSON.stringify(body.error), /slow-laptop/);
      await waitFor('the models to leave the catalog', async () => (await deviceModels(alice.access_token)).length === 0, 30_000, 100);
      const after = await json(await task(alice.access_token, { privacy: 'local-only' }));
      assert.notEqual(after.status, 'OK');
      assert.doesNotMatch(JSON.stringify(after), /slow-laptop/);
    } finally {
      await slow.close();
    }
  });

  it("checks every event a device sends: a hostile device's malformed token fails the task, another call's stream id is ignored", async () => {
    const { token } = await json(await call(hub, 'POST', '/v1/hub/devices', { token: alice.access_token, body: { name: 'Rogue', scopes: ['models:expose'] } }));
    const device = await rawDevice(hub.url, token);
    device.ws.send(
      JSON.stringify({
        type: 'hello',
        protocolVersion: PROTOCOL_VERSION,
        aionVersion: '0.1.0',
        device: 'rogue',
        manifests: [],
        skills: [],
        models: [{ id: 'evil', capabilities: { chat: 1 } }],
      }),
    );
    assert.equal(JSON.parse(await device.next()).type, 'welcome');
    await waitFor('the rogue model', async () => (await deviceModels(alice.access_token)).some((m) => m.id === 'devices/rogue/evil'), 30_000, 100);
    const pending = task(alice.access_token, { privacy: 'local-only', preferred_engine: 'devices/rogue/evil' });
    const seen: any[] = [];
    const nextMessage = async (method: string) => {
      for (;;) {
        const message = JSON.parse(await device.next());
        seen.push(message);
        if (message.method === '$devicePing') device.ws.send(JSON.stringify({ jsonrpc: '2.0', id: message.id, result: message.params }));
        else if (message.method === method) return message;
      }
    };
    const chat = await nextMessage('$deviceChat');
    assert.equal(chat.params.model, 'evil');
    assert.equal(chat.params.caller.owner, chat.params.caller.sub, 'the chat runs for the device owner');
    const notify = (stream: string, event: unknown) =>
      device.ws.send(JSON.stringify({ jsonrpc: '2.0', method: '$deviceChatEvent', params: { stream, event } }));
    notify('not-a-stream-of-this-hub', { type: 'token', text: 'forged' });
    notify(chat.params.stream, { type: 'token', text: 42 });
    const done = await json(await pending);
    assert.notEqual(done.status, 'OK');
    assert.equal(done.error.code, 'PROVIDER_BAD_RESPONSE', JSON.stringify(done.error));
    assert.match(done.error.message, /rogue sent a token without text/);
    assert.doesNotMatch(JSON.stringify(done), /forged/);
    // The hub tells the device at once to stop the answer it no longer reads (not when an idle timer fires).
    const cancelled = await Promise.race([
      nextMessage('$/cancelRequest'),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no $/cancelRequest within 5 s')), 5_000)),
    ]);
    assert.equal(cancelled.params.id, chat.id);
    device.ws.close();
  });
});
