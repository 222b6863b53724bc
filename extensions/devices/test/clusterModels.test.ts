import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startTestKernel, type TestKernel } from '@aion/core';
import { call, createUser, probeRedis, REDIS_URL, signInAdmin, type Tokens } from '@aion/ext-auth/testing';
import { startFakeOllama, type FakeOllama } from '@aion/ext-provider-ollama/testing';
import { forEachDatabase, probePostgres, requireServer } from '@aion/ext-storage/testing';
import { startHubProcess, startSpoke, waitFor, type HubProcess, type SpokeProcess } from './support/helpers.js';

forEachDatabase(
  "devices: a device's model on another hub",
  (db) => {
    let a: TestKernel | undefined;
    let b: HubProcess | undefined;
    let spoke: SpokeProcess | undefined;
    let ollama: FakeOllama | undefined;
    let alice: Tokens;
    let bob: Tokens;
    const json = async (res: Response) => res.json() as Promise<any>;
    const deviceModels = async (token: string) =>
      ((await json(await call(a!, 'GET', '/v1/models', { token }))).data as Array<{ id: string }>).filter((m) => m.id.startsWith('devices/'));

    before(async function () {
      requireServer(this, 'PostgreSQL', await probePostgres());
      requireServer(this, 'Redis', await probeRedis());
      ollama = await startFakeOllama({ models: ['llama3.1:latest'], chunkDelayMs: 5 });
      const devices = {
        pingIntervalMs: 200,
        pingTimeoutMs: 1500,
        cluster: { redisUrl: REDIS_URL, redisPrefix: `aion-test-${randomBytes(4).toString('hex')}`, presenceTtlMs: 1000 },
      };
      const shared = { 'aion.storage': db.storageConfig(), 'aion.auth': { scryptCost: 1024, rateLimits: { enabled: false } }, 'aion.devices': devices };
      // Hub A has the router and no model of its own; hub B only holds device connections.
      a = await startTestKernel({
        builtins: ['aion.storage', 'aion.auth', 'aion.devices', 'aion.router'],
        config: { extensions: { ...shared, 'aion.router': { providers: { devices: { enabled: true } }, defaults: { privacy: 'local-only' } } } },
      });
      b = await startHubProcess({ extensions: shared });
      alice = await signInAdmin(a);
      bob = await createUser(a, alice.access_token, `bob-${randomBytes(3).toString('hex')}`, { scopes: ['tasks:write', 'tasks:read', 'models:read'] });
      const { token } = await json(
        await call(a, 'POST', '/v1/hub/devices', {
          token: alice.access_token,
          body: { name: `far-laptop-${randomBytes(3).toString('hex')}`, scopes: ['models:expose'] },
        }),
      );
      spoke = startSpoke(b.url, token, {
        builtins: 'aion.storage,aion.skills,aion.devices,aion.router,aion.provider-ollama',
        extensionDirs: [],
        config: {
          extensions: {
            'aion.devices': { pingIntervalMs: 200, pingTimeoutMs: 1500, expose: { models: ['ollama'] } },
            'aion.router': { providers: { ollama: { enabled: true } } },
            'aion.provider-ollama': { baseUrl: ollama.url, timeoutMs: 10_000 },
          },
        },
      });
      await waitFor('hub A to list the model of the device on hub B', async () => (await deviceModels(alice.access_token)).length > 0, 60_000, 100).catch(
        (err) => {
          throw new Error(`${(err as Error).message}\n--- spoke\n${spoke?.output()}\n--- hub B\n${b?.output()}`);
        },
      );
    });
    after(async () => {
      await spoke?.stop();
      await b?.stop();
      await a?.stop();
      await ollama?.close();
    });

    it("routes the owner's local-only task at hub A to the device's model through hub B, streamed back", async () => {
      const [model] = await deviceModels(alice.access_token);
      assert.match(model!.id, /^devices\/far-laptop-[0-9a-f]+\/llama3\.1:latest$/);
      const res = await call(a!, 'POST', '/v1/tasks', {
        token: alice.access_token,
        body: { intent: 'chat', messages: [{ role: 'user', content: 'hello from A' }], wait: true, privacy: 'local-only' },
      });
      const done = await json(res);
      assert.equal(done.status, 'OK', JSON.stringify(done));
      assert.equal(done.engine.provider, 'devices');
      assert.equal(done.result.text, 'Hello from the fake.');
      assert.equal(
        ollama!.requests
          .filter((r) => r.path === '/api/chat')
          .at(-1)!
          .body.messages.at(-1).content,
        'hello from A',
      );

      const streamed = await call(a!, 'POST', '/v1/chat/completions', {
        token: alice.access_token,
        body: { model: model!.id, stream: true, messages: [{ role: 'user', content: 'hi' }] },
      });
      assert.equal(streamed.status, 200, await streamed.clone().text());
      const text = await streamed.text();
      const content = text
        .split('\n')
        .filter((l) => l.startsWith('data: {'))
        .map((l) => JSON.parse(l.slice(6)).choices?.[0]?.delta?.content ?? '')
        .join('');
      assert.equal(content, 'Hello from the fake.');
      assert.match(text, /data: \[DONE\]/);
    });

    it('offers it to nobody else on hub A', async () => {
      assert.deepEqual(await deviceModels(bob.access_token), []);
      const body = await json(
        await call(a!, 'POST', '/v1/tasks', {
          token: bob.access_token,
          body: { intent: 'chat', messages: [{ role: 'user', content: 'hi' }], wait: true, privacy: 'local-only' },
        }),
      );
      assert.notEqual(body.status, 'OK', JSON.stringify(body));
      assert.doesNotMatch(JSON.stringify(body), /far-laptop/);
    });
  },
  { only: ['postgres'] },
);
