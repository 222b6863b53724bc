import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  AionError,
  CancellationTokenSource,
  runInExtensionContext,
  type ExtensionApiBinding,
  type ExtensionContext,
  type ExtensionManifest,
} from '@aion/extension-api';
import type { ChatRequest, ProviderEvent, ProviderImplementation } from '@aion/provider-kit';
import { OllamaClient } from '../src/client.js';
import { activate } from '../src/extension.js';
import { startFakeOllama, type FakeOllama } from '../src/testing.js';
import { collect, fakeEmbedding, last, tokens } from '@aion/provider-kit/testing';

const hello: ChatRequest = {
  model: 'llama3.1',
  messages: [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Say hello' },
  ],
};

const withoutMessage = (event: ProviderEvent | undefined) => ({ ...event, message: undefined });

describe('provider-ollama client', () => {
  let fake: FakeOllama | undefined;
  afterEach(async () => {
    await fake?.close();
    fake = undefined;
  });

  it('embeds every input in one POST /api/embed, in order, with the prompt token count; a server error rejects with its code', async () => {
    fake = await startFakeOllama();
    const client = new OllamaClient({ baseUrl: fake.url });
    const answer = await client.embed({ model: 'nomic-embed-text', input: ['a', 'bcd'] });
    assert.deepEqual(answer.embeddings, [fakeEmbedding('a'), fakeEmbedding('bcd')]);
    assert.equal(answer.inputTokens, 2);
    assert.deepEqual(fake.requests[0]!.body, { model: 'nomic-embed-text', input: ['a', 'bcd'] });
    await assert.rejects(
      client.embed({ model: 'nomic-embed-text', input: ['[ollama:500]'] }),
      (e: unknown) => e instanceof AionError && e.code === 'PROVIDER_UNAVAILABLE',
    );
  });

  it('streams NDJSON tokens in order, then usage from the final line, then done', async () => {
    fake = await startFakeOllama({ replies: [{ kind: 'answer', text: ['Hel', 'lo', ' there'], promptEvalCount: 26, evalCount: 3 }] });
    const events = await collect(new OllamaClient({ baseUrl: fake.url }).chat({ ...hello, temperature: 0.1, maxTokens: 64, stop: ['END'] }));
    assert.deepEqual(events, [
      { type: 'token', text: 'Hel' },
      { type: 'token', text: 'lo' },
      { type: 'token', text: ' there' },
      { type: 'usage', inputTokens: 26, outputTokens: 3 },
      { type: 'done', finishReason: 'stop' },
    ]);
    const sent = fake.requests[0]!;
    assert.equal(sent.path, '/api/chat');
    assert.deepEqual(sent.body, {
      model: 'llama3.1',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Say hello' },
      ],
      stream: true,
      options: { temperature: 0.1, num_predict: 64, stop: ['END'] },
    });
  });

  it('asks for a whole answer when stream is false and yields the same events', async () => {
    fake = await startFakeOllama({ replies: [{ kind: 'answer', text: ['Hello', ' world'], doneReason: 'length', promptEvalCount: 9, evalCount: 2 }] });
    const events = await collect(new OllamaClient({ baseUrl: fake.url }).chat({ ...hello, stream: false }));
    assert.deepEqual(events, [
      { type: 'token', text: 'Hello world' },
      { type: 'usage', inputTokens: 9, outputTokens: 2 },
      { type: 'done', finishReason: 'length' },
    ]);
    assert.equal(fake.requests[0]!.body.stream, false);
  });

  it('yields tool calls with their object arguments as JSON text', async () => {
    fake = await startFakeOllama({
      replies: [
        {
          kind: 'answer',
          toolCalls: [
            { name: 'get_weather', arguments: { city: 'Toronto', days: [1, 2] } },
            { id: 'call_7', name: 'search', arguments: {} },
          ],
        },
      ],
    });
    const client = new OllamaClient({ baseUrl: fake.url });
    const request: ChatRequest = {
      ...hello,
      tools: [{ name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } }],
    };
    for (const stream of [true, false]) {
      const events = await collect(client.chat({ ...request, stream }));
      assert.deepEqual(
        events.filter((e) => e.type !== 'usage'),
        [
          { type: 'tool_call', call: { id: 'call_0', name: 'get_weather', arguments: '{"city":"Toronto","days":[1,2]}' } },
          { type: 'tool_call', call: { id: 'call_7', name: 'search', arguments: '{}' } },
          { type: 'done', finishReason: 'tool_calls' },
        ],
      );
    }
    assert.deepEqual(fake.requests[0]!.body.tools, [
      { type: 'function', function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } },
    ]);
  });

  it('sends tool history with object arguments and tool_name, and leaves tools out for toolChoice none', async () => {
    fake = await startFakeOllama();
    await collect(
      new OllamaClient({ baseUrl: fake.url }).chat({
        model: 'llama3.1',
        tools: [{ name: 'lookup', parameters: { type: 'object' } }],
        toolChoice: 'none',
        messages: [
          { role: 'user', content: 'look up 6' },
          { role: 'assistant', content: null, toolCalls: [{ id: 'call_1', name: 'lookup', arguments: '{"id":6}' }] },
          { role: 'tool', content: '{"found":false}', toolCallId: 'call_1', name: 'lookup' },
        ],
      }),
    );
    const body = fake.requests[0]!.body;
    assert.equal(body.tools, undefined);
    assert.deepEqual(body.messages.slice(1), [
      { role: 'assistant', content: '', tool_calls: [{ function: { name: 'lookup', arguments: { id: 6 } } }] },
      { role: 'tool', content: '{"found":false}', tool_name: 'lookup' },
    ]);
  });

  it('turns 429 with retry-after into a retryable PROVIDER_RATE_LIMITED', async () => {
    fake = await startFakeOllama({ replies: [{ kind: 'status', status: 429, headers: { 'retry-after': '3' } }] });
    const events = await collect(new OllamaClient({ baseUrl: fake.url }).chat(hello));
    assert.deepEqual(events, [
      {
        type: 'error',
        code: 'PROVIDER_RATE_LIMITED',
        message: 'the provider answered HTTP 429: fake error 429',
        retryable: true,
        status: 429,
        retryAfterMs: 3000,
        afterFirstToken: false,
      },
    ]);
  });

  it('turns 500 and a busy 503 into a retryable PROVIDER_UNAVAILABLE', async () => {
    fake = await startFakeOllama({
      replies: [
        { kind: 'status', status: 500 },
        { kind: 'status', status: 503, body: { error: 'server busy, please try again.  maximum pending requests exceeded' } },
      ],
    });
    const client = new OllamaClient({ baseUrl: fake.url });
    const [first] = await collect(client.chat(hello));
    assert.deepEqual(withoutMessage(first), {
      type: 'error',
      code: 'PROVIDER_UNAVAILABLE',
      message: undefined,
      retryable: true,
      status: 500,
      afterFirstToken: false,
    });
    const [second] = await collect(client.chat(hello));
    assert.match((second as { message: string }).message, /server busy/);
  });

  it("turns an unknown model (404) into PROVIDER_BAD_REQUEST with Ollama's message", async () => {
    fake = await startFakeOllama({ replies: [{ kind: 'status', status: 404, body: { error: 'model "nope" not found, try pulling it first' } }] });
    const [event] = await collect(new OllamaClient({ baseUrl: fake.url }).chat({ ...hello, model: 'nope' }));
    assert.equal((event as { code: string }).code, 'PROVIDER_BAD_REQUEST');
    assert.match((event as { message: string }).message, /try pulling it first/);
  });

  it('turns 401 from an authenticating proxy into PROVIDER_AUTH_FAILED and sends the bearer key', async () => {
    fake = await startFakeOllama({ apiKey: 'right' });
    const [event] = await collect(new OllamaClient({ baseUrl: fake.url, apiKey: 'wrong' }).chat(hello));
    assert.deepEqual(withoutMessage(event), {
      type: 'error',
      code: 'PROVIDER_AUTH_FAILED',
      message: undefined,
      retryable: false,
      status: 401,
      afterFirstToken: false,
    });
    const ok = await collect(new OllamaClient({ baseUrl: fake.url, apiKey: () => 'right' }).chat(hello));
    assert.equal(last(ok).type, 'done');
    assert.equal(fake.requests[1]!.headers.authorization, 'Bearer right');
  });

  it('reports a malformed line as PROVIDER_BAD_RESPONSE', async () => {
    fake = await startFakeOllama({ replies: [{ kind: 'malformed', text: ['ok'] }, { kind: 'malformed' }] });
    const client = new OllamaClient({ baseUrl: fake.url });
    const streamed = await collect(client.chat(hello));
    assert.deepEqual(tokens(streamed), ['ok']);
    assert.deepEqual(withoutMessage(last(streamed)), {
      type: 'error',
      code: 'PROVIDER_BAD_RESPONSE',
      message: undefined,
      retryable: false,
      afterFirstToken: true,
    });
    const whole = await collect(client.chat({ ...hello, stream: false }));
    assert.equal((whole[0] as { code: string }).code, 'PROVIDER_BAD_RESPONSE');
  });

  it('reports an error line in the stream as PROVIDER_UNAVAILABLE', async () => {
    fake = await startFakeOllama({ replies: [{ kind: 'streamError', error: 'llama runner process has terminated' }] });
    const events = await collect(new OllamaClient({ baseUrl: fake.url }).chat(hello));
    assert.deepEqual(events, [
      {
        type: 'error',
        code: 'PROVIDER_UNAVAILABLE',
        message: 'the provider reported: llama runner process has terminated',
        retryable: true,
        afterFirstToken: false,
      },
    ]);
  });

  it('lists /api/tags models with the configured metadata attached', async () => {
    fake = await startFakeOllama({ models: ['llama3.1:latest', 'qwen2.5-coder:7b'] });
    const client = new OllamaClient({ baseUrl: fake.url, models: [{ id: 'llama3.1', contextWindow: 8192, costPer1kInput: 0 }] });
    assert.deepEqual(await client.listModels(), [{ id: 'llama3.1:latest', contextWindow: 8192, costPer1kInput: 0 }, { id: 'qwen2.5-coder:7b' }]);
    assert.equal(fake.requests[0]!.path, '/api/tags');
  });

  it('rejects listModels with an AionError carrying the provider code', async () => {
    fake = await startFakeOllama({ apiKey: 'k' });
    await assert.rejects(
      new OllamaClient({ baseUrl: fake.url }).listModels(),
      (err: unknown) => err instanceof AionError && err.code === 'PROVIDER_AUTH_FAILED',
    );
  });
});

describe('provider-ollama extension', () => {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as ExtensionManifest;

  function activateWith(
    configuration: Record<string, unknown>,
    secrets: Record<string, string>,
  ): { implementation: ProviderImplementation; point: string; id: string } {
    let registered: { point: string; id: string; implementation: ProviderImplementation } | undefined;
    const binding = {
      extensionId: 'aion.provider-ollama',
      contributions: {
        register: (point: string, id: string, implementation: object) => {
          registered = { point, id, implementation: implementation as ProviderImplementation };
          return { dispose: () => undefined };
        },
      },
    } as unknown as ExtensionApiBinding;
    const context = {
      extension: { id: 'aion.provider-ollama', version: manifest.version, manifest },
      configuration: { get: (key?: string) => (key ? configuration[key] : configuration) },
      secrets: { get: async (name: string) => secrets[name] },
      subscriptions: [],
    } as unknown as ExtensionContext;
    runInExtensionContext(binding, () => activate(context));
    assert.ok(registered, 'activate registered an implementation');
    return registered;
  }

  let fake: FakeOllama | undefined;
  afterEach(async () => {
    await fake?.close();
    fake = undefined;
  });

  it('registers the providers entry its manifest declares, with the manifest models as metadata', async () => {
    fake = await startFakeOllama({ models: ['llama3.1:latest'] });
    const { point, id, implementation } = activateWith({ baseUrl: fake.url }, {});
    assert.equal(point, 'providers');
    assert.deepEqual(
      (manifest.contributes!.providers as Array<{ id: string }>).map((p) => p.id),
      [id],
    );
    assert.deepEqual(Object.keys(implementation).sort(), ['chat', 'complete', 'configuredModels', 'embed', 'listModels']);
    const token = new CancellationTokenSource().token;
    assert.equal((await implementation.listModels(token))[0]!.contextWindow, 8192);
    assert.equal(last(await collect(implementation.chat(hello, token))).type, 'done');
    assert.equal(fake.requests[1]!.headers.authorization, undefined, 'no key unless apiKeySecret is set');
  });

  it('sends the configured secret as a bearer token', async () => {
    fake = await startFakeOllama({ apiKey: 'proxy-token' });
    const { implementation } = activateWith({ baseUrl: fake.url, apiKeySecret: 'OLLAMA_API_KEY' }, { OLLAMA_API_KEY: 'proxy-token' });
    assert.equal(last(await collect(implementation.chat(hello, new CancellationTokenSource().token))).type, 'done');
  });
});
