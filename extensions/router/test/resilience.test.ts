import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestKernel } from '@aion/core';
import { startFakeOllama, type FakeOllama } from '@aion/ext-provider-ollama/testing';
import { startFakeOpenAI, type FakeOpenAI } from '@aion/ext-provider-openai/testing';
import {
  chatRequests,
  client,
  closedPort,
  OLLAMA_DIR,
  OPENAI_DIR,
  ollamaReply,
  openaiReply,
  readSse,
  startRouterKernel,
  STORAGE_DIR,
  until,
} from './helpers.js';

const user = (content: string) => [{ role: 'user', content }];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('router resilience', function () {
  describe('circuit breaker', () => {
    let openai: FakeOpenAI;
    let kernel: TestKernel;
    before(async () => {
      openai = await startFakeOpenAI({ reply: openaiReply });
      kernel = await startRouterKernel({
        extensions: [OPENAI_DIR],
        config: {
          'aion.router': {
            circuitBreaker: { failureThreshold: 2, openMs: 400 },
            defaults: { privacy: 'allow-api' },
            policies: { defaults: { allow: ['openai/gpt-4o-mini'] } },
          },
          'aion.provider-openai': { baseUrl: openai.url, apiKeySecret: '' },
        },
      });
    });
    after(async () => {
      await kernel?.stop();
      await openai?.close();
    });

    it('opens after repeated failures, refuses calls while open, probes half-open and closes again', async () => {
      const api = client(kernel);
      const run = async (input: string) => (await api.json(api.post('/v1/tasks', { input, wait: true }))).body;
      assert.equal((await run('[openai:500]')).error.code, 'PROVIDER_UNAVAILABLE');
      assert.equal((await run('[openai:503]')).error.code, 'PROVIDER_UNAVAILABLE');
      const calls = chatRequests(openai.requests).length;
      const refused = await run('fine now');
      assert.equal(refused.status, 'ERROR');
      assert.equal(refused.error.code, 'PROVIDERS_UNAVAILABLE');
      assert.match(refused.error.message, /circuit open after 2 failures/);
      assert.equal(chatRequests(openai.requests).length, calls, 'an open circuit makes no call');
      const front = await api.json(api.post('/v1/chat/completions', { model: 'openai/gpt-4o-mini', messages: user('x') }));
      assert.equal(front.status, 503);
      assert.ok(front.headers.get('retry-after'));
      await sleep(450);
      const probe = await run('fine now');
      assert.equal(probe.status, 'OK', 'the half-open probe succeeds');
      assert.equal(chatRequests(openai.requests).length, calls + 1);
      const health = await api.json(client(kernel, 'admin-token').get('/v1/router/policies'));
      assert.equal(health.body.health['openai/gpt-4o-mini'].circuit, 'closed');
      assert.equal((await run('still fine')).status, 'OK');
    });

    it('a failed probe opens it again', async () => {
      const api = client(kernel);
      const run = async (input: string) => (await api.json(api.post('/v1/tasks', { input, wait: true }))).body;
      await run('[openai:500]');
      await run('[openai:500]');
      assert.equal((await run('x')).error.code, 'PROVIDERS_UNAVAILABLE');
      await sleep(450);
      assert.equal((await run('[openai:500]')).error.code, 'PROVIDER_UNAVAILABLE', 'the probe is let through and fails');
      const after = await run('x');
      assert.equal(after.error.code, 'PROVIDERS_UNAVAILABLE', 'open again, for longer');
      await sleep(850);
      assert.equal((await run('x')).status, 'OK');
    });
  });

  describe('providers that are missing or unreachable', () => {
    it('with no provider at all, a task fails with a clear error that says how to add one', async () => {
      const kernel = await startRouterKernel();
      try {
        const api = client(kernel);
        const { body } = await api.json(api.post('/v1/tasks', { input: 'hi', wait: true }));
        assert.equal(body.status, 'ERROR');
        assert.equal(body.error.code, 'NO_PROVIDER');
        assert.match(body.error.message, /add a provider extension/);
        assert.match(body.error.message, /OPENAI_API_KEY/);
        const front = await api.json(api.post('/v1/chat/completions', { model: 'aion/auto', messages: user('hi') }));
        assert.equal(front.status, 503);
        assert.equal(front.body.error.code, 'NO_PROVIDER');
      } finally {
        await kernel.stop();
      }
    });

    it('auto-detection leaves out a provider that does not answer; a configured one is tried and fails PROVIDER_UNREACHABLE', async () => {
      const port = await closedPort();
      const kernel = await startRouterKernel({
        extensions: [OPENAI_DIR, OLLAMA_DIR],
        config: {
          'aion.router': { providers: { openai: { enabled: true } }, autoDetect: { probeTimeoutMs: 1000 } },
          'aion.provider-openai': { baseUrl: `http://127.0.0.1:${port}/v1`, apiKeySecret: '' },
          'aion.provider-ollama': { baseUrl: `http://127.0.0.1:${port}` },
        },
      });
      try {
        const api = client(kernel);
        const caps = (await api.json(api.get('/v1/capabilities'))).body;
        const ollama = caps.providers.find((p: any) => p.id === 'ollama');
        assert.equal(ollama.available, false);
        assert.equal(ollama.availability, 'unavailable');
        assert.equal(caps.providers.find((p: any) => p.id === 'openai').availability, 'configured');
        const { body } = await api.json(api.post('/v1/tasks', { input: 'hi', wait: true }));
        assert.equal(body.status, 'ERROR');
        assert.equal(body.error.code, 'PROVIDER_UNREACHABLE');
        assert.ok(body.routing.filtered.some((f: any) => f.engine.startsWith('ollama/') && f.filter === 'availability'));
        assert.deepEqual(
          body.routing.attempts.map((a: any) => a.code),
          ['PROVIDER_UNREACHABLE', 'PROVIDER_UNREACHABLE'],
        );
      } finally {
        await kernel.stop();
      }
    });
  });

  describe('zero configuration', () => {
    it('OPENAI_API_KEY makes the OpenAI provider available; without it the provider is left out and the error says what to set', async () => {
      const openai = await startFakeOpenAI({ reply: openaiReply, apiKey: 'sk-test' });
      const dir = mkdtempSync(join(tmpdir(), 'aion-router-secrets-'));
      const secretsFile = join(dir, 'secrets.json');
      writeFileSync(secretsFile, JSON.stringify({ 'aion.provider-openai': { OPENAI_API_KEY: 'sk-test' } }));
      // Only the base URL points at the fake: the key, as in production, comes from the secret.
      const start = (withKey: boolean) =>
        startRouterKernel({
          extensions: [OPENAI_DIR],
          config: { 'aion.provider-openai': { baseUrl: openai.url } },
          ...(withKey ? { configOverrides: { secretsFile } } : {}),
        });
      try {
        const withKey = await start(true);
        try {
          const api = client(withKey);
          const { body } = await api.json(api.post('/v1/tasks', { input: 'hi', wait: true }));
          assert.equal(body.status, 'OK');
          assert.equal(body.engine.provider, 'openai');
        } finally {
          await withKey.stop();
        }
        const withoutKey = await start(false);
        try {
          const api = client(withoutKey);
          const caps = (await api.json(api.get('/v1/capabilities'))).body;
          const p = caps.providers.find((x: any) => x.id === 'openai');
          assert.equal(p.available, false);
          assert.match(p.detail, /PROVIDER_AUTH_FAILED|401|key/i);
          const { body } = await api.json(api.post('/v1/tasks', { input: 'hi', wait: true }));
          assert.equal(body.error.code, 'NO_PROVIDER');
          assert.match(body.error.message, /set OPENAI_API_KEY/);
        } finally {
          await withoutKey.stop();
        }
      } finally {
        await openai.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('an Ollama answering on 127.0.0.1:11434 is used with no configuration at all', async function () {
      const ollama = await startFakeOllama({ reply: ollamaReply });
      const target = Number(new URL(ollama.url).port);
      // The fake listens on a free port; a relay on Ollama's own port stands in for a local install.
      const relay: Server = createServer((socket) => socket.pipe(connect(target, '127.0.0.1')).pipe(socket));
      const listening = await new Promise<boolean>((resolve) => {
        relay.once('error', () => resolve(false));
        relay.listen(11434, '127.0.0.1', () => resolve(true));
      });
      if (!listening) {
        await ollama.close();
        this.skip();
      }
      try {
        const kernel = await startRouterKernel({ extensions: [OLLAMA_DIR] });
        try {
          const api = client(kernel);
          const { body } = await api.json(api.post('/v1/tasks', { input: 'hi', wait: true }));
          assert.equal(body.status, 'OK');
          assert.equal(body.engine.provider, 'ollama');
          assert.equal(body.engine.route, 'local');
        } finally {
          await kernel.stop();
        }
      } finally {
        await new Promise((r) => relay.close(r));
        await ollama.close();
      }
    });
  });

  describe('live stream resume', () => {
    let ollama: FakeOllama;
    let kernel: TestKernel;
    before(async () => {
      ollama = await startFakeOllama({ reply: ollamaReply, chunkDelayMs: 40 });
      kernel = await startRouterKernel({ extensions: [OLLAMA_DIR], config: { 'aion.provider-ollama': { baseUrl: ollama.url } } });
    });
    after(async () => {
      await kernel?.stop();
      await ollama?.close();
    });

    it('a client that drops mid-stream reconnects with Last-Event-ID and gets every event once', async () => {
      const api = client(kernel);
      const { body } = await api.json(api.post('/v1/tasks', { messages: user('[ollama:long]') }));
      const first = await readSse(await api.get(`/v1/stream/${body.task_id}`), (events) => events.filter((e) => e.event === 'token').length === 3);
      const lastId = first.at(-1)!.id!;
      const task = await api.json(api.get(`/v1/tasks/${body.task_id}`));
      assert.equal(task.body.status, 'RUNNING', 'still streaming when the client reconnects');
      const rest = await readSse(await api.get(`/v1/stream/${body.task_id}`, { 'last-event-id': lastId }));
      const all = [...first, ...rest];
      assert.deepEqual(
        all.map((e) => Number(e.id)),
        all.map((_, i) => i + 1),
        'no gap, no repeat',
      );
      assert.equal(
        all
          .filter((e) => e.event === 'token')
          .map((e) => e.data.text)
          .join(''),
        Array.from({ length: 12 }, (_, i) => `t${i} `).join(''),
      );
      assert.equal(rest.at(-1)!.event, 'done');
    });
  });

  describe('policies from a file', () => {
    let dir: string;
    let ollama: FakeOllama;
    let openai: FakeOpenAI;
    let kernel: TestKernel;
    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'aion-router-policy-'));
      writeFileSync(join(dir, 'policies.json'), JSON.stringify({ version: 1 }));
      ollama = await startFakeOllama({ reply: ollamaReply });
      openai = await startFakeOpenAI({ reply: openaiReply });
      kernel = await startRouterKernel({
        extensions: [OLLAMA_DIR, OPENAI_DIR],
        config: {
          'aion.router': { policyFile: join(dir, 'policies.json') },
          'aion.provider-ollama': { baseUrl: ollama.url },
          'aion.provider-openai': { baseUrl: openai.url, apiKeySecret: '' },
        },
      });
    });
    after(async () => {
      await kernel?.stop();
      await ollama?.close();
      await openai?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('applies a changed file without a restart; a bad one is refused and the last good one stays', async () => {
      const api = client(kernel);
      const admin = client(kernel, 'admin-token');
      const run = async () => (await api.json(api.post('/v1/tasks', { input: 'hi', wait: true }))).body;
      assert.equal((await run()).engine.provider, 'ollama');
      writeFileSync(
        join(dir, 'policies.json'),
        JSON.stringify({
          defaults: { deny: ['ollama'] },
          overrides: [{ name: 'cheap', match: { intent: 'chat' }, engine: 'openai/gpt-4o-mini', reason: 'test override' }],
        }),
      );
      await until(async () => (await admin.json(admin.get('/v1/router/policies'))).body.policies.defaults?.deny?.[0] === 'ollama', 5000, 'the reload');
      const after = await run();
      assert.equal(after.engine.provider, 'openai');
      assert.equal(after.engine.chosen_by, 'policy-override');
      assert.match(after.engine.reason, /test override/);
      assert.ok(after.routing.filtered.some((f: any) => f.engine.startsWith('ollama/') && f.filter === 'policy'));
      writeFileSync(join(dir, 'policies.json'), JSON.stringify({ intents: { chat: { privacy: 'sometimes' } } }));
      const reload = await admin.json(admin.post('/v1/router/policies/reload', {}));
      assert.equal(reload.status, 422);
      assert.equal(reload.body.error.code, 'POLICY_INVALID');
      assert.match(reload.body.error.message, /intents\.chat\.privacy/);
      const state = (await admin.json(admin.get('/v1/router/policies'))).body;
      assert.equal(state.policies.defaults.deny[0], 'ollama');
      assert.match(state.last_error, /privacy/);
      assert.equal((await api.json(api.post('/v1/router/policies/reload', {}))).status, 403, 'reloading needs router:admin');
    });
  });

  describe('saturation', () => {
    let ollama: FakeOllama;
    let kernel: TestKernel;
    before(async () => {
      ollama = await startFakeOllama({ reply: ollamaReply });
      kernel = await startRouterKernel({
        extensions: [OLLAMA_DIR],
        config: {
          'aion.router': { providers: { ollama: { maxConcurrency: 1 } }, limits: { keyConcurrency: 1, retryAfterSeconds: 3 } },
          'aion.provider-ollama': { baseUrl: ollama.url },
        },
      });
    });
    after(async () => {
      await kernel?.stop();
      await ollama?.close();
    });

    it('a provider at its concurrency limit answers 503 with Retry-After; an API key over its limit 429', async () => {
      const api = client(kernel);
      const other = client(kernel, 'other-token');
      const busy = await api.json(api.post('/v1/tasks', { input: 'busy [ollama:hang]', timeout_ms: 5000 }));
      assert.equal(busy.status, 202);
      await until(() => chatRequests(ollama.requests).length > 0);
      const front = await other.json(other.post('/v1/chat/completions', { model: 'aion/auto', messages: user('x') }));
      assert.equal(front.status, 503);
      assert.equal(front.body.error.code, 'SATURATED');
      assert.equal(front.headers.get('retry-after'), '3');
      const waited = await other.json(other.post('/v1/tasks', { input: 'x', wait: true }));
      assert.equal(waited.status, 503);
      assert.equal(waited.body.error.code, 'SATURATED');
      assert.equal(waited.headers.get('retry-after'), '3');
      const overKey = await api.json(api.post('/v1/tasks', { input: 'x' }));
      assert.equal(overKey.status, 429);
      assert.equal(overKey.headers.get('retry-after'), '3');
      const overKeyFront = await api.json(api.post('/v1/chat/completions', { model: 'aion/auto', messages: user('x') }));
      assert.equal(overKeyFront.status, 429);
      await api.json(api.post(`/v1/tasks/${busy.body.task_id}/cancel`, {}));
      const free = await other.json(other.post('/v1/tasks', { input: 'x', wait: true }));
      assert.equal(free.body.status, 'OK');
    });
  });

  describe('tasks in aion.storage', () => {
    let dir: string;
    let ollama: FakeOllama;
    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'aion-router-storage-'));
      ollama = await startFakeOllama({ reply: ollamaReply });
    });
    after(async () => {
      await ollama?.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const start = () =>
      startRouterKernel({
        extensions: [STORAGE_DIR, OLLAMA_DIR],
        config: { 'aion.storage': { sqlite: { path: join(dir, 'aion.db') } }, 'aion.provider-ollama': { baseUrl: ollama.url } },
      });

    it('keeps tasks, idempotency keys and usage across a restart', async () => {
      let kernel = await start();
      let taskId: string;
      try {
        const api = client(kernel);
        assert.equal((await api.json(api.get('/v1/capabilities'))).body.features.tasks.storage, 'storage');
        const first = await api.json(api.post('/v1/tasks', { input: 'keep me', wait: true }, { 'idempotency-key': 'persist-1' }));
        assert.equal(first.body.status, 'OK');
        taskId = first.body.task_id;
        assert.equal((await api.json(api.get('/v1/usage'))).body.tasks, 1);
      } finally {
        await kernel.stop();
      }
      kernel = await start();
      try {
        const api = client(kernel);
        const stored = await api.json(api.get(`/v1/tasks/${taskId}`));
        assert.equal(stored.status, 200);
        assert.equal(stored.body.status, 'OK');
        assert.equal(stored.body.result.text, 'Hi from ollama');
        const replay = await api.json(api.post('/v1/tasks', { input: 'keep me', wait: true }, { 'idempotency-key': 'persist-1' }));
        assert.equal(replay.body.task_id, taskId);
        assert.equal(replay.headers.get('idempotent-replayed'), 'true');
        const conflict = await api.json(api.post('/v1/tasks', { input: 'other' }, { 'idempotency-key': 'persist-1' }));
        assert.equal(conflict.status, 422);
        const events = await readSse(await api.get(`/v1/stream/${taskId}`));
        assert.deepEqual(
          events.map((e) => e.event),
          ['done'],
          'a finished task from storage replays as its final event',
        );
        const usage = await api.json(api.get('/v1/usage'));
        assert.equal(usage.body.tasks, 1);
        assert.equal(usage.body.storage, 'storage');
        assert.equal(chatRequests(ollama.requests).length, 1, 'the replay ran nothing');
      } finally {
        await kernel.stop();
      }
    });
  });

  it("a streamed chat the client drops mid-answer still counts in its key's usage", async () => {
    const ollama = await startFakeOllama({ reply: ollamaReply, chunkDelayMs: 100 });
    const kernel = await startRouterKernel({ extensions: [OLLAMA_DIR], config: { 'aion.provider-ollama': { baseUrl: ollama.url } } });
    try {
      const api = client(kernel);
      const controller = new AbortController();
      const res = await kernel.request('/v1/chat/completions', {
        method: 'POST',
        headers: { authorization: 'Bearer test-token', 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'ollama/llama3.1', stream: true, messages: [{ role: 'user', content: '[ollama:long] tell me' }] }),
        signal: controller.signal,
      });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      const first = new TextDecoder().decode((await reader.read()).value);
      assert.match(first, /chat\.completion\.chunk/);
      controller.abort();
      await until(async () => (await api.json(api.get('/v1/usage'))).body.tasks === 1, 5_000);
      assert.equal((await api.json(api.get('/v1/usage'))).body.tasks, 1, 'the cut answer was recorded');
    } finally {
      await kernel.stop();
      await ollama.close();
    }
  });

  it('a waiting client may drop: the task still finishes', async () => {
    const ollama = await startFakeOllama({ reply: ollamaReply, firstByteDelayMs: 200 });
    const kernel = await startRouterKernel({ extensions: [OLLAMA_DIR], config: { 'aion.provider-ollama': { baseUrl: ollama.url } } });
    try {
      const api = client(kernel);
      const controller = new AbortController();
      const pending = kernel
        .request('/v1/tasks', {
          method: 'POST',
          headers: { authorization: 'Bearer test-token', 'content-type': 'application/json', 'idempotency-key': 'drop-1' },
          body: JSON.stringify({ input: 'x', wait: true }),
          signal: controller.signal,
        })
        .catch((e: Error) => e);
      await until(() => chatRequests(ollama.requests).length === 1);
      controller.abort();
      await pending;
      const again = await api.json(api.post('/v1/tasks', { input: 'x', wait: true }, { 'idempotency-key': 'drop-1' }));
      assert.equal(again.body.status, 'OK');
    } finally {
      await kernel.stop();
      await ollama.close();
    }
  });
});
