import assert from 'node:assert/strict';
import type { TestKernel } from '@aion/core';
import { startFakeOllama, type FakeOllama } from '@aion/ext-provider-ollama/testing';
import { startFakeOpenAI, type FakeOpenAI } from '@aion/ext-provider-openai/testing';
import OpenAI from 'openai';
import WebSocket from 'ws';
import { chatRequests, client, HOOKS_FIXTURE, OLLAMA_DIR, OPENAI_DIR, ollamaReply, openaiReply, readSse, startRouterKernel, until, within } from './helpers.js';

const user = (content: string) => [{ role: 'user', content }];

describe('router over a real kernel, with fake OpenAI and Ollama servers', function () {
  let openai: FakeOpenAI;
  let ollama: FakeOllama;
  let kernel: TestKernel;
  let api: ReturnType<typeof client>;

  before(async () => {
    openai = await startFakeOpenAI({ reply: openaiReply });
    ollama = await startFakeOllama({ reply: ollamaReply });
    kernel = await startRouterKernel({
      extensions: [OPENAI_DIR, OLLAMA_DIR, HOOKS_FIXTURE],
      config: {
        'aion.router': {
          circuitBreaker: { failureThreshold: 1000 },
          policies: { intents: { 'openai-only': { allow: ['openai/gpt-4o-mini'] }, 'ollama-only': { allow: ['ollama/*'] } } },
        },
        'aion.provider-openai': { baseUrl: openai.url, apiKeySecret: '', timeoutMs: 1000 },
        'aion.provider-ollama': { baseUrl: ollama.url, timeoutMs: 5000 },
      },
    });
    api = client(kernel);
  });
  after(async () => {
    await kernel?.stop();
    await openai?.close();
    await ollama?.close();
  });

  const task = async (body: Record<string, unknown>, token?: string) => {
    const res = await client(kernel, token).json(client(kernel, token).post('/v1/tasks', { wait: true, ...body }));
    return res;
  };

  describe('tasks', () => {
    it('answers with the canonical result and explains the route', async () => {
      const { status, body, headers } = await task({ intent: 'chat', messages: user('hello') });
      assert.equal(status, 200);
      assert.equal(body.schema_version, '1.0');
      assert.match(body.task_id, /^task_/);
      assert.equal(body.intent, 'chat');
      assert.equal(body.status, 'OK');
      assert.equal(body.engine.route, 'local', 'hybrid by default: local first');
      assert.equal(body.engine.chosen_by, 'ai-router');
      assert.match(body.engine.reason, /best score/);
      assert.deepEqual(body.result, { text: 'Hi from ollama', tool_calls: [], finish_reason: 'stop' });
      assert.deepEqual(body.usage.tokens, { input: 8, output: 3, total: 11 });
      assert.equal(body.usage.cost_usd, 0);
      assert.ok(body.usage.latency_ms > 0);
      assert.equal(body.error, null);
      assert.match(headers.get('x-aion-route')!, /candidates=ollama\/llama3\.1:latest\(/);
      const again = await api.json(api.get(`/v1/tasks/${body.task_id}`));
      assert.equal(again.status, 200);
      assert.deepEqual(again.body.result, body.result);
    });

    it('runs asynchronously: 202 with task_id, then the result', async () => {
      const { status, body, headers } = await api.json(api.post('/v1/tasks', { intent: 'summarize', params: { text: 'A long story.' } }));
      assert.equal(status, 202);
      assert.ok(['QUEUED', 'RUNNING'].includes(body.status));
      assert.equal(headers.get('location'), `/v1/tasks/${body.task_id}`);
      let final: any;
      await until(async () => (final = (await api.json(api.get(`/v1/tasks/${body.task_id}`))).body).status === 'OK');
      assert.equal(final.result.text, 'Hi from ollama');
      const sent = chatRequests(ollama.requests).at(-1)!.body.messages;
      assert.match(sent[0].content, /Summarize/);
      assert.equal(sent[1].content, 'A long story.');
    });

    it('refuses bad bodies, names the field, and keeps tasks private to their owner', async () => {
      const bad = await api.json(api.post('/v1/tasks', { intent: 'chat', privacy: 'nowhere', input: 'x' }));
      assert.equal(bad.status, 400);
      assert.match(bad.body.error.message, /privacy must be equal to one of the allowed values/);
      const { body } = await task({ input: 'mine' });
      assert.equal((await api.json(client(kernel, 'other-token').get(`/v1/tasks/${body.task_id}`))).status, 404);
      assert.equal((await api.json(client(kernel, 'admin-token').get(`/v1/tasks/${body.task_id}`))).status, 200);
      const forbidden = await api.json(client(kernel, 'reader-token').post('/v1/tasks', { input: 'x' }));
      assert.equal(forbidden.status, 403);
      assert.deepEqual(forbidden.body.error.details.missingScopes, ['tasks:write']);
    });
  });

  describe('residency', () => {
    it('local-only never reaches an api provider, not even as a fallback', async () => {
      const before = chatRequests(openai.requests).length;
      const { body } = await task({ messages: user('secret [ollama:503]'), privacy: 'local-only' });
      assert.equal(body.status, 'ERROR');
      assert.equal(body.error.code, 'PROVIDER_UNAVAILABLE');
      assert.deepEqual(
        body.routing.attempts.map((a: any) => a.engine),
        ['ollama/llama3.1:latest'],
      );
      assert.ok(body.routing.filtered.some((f: any) => f.engine === 'openai/gpt-4o-mini' && f.filter === 'residency'));
      assert.equal(chatRequests(openai.requests).length, before, 'the api provider received nothing');
    });

    it('aion/local on the front door and a hook that pushes an api engine cannot break it either', async () => {
      const before = chatRequests(openai.requests).length;
      const res = await api.json(api.post('/v1/chat/completions', { model: 'aion/local', messages: user('secret [ollama:500]') }));
      assert.equal(res.status, 503);
      assert.equal(res.body.error.code, 'PROVIDER_UNAVAILABLE');
      const hooked = await task({ messages: user('secret [ollama:500]'), privacy: 'local-only', metadata: { hook: 'add-api' } });
      assert.equal(hooked.body.status, 'ERROR');
      assert.ok(hooked.body.routing.attempts.every((a: any) => a.engine.startsWith('ollama/')));
      assert.equal(chatRequests(openai.requests).length, before);
    });
  });

  describe('fallback', () => {
    it('hybrid: a failing local engine escalates to the cloud, and says so', async () => {
      const { body, headers } = await task({ messages: user('hi [ollama:503]') });
      assert.equal(body.status, 'OK');
      assert.equal(body.engine.route, 'api');
      assert.equal(body.engine.provider, 'openai');
      assert.match(body.engine.reason, /fell back after ollama\/llama3\.1:latest PROVIDER_UNAVAILABLE/);
      assert.equal(body.result.text, 'Hello from openai');
      assert.deepEqual(
        body.routing.attempts.map((a: any) => [a.engine, a.outcome]),
        [
          ['ollama/llama3.1:latest', 'failed'],
          ['openai/gpt-4o-mini', 'ok'],
        ],
      );
      assert.match(headers.get('x-aion-route')!, /attempts=ollama\/llama3\.1:latest\(PROVIDER_UNAVAILABLE\),openai\/gpt-4o-mini\(ok\)/);
    });

    it('goes down the ordered list: the preferred engine, then local, then other cloud engines', async () => {
      const { body } = await task({ messages: user('x [openai:500] [ollama:500]'), privacy: 'allow-api', preferred_engine: 'openai/gpt-4o-mini' });
      assert.equal(body.status, 'ERROR');
      assert.equal(body.engine.chosen_by, 'preferred');
      assert.deepEqual(
        body.routing.attempts.map((a: any) => a.engine),
        ['openai/gpt-4o-mini', 'ollama/llama3.1:latest', 'openai/gpt-4o'],
      );
      assert.match(body.error.message, /all 3 engines tried failed/);
    });

    const modes: Array<[marker: string, code: string, fallsBack: boolean]> = [
      ['429', 'PROVIDER_RATE_LIMITED', true],
      ['500', 'PROVIDER_UNAVAILABLE', true],
      ['503', 'PROVIDER_UNAVAILABLE', true],
      ['hang', 'PROVIDER_TIMEOUT', true],
      ['cut', 'PROVIDER_STREAM_CUT', true],
      ['malformed', 'PROVIDER_BAD_RESPONSE', true],
      ['401', 'PROVIDER_AUTH_FAILED', true],
      ['404', 'PROVIDER_BAD_REQUEST', true],
      ['400', 'PROVIDER_BAD_REQUEST', false],
      ['cut-after', 'PROVIDER_STREAM_CUT', false],
    ];
    for (const [m, code, fallsBack] of modes) {
      it(`${m}: ${code}, ${fallsBack ? 'falls back to the next engine' : 'ends the task (no silent fallback)'}`, async () => {
        const before = chatRequests(ollama.requests).length;
        const { body } = await task({ messages: user(`go [openai:${m}]`), privacy: 'allow-api', preferred_engine: 'openai/gpt-4o-mini' });
        assert.equal(body.routing.attempts[0].engine, 'openai/gpt-4o-mini');
        assert.equal(body.routing.attempts[0].code, code);
        if (fallsBack) {
          assert.equal(body.status, 'OK');
          assert.equal(body.engine.provider, 'ollama');
          assert.equal(chatRequests(ollama.requests).length, before + 1);
        } else {
          assert.equal(body.status, 'ERROR');
          assert.equal(body.error.code, code);
          assert.equal(chatRequests(ollama.requests).length, before, 'no fallback');
          if (m === 'cut-after') assert.equal(body.result.text, 'Hello', 'the partial answer is kept');
        }
      });
    }

    it('with nowhere to fall back, each failure reaches the front door with its HTTP status', async () => {
      const oa = new OpenAI({ baseURL: `${kernel.url}/v1`, apiKey: 'test-token', maxRetries: 0, defaultHeaders: { 'x-aion-intent': 'openai-only' } });
      const expect: Array<[string, number, string]> = [
        ['429', 429, 'PROVIDER_RATE_LIMITED'],
        ['503', 503, 'PROVIDER_UNAVAILABLE'],
        ['400', 400, 'PROVIDER_BAD_REQUEST'],
        ['hang', 504, 'PROVIDER_TIMEOUT'],
        ['401', 502, 'PROVIDER_AUTH_FAILED'],
      ];
      for (const [m, status, code] of expect) {
        await assert.rejects(
          oa.chat.completions.create({ model: 'openai/gpt-4o-mini', messages: [{ role: 'user', content: `[openai:${m}]` }] }),
          (err: any) => {
            assert.ok(err instanceof OpenAI.APIError, String(err));
            assert.equal(err.status, status, `${m}`);
            assert.equal(err.code ?? err.error?.code, code);
            if (m === '429') assert.equal(err.headers.get('retry-after'), '2');
            return true;
          },
        );
      }
    });
  });

  describe('cancel and timeout', () => {
    it('cancel aborts the provider call', async () => {
      const { body } = await api.json(api.post('/v1/tasks', { messages: user('wait [ollama:hang]'), privacy: 'local-only' }));
      await until(() => chatRequests(ollama.requests).some((r) => JSON.stringify(r.body).includes(`wait [ollama:hang]`) && !r.clientDisconnected));
      const upstream = chatRequests(ollama.requests).at(-1)!;
      const cancelled = await api.json(api.post(`/v1/tasks/${body.task_id}/cancel`, {}));
      assert.equal(cancelled.status, 200);
      assert.equal(cancelled.body.status, 'CANCELED');
      assert.equal(cancelled.body.error.code, 'CANCELLED');
      await within(upstream.disconnected, 1000, 'the upstream request being aborted');
      const again = await api.json(api.post(`/v1/tasks/${body.task_id}/cancel`, {}));
      assert.equal(again.status, 409);
    });

    it('a task past its timeout ends TIMEOUT and its provider call is aborted', async () => {
      const started = Date.now();
      const { body } = await task({ messages: user('slow [ollama:hang]'), privacy: 'local-only', timeout_ms: 300 });
      assert.equal(body.status, 'TIMEOUT');
      assert.equal(body.error.code, 'TIMEOUT');
      assert.ok(Date.now() - started < 2000);
      await within(chatRequests(ollama.requests).at(-1)!.disconnected, 1000, 'the upstream request being aborted');
    });
  });

  describe('idempotency', () => {
    it('the same key and body return the same task; another body is refused with 422', async () => {
      const body = { input: 'once only', intent: 'chat' };
      const first = await api.json(api.post('/v1/tasks', body, { 'idempotency-key': 'k-1' }));
      assert.equal(first.status, 202);
      const second = await api.json(api.post('/v1/tasks', { intent: 'chat', input: 'once only' }, { 'idempotency-key': 'k-1' }));
      assert.ok([200, 202].includes(second.status));
      assert.equal(second.body.task_id, first.body.task_id);
      assert.equal(second.headers.get('idempotent-replayed'), 'true');
      const conflict = await api.json(api.post('/v1/tasks', { input: 'something else' }, { 'idempotency-key': 'k-1' }));
      assert.equal(conflict.status, 422);
      assert.equal(conflict.body.error.code, 'IDEMPOTENCY_KEY_REUSED');
      assert.equal(conflict.body.error.details.task_id, first.body.task_id);
      const otherCaller = await api.json(client(kernel, 'other-token').post('/v1/tasks', body, { 'idempotency-key': 'k-1' }));
      assert.notEqual(otherCaller.body.task_id, first.body.task_id, 'keys are scoped to the caller');
      const concurrent = await Promise.all([1, 2, 3].map(() => api.json(api.post('/v1/tasks', { input: 'race' }, { 'idempotency-key': 'k-race' }))));
      assert.equal(new Set(concurrent.map((r) => r.body.task_id)).size, 1);
    });
  });

  describe('streaming', () => {
    it('GET /v1/stream/{id} sends partial, token and done events, and resumes after Last-Event-ID', async () => {
      const { body } = await task({ messages: user('[ollama:long]'), privacy: 'local-only' });
      const all = await readSse(await api.get(`/v1/stream/${body.task_id}`));
      assert.equal(all[0]!.event, 'partial');
      assert.equal(all[0]!.data.kind, 'route');
      const tokens = all.filter((e) => e.event === 'token');
      assert.equal(tokens.length, 12);
      assert.equal(tokens.map((e) => e.data.text).join(''), body.result.text);
      assert.equal(all.at(-1)!.event, 'done');
      assert.equal(all.at(-1)!.data.status, 'OK');
      assert.deepEqual(
        all.map((e) => Number(e.id)),
        all.map((_, i) => i + 1),
      );
      const resumed = await readSse(await api.get(`/v1/stream/${body.task_id}`, { 'last-event-id': '5' }));
      assert.deepEqual(
        resumed.map((e) => e.id),
        all.slice(5).map((e) => e.id),
      );
      const bad = await api.json(api.get(`/v1/stream/${body.task_id}`, { 'last-event-id': 'x' }));
      assert.equal(bad.status, 400);
    });

    it('an error ends the stream with an error event', async () => {
      const { body } = await task({ messages: user('[ollama:400]'), privacy: 'local-only' });
      const events = await readSse(await api.get(`/v1/stream/${body.task_id}`));
      assert.equal(events.at(-1)!.event, 'error');
      assert.equal(events.at(-1)!.data.code, 'PROVIDER_BAD_REQUEST');
    });
  });

  describe('OpenAI-compatible front door, with the official openai client', () => {
    let oa: OpenAI;
    before(() => (oa = new OpenAI({ baseURL: `${kernel.url}/v1`, apiKey: 'test-token', maxRetries: 0 })));

    it('completes without streaming', async () => {
      const res = await oa.chat.completions.create({
        model: 'aion/auto',
        messages: [
          { role: 'system', content: 'be brief' },
          { role: 'user', content: 'hello' },
        ],
      });
      assert.equal(res.object, 'chat.completion');
      assert.equal(res.choices[0]!.message.content, 'Hi from ollama');
      assert.equal(res.choices[0]!.finish_reason, 'stop');
      assert.equal(res.model, 'ollama/llama3.1:latest');
      assert.deepEqual(res.usage, { prompt_tokens: 8, completion_tokens: 3, total_tokens: 11 });
    });

    it('streams, with usage when asked, and shows the route in a header', async () => {
      const { data: stream, response } = await oa.chat.completions
        .create({ model: 'openai/gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }], stream: true, stream_options: { include_usage: true } })
        .withResponse();
      assert.match(response.headers.get('x-aion-route')!, /chosen_by=preferred/);
      let text = '';
      let finish: string | null = null;
      let usage: unknown;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? '';
        finish = chunk.choices[0]?.finish_reason ?? finish;
        if (chunk.usage) usage = chunk.usage;
        assert.equal(chunk.model, 'openai/gpt-4o-mini');
      }
      assert.equal(text, 'Hello from openai');
      assert.equal(finish, 'stop');
      assert.deepEqual(usage, { prompt_tokens: 10, completion_tokens: 3, total_tokens: 13 });
    });

    it('passes tools through and returns tool calls', async () => {
      const res = await oa.chat.completions.create({
        model: 'openai/gpt-4o-mini',
        messages: [{ role: 'user', content: 'look it up [openai:tools]' }],
        tools: [
          { type: 'function', function: { name: 'lookup', description: 'search', parameters: { type: 'object', properties: { q: { type: 'string' } } } } },
        ],
      });
      assert.equal(res.choices[0]!.finish_reason, 'tool_calls');
      assert.deepEqual(res.choices[0]!.message.tool_calls, [{ id: 'call_1', type: 'function', function: { name: 'lookup', arguments: '{"q":"aion"}' } }]);
      const sent = chatRequests(openai.requests).at(-1)!.body;
      assert.equal(sent.tools[0].function.name, 'lookup');
    });

    it('lists provider/model ids and the aion aliases', async () => {
      const ids: string[] = [];
      for await (const m of oa.models.list()) ids.push(m.id);
      assert.ok(ids.includes('aion/auto'));
      assert.ok(ids.includes('aion/local'));
      assert.ok(ids.includes('openai/gpt-4o-mini'));
      assert.ok(ids.includes('ollama/llama3.1:latest'));
    });

    it('refuses an unknown model with 404 and an invalid body with 400', async () => {
      await assert.rejects(oa.chat.completions.create({ model: 'nope/model', messages: [{ role: 'user', content: 'x' }] }), (e: any) => e.status === 404);
      await assert.rejects(oa.chat.completions.create({ model: 'aion/auto', messages: [] }), (e: any) => e.status === 400);
    });

    it('a streamed failure before the first token is an HTTP error; a client that goes away aborts the upstream call', async () => {
      const failing = new OpenAI({ baseURL: `${kernel.url}/v1`, apiKey: 'test-token', maxRetries: 0, defaultHeaders: { 'x-aion-intent': 'openai-only' } });
      await assert.rejects(
        failing.chat.completions.create({ model: 'openai/gpt-4o-mini', messages: [{ role: 'user', content: '[openai:503]' }], stream: true }),
        (e: any) => e.status === 503,
      );
      const controller = new AbortController();
      const pending = kernel
        .request('/v1/chat/completions', {
          method: 'POST',
          headers: { authorization: 'Bearer test-token', 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'aion/local', stream: true, messages: user('gone [ollama:hang]') }),
          signal: controller.signal,
        })
        .catch((e: Error) => e);
      await until(() => chatRequests(ollama.requests).some((r) => JSON.stringify(r.body).includes('gone [ollama:hang]')));
      controller.abort();
      assert.ok((await pending) instanceof Error);
      const upstream = chatRequests(ollama.requests).find((r) => JSON.stringify(r.body).includes('gone [ollama:hang]'))!;
      await within(upstream.disconnected, 1000, 'the upstream request being aborted');
    });
  });

  describe('bulk', () => {
    it('refuses an unknown dependency or a cycle with 400 naming it', async () => {
      const unknown = await api.json(api.post('/v1/bulk', { operations: [{ id: 'a', input: 'x', depends_on: ['ghost'] }] }));
      assert.equal(unknown.status, 400);
      assert.equal(unknown.body.error.code, 'BULK_UNKNOWN_DEPENDENCY');
      assert.match(unknown.body.error.message, /ghost/);
      const cycle = await api.json(
        api.post('/v1/bulk', {
          operations: [
            { id: 'a', input: 'x', depends_on: ['b'] },
            { id: 'b', input: 'y', depends_on: ['a'] },
          ],
        }),
      );
      assert.equal(cycle.status, 400);
      assert.equal(cycle.body.error.code, 'BULK_CYCLE');
      assert.deepEqual(cycle.body.error.details.cycle, ['a', 'b', 'a']);
    });

    it('partial success: a failure skips its dependents with the reason, outputs flow through $ref', async () => {
      const res = await api.json(
        api.post('/v1/bulk', {
          execution: 'parallel',
          wait: true,
          operations: [
            { id: 'a', input: 'echo:alpha', privacy: 'local-only' },
            { id: 'b', input: 'break [ollama:400]', privacy: 'local-only' },
            { id: 'c', input: 'after b', depends_on: ['b'] },
            { id: 'd', input: 'after c', depends_on: ['c'] },
            { id: 'e', privacy: 'local-only', messages: [{ role: 'user', content: { $ref: 'a.result.text' } }] },
          ],
        }),
      );
      assert.equal(res.status, 200);
      const ops = Object.fromEntries(res.body.operations.map((o: any) => [o.id, o]));
      assert.equal(res.body.status, 'PARTIAL');
      assert.equal(ops.a.status, 'OK');
      assert.equal(ops.b.status, 'ERROR');
      assert.equal(ops.b.result.error.code, 'PROVIDER_BAD_REQUEST');
      assert.equal(ops.c.status, 'SKIPPED');
      assert.equal(ops.c.reason, 'depends on b, which ended ERROR (PROVIDER_BAD_REQUEST)');
      assert.equal(ops.d.status, 'SKIPPED');
      assert.equal(ops.d.reason, 'depends on c, which was skipped');
      assert.equal(ops.e.status, 'OK');
      assert.deepEqual(ops.e.depends_on, ['a']);
      assert.ok(
        chatRequests(ollama.requests).some((r) => r.body.messages.at(-1).content === 'alpha'),
        'e received a’s output',
      );
      assert.deepEqual(res.body.progress, { completed: 5, total: 5, ok: 2, failed: 1, skipped: 2 });
    });

    it('sequential runs one at a time in order and reports progress as it runs', async () => {
      const before = chatRequests(ollama.requests).length;
      const res = await api.post('/v1/bulk', {
        execution: 'sequential',
        stream: true,
        operations: ['one', 'two', 'three'].map((x) => ({ id: x, input: `echo:${x}`, privacy: 'local-only' })),
      });
      assert.equal(res.status, 200);
      const events = await readSse(res);
      const progress = events.filter((e) => e.event === 'progress');
      assert.ok(progress.length >= 6);
      assert.deepEqual(
        progress.filter((e) => e.data.status === 'OK').map((e) => e.data.progress.completed),
        [1, 2, 3],
      );
      assert.equal(events.at(-1)!.event, 'done');
      assert.equal(events.at(-1)!.data.status, 'OK');
      assert.deepEqual(
        chatRequests(ollama.requests)
          .slice(before)
          .map((r) => r.body.messages.at(-1).content),
        ['echo:one', 'echo:two', 'echo:three'],
      );
    });

    it('async bulk: 202, then GET /v1/bulk/{id}', async () => {
      const res = await api.json(api.post('/v1/bulk', { operations: [{ id: 'x', input: 'hi', privacy: 'local-only' }] }));
      assert.equal(res.status, 202);
      await until(async () => (await api.json(api.get(`/v1/bulk/${res.body.bulk_id}`))).body.status === 'OK');
      assert.equal((await api.json(client(kernel, 'other-token').get(`/v1/bulk/${res.body.bulk_id}`))).status, 404);
    });
  });

  describe('hooks', () => {
    it('router.beforeRoute may deny a request', async () => {
      const { body } = await task({ input: 'x', metadata: { hook: 'deny' } });
      assert.equal(body.status, 'ERROR');
      assert.equal(body.error.code, 'DENIED_BY_TEST');
      const front = await api.json(api.post('/v1/chat/completions', { model: 'aion/auto', messages: user('x'), aion: { metadata: { hook: 'deny' } } }));
      assert.equal(front.status, 403);
    });

    it('router.beforeRoute may change the order; router.afterTask sees every task', async () => {
      const plain = await task({ input: 'x', privacy: 'allow-api' });
      const reversed = await task({ input: 'x', privacy: 'allow-api', metadata: { hook: 'reverse' } });
      assert.equal(reversed.body.engine.reason.startsWith('reversed by the test hook'), true);
      assert.notEqual(reversed.body.routing.candidates[0].engine, plain.body.routing.candidates[0].engine);
      assert.equal(reversed.body.routing.candidates[0].engine, plain.body.routing.candidates.at(-1).engine);
      let seen: any[] = [];
      await until(async () =>
        (seen = (await (await kernel.request('/test/after-task')).json()) as any[]).some((p: any) => p.task.task_id === reversed.body.task_id),
      );
      const entry = seen.find((p: any) => p.task.task_id === reversed.body.task_id);
      assert.deepEqual(entry.principal, { sub: 'tester', tenant_id: 'default', api_key: 'key-a' });
      assert.equal(entry.task.status, 'OK');
    });
  });

  describe('usage, capabilities, WebSocket', () => {
    it('counts usage and cost per API key', async () => {
      await task({ input: 'count me', privacy: 'allow-api', preferred_engine: 'openai/gpt-4o-mini' }, 'other-token');
      const mine = await api.json(client(kernel, 'other-token').get('/v1/usage'));
      assert.equal(mine.status, 200);
      assert.equal(mine.body.api_key, 'key-b');
      assert.ok(mine.body.tasks >= 1);
      assert.ok(mine.body.by_engine['openai/gpt-4o-mini'].cost_usd > 0);
      assert.equal((await api.json(api.get('/v1/usage?api_key=key-b'))).status, 403);
      const admin = await api.json(client(kernel, 'admin-token').get('/v1/usage?api_key=key-b'));
      assert.equal(admin.body.tasks, mine.body.tasks);
    });

    it('describes its API at /v1/capabilities to anyone, and what runs behind it only to an authenticated caller', async () => {
      const anonymous = await kernel.request('/v1/capabilities');
      const open = (await anonymous.json()) as any;
      assert.equal(anonymous.status, 200);
      assert.deepEqual(open.api_versions, ['v1']);
      assert.equal(open.features.bulk.max_operations, 20);
      assert.deepEqual(Object.keys(open).sort(), ['api_versions', 'features', 'schema_version', 'task_schema_versions']);
      assert.doesNotMatch(JSON.stringify(open), /aion\.router|"provider"|ollama|openai\/|"pid"/, 'no extension ids, providers or pids');
      const res = await kernel.request('/v1/capabilities', { headers: { authorization: 'Bearer test-token' } });
      const body = (await res.json()) as any;
      assert.equal(res.status, 200);
      assert.equal(body.server.extension, 'aion.router');
      assert.ok(body.intents.includes('chat'));
      assert.deepEqual(body.providers.map((p: any) => [p.id, p.route, p.available]).sort(), [
        ['ollama', 'local', true],
        ['openai', 'api', true],
      ]);
    });

    it('speaks JSON-RPC 2.0 over the WebSocket: submit, subscribe, events, cancel', async () => {
      const ws = new WebSocket(`${kernel.url.replace('http', 'ws')}/v1/ws`, { headers: { authorization: 'Bearer test-token' } });
      const frames: any[] = [];
      ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tasks.submit', params: { input: 'hello', privacy: 'local-only', subscribe: true } }));
      await until(() => frames.some((f) => f.method === 'tasks.event' && f.params.event === 'done'));
      const reply = frames.find((f) => f.id === 1);
      assert.match(reply.result.task_id, /^task_/);
      const events = frames.filter((f) => f.method === 'tasks.event');
      assert.ok(events.every((f) => f.params.task_id === reply.result.task_id));
      assert.equal(
        events
          .filter((f) => f.params.event === 'token')
          .map((f) => f.params.data.text)
          .join(''),
        'Hi from ollama',
      );
      ws.send(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tasks.cancel', params: { task_id: reply.result.task_id } }));
      ws.send(JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tasks.nope' }));
      ws.send('{not json');
      await until(() => frames.some((f) => f.id === 2) && frames.some((f) => f.id === 3) && frames.some((f) => f.error?.code === -32700));
      assert.equal(frames.find((f) => f.id === 2).error.data.code, 'CONFLICT');
      assert.equal(frames.find((f) => f.id === 3).error.code, -32601);
      ws.close();
    });
  });
});
