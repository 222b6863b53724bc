import assert from 'node:assert/strict';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, startTestKernel, type TestKernel } from '@aion/core';
import { startFakeOpenAI, type FakeOpenAI } from '@aion/ext-provider-openai/testing';
import { writeTinyLlamaGguf } from '../src/testing.js';
import type { LocalModelStatus } from '../src/localModels.js';

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));
const FIXTURES = resolve(here, '..', '..', 'test', 'fixtures');
const REPO_ROOT = resolve(here, '..', '..', '..', '..');
const AUTH_FIXTURE = join(dirname(require.resolve('@aion/ext-router/package.json')), 'test', 'fixtures', 'test-auth');
const TOKENS = { 'test-token': { sub: 'tester', scopes: ['tasks:write', 'tasks:read', 'models:read'], api_key_id: 'key-a' } };
const ADDON = join(dirname(require.resolve('better-sqlite3/package.json')), 'build', 'Release', 'better_sqlite3.node');

function post(kernel: TestKernel, path: string, body: unknown): Promise<Response> {
  return kernel.request(path, {
    method: 'POST',
    headers: { authorization: 'Bearer test-token', 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

const user = (content: string) => [{ role: 'user', content }];

describe('provider-llamacpp in a kernel: dedicated host, router, CLI command', function () {
  this.timeout(180_000);
  let dir: string;
  let model: string;
  let openai: FakeOpenAI;
  let kernel: TestKernel;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'aion-llamacpp-kernel-'));
    model = join(dir, 'tiny.gguf');
    await writeTinyLlamaGguf(model);
    openai = await startFakeOpenAI({ reply: () => ({ kind: 'answer', text: ['from', ' openai'], usage: { prompt_tokens: 3, completion_tokens: 2 } }) });
    kernel = await startTestKernel({
      builtins: ['aion.router', 'aion.provider-llamacpp', 'aion.provider-openai'],
      extensions: [AUTH_FIXTURE],
      // The documented way to turn the local model on.
      env: { LOCAL_AI_ENABLED: 'true', LOCAL_AI_MODEL_PATH: model },
      config: {
        extensions: {
          'routertest.test-auth': { tokens: TOKENS },
          // Dedicated hosts start slowly on a small shared machine.
          'aion.router': { autoDetect: { probeTimeoutMs: 60_000 } },
          'aion.provider-openai': { baseUrl: openai.url, apiKeySecret: '', timeoutMs: 5000 },
          'aion.provider-llamacpp': { threads: 1, contextSize: 512, maxTokens: 16 },
        },
      },
    });
  });
  after(async () => {
    await kernel?.stop();
    await openai?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('reads LOCAL_AI_ENABLED and LOCAL_AI_MODEL_PATH into the provider configuration', () => {
    const on = loadConfig({ env: { LOCAL_AI_ENABLED: '1', LOCAL_AI_MODEL_PATH: '/models/x.gguf' } });
    assert.deepEqual(on.extensions['aion.provider-llamacpp'], { enabled: true, modelPath: '/models/x.gguf' });
    assert.deepEqual(loadConfig({ env: { LOCAL_AI_ENABLED: 'false' } }).extensions['aion.provider-llamacpp'], { enabled: false });
  });

  it('runs in a dedicated host', async () => {
    const body = { extensions: kernel.extensions() };
    const entry = body.extensions.find((e) => e.id === 'aion.provider-llamacpp');
    assert.ok(entry, JSON.stringify(body).slice(0, 500));
    assert.match(JSON.stringify(entry), /dedicated/);
  });

  it('serves /v1/chat/completions with the local model first for an intent it is rated for (hybrid)', async () => {
    const chats = () => openai.requests.filter((r) => r.path.endsWith('/chat/completions')).length;
    const before = chats();
    const res = await post(kernel, '/v1/chat/completions', { model: 'aion/auto', messages: user('hello world'), max_tokens: 6 });
    const body = (await res.json()) as {
      model: string;
      choices: Array<{ message: { content: string }; finish_reason: string }>;
      usage: { completion_tokens: number };
    };
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.match(res.headers.get('x-aion-route') ?? '', /candidates=llamacpp\/tiny/);
    assert.match(body.model, /llamacpp\/tiny/);
    assert.ok(body.choices[0]!.message.content.length > 0);
    assert.equal(body.choices[0]!.finish_reason, 'length');
    assert.equal(body.usage.completion_tokens, 6);
    assert.equal(chats(), before, 'the cloud provider was called');
  });

  it('streams from the local model over server-sent events with aion/local', async () => {
    const res = await post(kernel, '/v1/chat/completions', { model: 'aion/local', messages: user('hello'), stream: true, max_tokens: 5 });
    assert.equal(res.status, 200);
    const text = await res.text();
    const chunks = text.split('\n').filter((l) => l.startsWith('data: ') && l !== 'data: [DONE]');
    assert.ok(chunks.length >= 2, text);
    assert.ok(text.trim().endsWith('data: [DONE]'));
  });

  it('routes local-only tasks to it, and an intent it is not rated for to the cloud', async () => {
    const local = (await (await post(kernel, '/v1/tasks', { messages: user('secret'), privacy: 'local-only', wait: true, max_tokens: 4 })).json()) as {
      status: string;
      engine: { provider: string; model: string };
    };
    assert.equal(local.status, 'OK', JSON.stringify(local));
    assert.deepEqual([local.engine.provider, local.engine.model], ['llamacpp', 'tiny']);
    const code = (await (await post(kernel, '/v1/tasks', { intent: 'code', messages: user('write code'), wait: true })).json()) as {
      status: string;
      engine: { provider: string };
    };
    assert.equal(code.status, 'OK', JSON.stringify(code));
    assert.equal(code.engine.provider, 'openai');
  });

  it('models.list (aion models list) shows the configured model, its size, quantization and where it is loaded', async () => {
    const table = await kernel.executeCommand<string>('models.list', {});
    assert.match(table, /^ID\s+SIZE\s+QUANT\s+CONTEXT\s+LOADED\s+PATH/);
    assert.match(table, /tiny\s+0\.5 MiB\s+ALL_F32\s+512\s+cpu\s+\S+tiny\.gguf/);
    const json = await kernel.executeCommand<LocalModelStatus[]>('models.list', { json: true });
    assert.equal(json[0]!.state, 'loaded');
    assert.equal(json[0]!.placement?.backend, 'cpu');
  });
});

describe('provider-llamacpp in a kernel: a missing model file', function () {
  this.timeout(120_000);
  let kernel: TestKernel;
  before(async () => {
    kernel = await startTestKernel({
      builtins: ['aion.router', 'aion.provider-llamacpp'],
      extensions: [AUTH_FIXTURE],
      env: { LOCAL_AI_ENABLED: 'true', LOCAL_AI_MODEL_PATH: join(tmpdir(), 'no-such-model.gguf') },
      config: { extensions: { 'routertest.test-auth': { tokens: TOKENS }, 'aion.router': { autoDetect: { probeTimeoutMs: 60_000 } } } },
    });
  });
  after(async () => {
    await kernel?.stop();
  });

  it('reports LOCAL_MODEL_NOT_FOUND, answers local-only tasks with an error, and the kernel keeps serving', async () => {
    // The provider list (with its detail) is for authenticated callers; anonymous ones see features only.
    const capabilities = JSON.stringify(await (await kernel.request('/v1/capabilities', { headers: { authorization: 'Bearer test-token' } })).json());
    assert.match(capabilities, /LOCAL_MODEL_NOT_FOUND|no file at/);
    const res = await post(kernel, '/v1/tasks', { messages: user('hi'), privacy: 'local-only', wait: true });
    const body = (await res.json()) as { status?: string; error?: { code: string } };
    assert.notEqual(body.status, 'OK', JSON.stringify(body));
    const table = await kernel.executeCommand<string>('models.list', {});
    assert.match(table, /LOCAL_MODEL_NOT_FOUND/);
    assert.equal((await kernel.request('/healthz')).status, 200);
  });
});

describe('native addons in a host are enforced by the permission model', function () {
  this.timeout(120_000);
  let kernel: TestKernel | undefined;
  let outside: string;
  // Extensions under extensions/ count as built in: the probes are copied out, beside the root node_modules.
  before(async () => {
    outside = await mkdtemp(join(REPO_ROOT, '.scaffold-test-addons-'));
    for (const name of ['addon-probe', 'plain-probe']) await cp(join(FIXTURES, name), join(outside, name), { recursive: true });
  });
  afterEach(async () => {
    await kernel?.stop();
    kernel = undefined;
  });
  after(async () => {
    await rm(outside, { recursive: true, force: true });
  });

  it('a host whose manifest does not declare addons cannot load one (ERR_DLOPEN_DISABLED)', async () => {
    kernel = await startTestKernel({ extensions: [join(outside, 'plain-probe')] });
    assert.equal(await kernel.executeCommand('plainProbe.load', ADDON), 'ERR_DLOPEN_DISABLED');
  });

  it('an extension that is not built in and declares addons is refused without an operator grant, and loads one with it', async () => {
    kernel = await startTestKernel({ extensions: [join(outside, 'addon-probe')], strict: false });
    await assert.rejects(kernel.executeCommand('addonProbe.load', ADDON), /no extension provides command addonProbe\.load/);
    const listed = JSON.stringify(kernel.extensions());
    assert.match(listed, /PERMISSION_DENIED/);
    assert.match(listed, /addons \(grant: permissions\.grants\[\\"llamatest\.addon-probe\\"\]\.addons: true\)/);
    await kernel.stop();
    kernel = await startTestKernel({
      extensions: [join(outside, 'addon-probe')],
      config: { permissions: { grants: { 'llamatest.addon-probe': { addons: true } } } },
    });
    assert.equal(await kernel.executeCommand('addonProbe.load', ADDON), 'loaded');
  });
});
