import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import type { TestKernel } from '@aion/core';
import { startFakeOllama, type FakeOllama } from '@aion/ext-provider-ollama/testing';
import { startFakeOpenAI, type FakeOpenAI } from '@aion/ext-provider-openai/testing';
import { fakeEmbedding } from '@aion/provider-kit/testing';
import OpenAI from 'openai';
import { client, OLLAMA_DIR, OPENAI_DIR, ollamaReply, openaiReply, startRouterKernel } from './helpers.js';

const embedRequests = (server: { requests: Array<{ method: string; path: string; body: any }> }) =>
  server.requests.filter((r) => r.method === 'POST' && /embed/.test(r.path));
const close = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => Math.abs(x - b[i]!) < 1e-3);

describe('the OpenAI-compatible front door, with the official openai client', function () {
  let openai: FakeOpenAI;
  let ollama: FakeOllama;
  let kernel: TestKernel;
  let oa: OpenAI;
  const logs = new PassThrough();
  const lines: string[] = [];

  before(async () => {
    openai = await startFakeOpenAI({ reply: openaiReply });
    ollama = await startFakeOllama({ reply: ollamaReply, models: ['llama3.1:latest', 'nomic-embed-text:latest'] });
    let buffer = '';
    logs.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        lines.push(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
      }
    });
    kernel = await startRouterKernel({
      extensions: [OPENAI_DIR, OLLAMA_DIR],
      logLevel: 'info',
      logDestination: logs,
      config: {
        'aion.router': {
          circuitBreaker: { failureThreshold: 1000 },
          policies: {
            intents: { 'openai-only': { allow: ['openai/*'] } },
            overrides: [
              { name: 'pinned-embeddings', match: { intent: 'embed', metadata: { pin: 'openai' } }, engine: 'openai/text-embedding-3-small', fallback: false },
            ],
          },
        },
        // The operator's own model list replaces the provider's defaults.
        'aion.provider-openai': {
          baseUrl: openai.url,
          apiKeySecret: '',
          timeoutMs: 2000,
          models: [
            { id: 'house-model', contextWindow: 32000, costPer1kInput: 0.001, costPer1kOutput: 0.002, capabilities: { chat: 0.9 }, tools: true },
            { id: 'text-embedding-3-small', embed: true, costPer1kInput: 0.00002, capabilities: {} },
          ],
        },
        'aion.provider-ollama': { baseUrl: ollama.url, timeoutMs: 5000 },
      },
    });
    oa = new OpenAI({ baseURL: `${kernel.url}/v1`, apiKey: 'test-token', maxRetries: 0 });
  });
  after(async () => {
    await kernel?.stop();
    await openai?.close();
    await ollama?.close();
  });

  describe('models', () => {
    it("lists a provider's configured models instead of its defaults, and routes them by bare id", async () => {
      const ids: string[] = [];
      for await (const m of oa.models.list()) ids.push(m.id);
      assert.ok(ids.includes('openai/house-model'), ids.join(', '));
      assert.ok(!ids.includes('openai/gpt-4o-mini'), 'the defaults are replaced');
      assert.ok(!ids.includes('openai/gpt-4o'));
      const res = await oa.chat.completions.create({ model: 'house-model', messages: [{ role: 'user', content: 'hello' }] });
      assert.equal(res.model, 'openai/house-model');
      assert.equal(res.choices[0]!.message.content, 'Hello from openai');
      assert.equal(openai.requests.filter((r) => r.path.endsWith('/chat/completions')).at(-1)!.body.model, 'house-model');
    });

    it('retrieves one model by its id, a bare id or an alias (models.retrieve), and 404s an unknown one as NotFoundError', async () => {
      const m = await oa.models.retrieve('openai/house-model');
      assert.equal(m.id, 'openai/house-model');
      assert.equal(m.object, 'model');
      assert.equal(m.owned_by, 'openai');
      assert.equal((m as any).aion.context_window, 32000);
      assert.equal((await oa.models.retrieve('llama3.1')).id, 'ollama/llama3.1:latest');
      const plain = await client(kernel).json(client(kernel).get('/v1/models/openai/house-model'));
      assert.equal(plain.body.id, 'openai/house-model', 'an unencoded provider/model path works too');
      assert.equal((await oa.models.retrieve('aion/local')).owned_by, 'aion');
      const embedder = await oa.models.retrieve('ollama/nomic-embed-text:latest');
      assert.equal((embedder as any).aion.embed, true);
      await assert.rejects(oa.models.retrieve('openai/gpt-4o-mini'), (e: any) => {
        assert.ok(e instanceof OpenAI.NotFoundError, String(e));
        assert.equal(e.code, 'MODEL_NOT_FOUND');
        assert.equal(e.type, 'not_found_error');
        assert.equal(e.param, 'model');
        assert.match(e.message, /GET \/v1\/models lists the ids/, 'API paths stay in messages');
        return true;
      });
    });
  });

  describe("errors in OpenAI's shape, mapped to the client's classes", () => {
    it('401 AuthenticationError, 403 PermissionDeniedError, 404 NotFoundError, 400 BadRequestError, 429 RateLimitError, 5xx InternalServerError', async () => {
      const anonymous = new OpenAI({ baseURL: `${kernel.url}/v1`, apiKey: 'not-a-token', maxRetries: 0 });
      await assert.rejects(anonymous.chat.completions.create({ model: 'aion/auto', messages: [{ role: 'user', content: 'x' }] }), (e: any) => {
        assert.ok(e instanceof OpenAI.AuthenticationError, String(e));
        assert.equal(e.type, 'authentication_error');
        assert.equal((e.error as { code?: string }).code, e.code, "Aion's code is OpenAI's code");
        return true;
      });
      const reader = new OpenAI({ baseURL: `${kernel.url}/v1`, apiKey: 'reader-token', maxRetries: 0 });
      await assert.rejects(
        reader.embeddings.create({ model: 'aion/auto', input: 'x' }),
        (e: any) => e instanceof OpenAI.PermissionDeniedError && e.type === 'permission_error',
      );
      await assert.rejects(oa.chat.completions.create({ model: 'nope/model', messages: [{ role: 'user', content: 'x' }] }), (e: any) => {
        assert.ok(e instanceof OpenAI.NotFoundError, String(e));
        assert.equal((e.error as { message: string }).message, e.message.replace(/^404 /, ''));
        assert.match(e.message, /\(GET \/v1\/models lists them\)/);
        return true;
      });
      await assert.rejects(
        oa.chat.completions.create({ model: 'aion/auto', messages: [] }),
        (e: any) => e instanceof OpenAI.BadRequestError && e.type === 'invalid_request_error' && e.code === 'VALIDATION_FAILED',
      );
      const pinned = new OpenAI({ baseURL: `${kernel.url}/v1`, apiKey: 'test-token', maxRetries: 0, defaultHeaders: { 'x-aion-intent': 'openai-only' } });
      await assert.rejects(pinned.chat.completions.create({ model: 'openai/house-model', messages: [{ role: 'user', content: '[openai:429]' }] }), (e: any) => {
        assert.ok(e instanceof OpenAI.RateLimitError, String(e));
        assert.equal(e.type, 'rate_limit_error');
        assert.equal(e.code, 'PROVIDER_RATE_LIMITED');
        assert.equal(e.headers.get('retry-after'), '2');
        return true;
      });
      await assert.rejects(
        pinned.chat.completions.create({ model: 'openai/house-model', messages: [{ role: 'user', content: '[openai:503]' }] }),
        (e: any) => e instanceof OpenAI.InternalServerError && e.type === 'api_error',
      );
    });

    it("keeps Aion's own shape (code, message, details) on the error, and on routes that are not OpenAI's", async () => {
      const api = client(kernel);
      const res = await api.json(api.post('/v1/chat/completions', { model: 'aion/auto', messages: [] }));
      assert.equal(res.status, 400);
      assert.equal(res.body.error.code, 'VALIDATION_FAILED');
      assert.ok(Array.isArray(res.body.error.details), 'details as before');
      assert.equal(res.body.error.type, 'invalid_request_error');
      assert.equal(res.body.error.param, null);
      const task = await api.json(api.post('/v1/tasks', { nonsense: true }));
      assert.equal(task.status, 400);
      assert.ok(
        Object.keys(task.body.error).every((k) => ['code', 'message', 'details'].includes(k)),
        JSON.stringify(task.body),
      );
      const unauthenticated = await client(kernel, 'not-a-token').json(client(kernel, 'not-a-token').get('/v1/usage'));
      assert.equal(unauthenticated.status, 401);
      assert.ok(!('type' in unauthenticated.body.error), "Aion routes keep Aion's shape");
    });
  });

  describe('responses', () => {
    it('answers text input with output text (responses.create), instructions as the system message', async () => {
      const res = await oa.responses.create({ model: 'aion/auto', instructions: 'be brief', input: 'echo:a short answer' });
      assert.equal(res.object, 'response');
      assert.equal(res.status, 'completed');
      assert.equal(res.output_text, 'a short answer');
      assert.equal(res.model, 'ollama/llama3.1:latest');
      assert.ok(res.usage!.input_tokens > 0);
      const sent = ollama.requests.filter((r) => r.path === '/api/chat').at(-1)!.body;
      assert.deepEqual(
        sent.messages.map((m: any) => m.role),
        ['system', 'user'],
      );
      const turns = await oa.responses.create({ model: 'aion/auto', input: [{ role: 'user', content: [{ type: 'input_text', text: 'echo:parts' }] }] });
      assert.equal(turns.output_text, 'parts');
    });

    it('streams response.created, output_text deltas and response.completed', async () => {
      const stream = await oa.responses.create({ model: 'openai/house-model', input: 'hello', stream: true });
      const types: string[] = [];
      let text = '';
      let final: any;
      for await (const event of stream) {
        types.push(event.type);
        if (event.type === 'response.output_text.delta') text += event.delta;
        if (event.type === 'response.completed') final = event.response;
      }
      assert.equal(text, 'Hello from openai');
      assert.equal(types[0], 'response.created');
      assert.equal(types.at(-1), 'response.completed');
      assert.ok(types.filter((t) => t === 'response.output_text.delta').length === 3);
      assert.equal(final.output[0].content[0].text, 'Hello from openai');
      assert.equal(final.model, 'openai/house-model');
    });

    it('refuses input it cannot serve with a BadRequestError naming the field; a failure before output is an HTTP error', async () => {
      await assert.rejects(
        oa.responses.create({
          model: 'aion/auto',
          input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'https://x/y.png', detail: 'auto' }] }],
        }),
        (e: any) => e instanceof OpenAI.BadRequestError && e.param === 'input' && /text input only/.test(e.message),
      );
      const pinned = new OpenAI({ baseURL: `${kernel.url}/v1`, apiKey: 'test-token', maxRetries: 0, defaultHeaders: { 'x-aion-intent': 'openai-only' } });
      await assert.rejects(
        pinned.responses.create({ model: 'openai/house-model', input: '[openai:429]', stream: true }),
        (e: any) => e instanceof OpenAI.RateLimitError,
      );
    });
  });

  describe('access log', () => {
    it('writes one line per request with method, route, status, ms, request id and principal, never the token; a failure adds code and cause', async () => {
      const ok = await kernel.request('/v1/models', { headers: { authorization: 'Bearer test-token' } });
      assert.equal(ok.status, 200);
      const missing = await kernel.request('/v1/models/ghost%2Fmodel', { headers: { authorization: 'Bearer test-token' } });
      assert.equal(missing.status, 404);
      await new Promise((r) => setTimeout(r, 50));
      const access = (res: Response) => lines.map((l) => JSON.parse(l)).filter((e) => e.msg === 'request' && e.requestId === res.headers.get('x-request-id'));
      const [line, ...more] = access(ok);
      assert.equal(more.length, 0, 'exactly one access line');
      assert.equal(line.level, 30, 'info');
      assert.equal(line.method, 'GET');
      assert.equal(line.route, '/v1/models');
      assert.equal(line.status, 200);
      assert.equal(typeof line.ms, 'number');
      assert.equal(line.principal, 'tester');
      const failed = access(missing);
      assert.equal(failed.length, 1);
      assert.equal(failed[0].route, '/v1/models/:id');
      assert.equal(failed[0].code, 'MODEL_NOT_FOUND');
      assert.match(failed[0].cause, /ghost\/model is not served here/);
      assert.ok(!lines.some((l) => l.includes('test-token')), 'no line carries the token');
    });
  });

  describe('embeddings', () => {
    it('embeds a list with a local model by default (float and, as the client asks by default, base64), and counts usage', async () => {
      const before = embedRequests(openai).length;
      const floats = await oa.embeddings.create({ model: 'aion/auto', input: ['alpha', 'beta gamma'], encoding_format: 'float' });
      assert.equal(floats.model, 'ollama/nomic-embed-text:latest');
      assert.equal(floats.data.length, 2);
      assert.deepEqual(
        floats.data.map((d) => d.index),
        [0, 1],
      );
      assert.ok(close(floats.data[1]!.embedding, fakeEmbedding('beta gamma')), 'input order is kept');
      assert.ok(floats.usage.prompt_tokens > 0);
      const decoded = await oa.embeddings.create({ model: 'aion/auto', input: 'alpha' });
      assert.ok(close(Array.from(decoded.data[0]!.embedding), fakeEmbedding('alpha')), 'base64 float32 decodes to the same vector');
      assert.equal(embedRequests(openai).length, before, 'hybrid: the local model answered, nothing went to the api');
      const usage = await client(kernel).json(client(kernel).get('/v1/usage'));
      assert.ok(usage.body.by_engine['ollama/nomic-embed-text:latest'].tasks >= 2, JSON.stringify(usage.body));
    });

    it('routes a named api embedding model, with dimensions, and refuses chat models and unknown models', async () => {
      const res = await oa.embeddings.create({ model: 'openai/text-embedding-3-small', input: 'hello', dimensions: 6, encoding_format: 'float' });
      assert.equal(res.model, 'openai/text-embedding-3-small');
      assert.equal(res.data[0]!.embedding.length, 6);
      assert.equal(embedRequests(openai).at(-1)!.body.dimensions, 6);
      await assert.rejects(
        oa.embeddings.create({ model: 'openai/house-model', input: 'x' }),
        (e: any) => e instanceof OpenAI.BadRequestError && e.param === 'model' && /not an embedding model/.test(e.message),
      );
      await assert.rejects(oa.embeddings.create({ model: 'ghost-embedder', input: 'x' }), (e: any) => e instanceof OpenAI.NotFoundError);
      await assert.rejects(
        oa.embeddings.create({ model: 'aion/auto', input: [] as string[] }),
        (e: any) => e instanceof OpenAI.BadRequestError && e.param === 'input',
      );
      await assert.rejects(
        oa.chat.completions.create({ model: 'nomic-embed-text', messages: [{ role: 'user', content: 'x' }] }),
        (e: any) => e instanceof OpenAI.BadRequestError && /POST \/v1\/embeddings/.test(e.message),
      );
    });

    it('a rate-limited upstream with nowhere to fall back (a policy pins the engine) is a RateLimitError', async () => {
      const body = { model: 'aion/auto', input: 'slow down [openai:429]', aion: { metadata: { pin: 'openai' } } } as unknown as OpenAI.EmbeddingCreateParams;
      await assert.rejects(oa.embeddings.create(body), (e: any) => {
        assert.ok(e instanceof OpenAI.RateLimitError, String(e));
        assert.equal(e.code, 'PROVIDER_RATE_LIMITED');
        assert.equal(e.headers.get('retry-after'), '2');
        return true;
      });
    });

    it('local-only never reaches the api provider, not even when the local model fails; with no local engine it is a clear refusal', async () => {
      const before = embedRequests(openai).length;
      await assert.rejects(
        oa.embeddings.create({ model: 'aion/local', input: 'down [ollama:500]' }),
        (e: any) => e instanceof OpenAI.InternalServerError && e.code === 'PROVIDER_UNAVAILABLE',
      );
      assert.equal(embedRequests(openai).length, before, 'no fallback to the api');
      const hybrid = await oa.embeddings.create({ model: 'aion/auto', input: 'fall back [ollama:500]', encoding_format: 'float' });
      assert.equal(hybrid.model, 'openai/text-embedding-3-small', 'hybrid falls back to the cloud');
      assert.equal(embedRequests(openai).length, before + 1);
      const localOnly = new OpenAI({ baseURL: `${kernel.url}/v1`, apiKey: 'test-token', maxRetries: 0, defaultHeaders: { 'x-aion-privacy': 'local-only' } });
      const local = await localOnly.embeddings.create({ model: 'aion/auto', input: 'stay home', encoding_format: 'float' });
      assert.equal(local.model, 'ollama/nomic-embed-text:latest');
      // A named api model under local-only is filtered by residency; the local engine answers instead.
      const named = await localOnly.embeddings.create({ model: 'openai/text-embedding-3-small', input: 'stay home', encoding_format: 'float' });
      assert.equal(named.model, 'ollama/nomic-embed-text:latest');
      assert.equal(embedRequests(openai).length, before + 1, 'nothing more reached the api');
    });
  });
});

describe('embeddings with no local embedding model', function () {
  let openai: FakeOpenAI;
  let kernel: TestKernel;
  before(async () => {
    openai = await startFakeOpenAI({ reply: openaiReply });
    kernel = await startRouterKernel({
      extensions: [OPENAI_DIR],
      config: { 'aion.provider-openai': { baseUrl: openai.url, apiKeySecret: '', timeoutMs: 2000 } },
    });
  });
  after(async () => {
    await kernel?.stop();
    await openai?.close();
  });

  it('local-only is refused with a message that names the residency filter; hybrid uses the api model', async () => {
    const oa = new OpenAI({ baseURL: `${kernel.url}/v1`, apiKey: 'test-token', maxRetries: 0 });
    await assert.rejects(oa.embeddings.create({ model: 'aion/local', input: 'x' }), (e: any) => {
      assert.equal(e.status, 422, String(e));
      assert.equal(e.code, 'NO_ROUTE');
      assert.equal(e.type, 'invalid_request_error');
      assert.match(e.message, /openai\/text-embedding-3-small \(residency: privacy local-only/);
      return true;
    });
    assert.equal(embedRequests(openai).length, 0);
    const res = await oa.embeddings.create({ model: 'text-embedding-3-small', input: 'x', encoding_format: 'float' });
    assert.equal(res.model, 'openai/text-embedding-3-small');
  });
});
