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
import { retryAfterMs, type ChatRequest, type ProviderEvent, type ProviderImplementation } from '@aion/provider-kit';
import { OpenAIClient } from '../src/client.js';
import { activate } from '../src/extension.js';
import { startFakeOpenAI, type FakeOpenAI } from '../src/testing.js';
import { collect, fakeEmbedding, last, tokens } from '@aion/provider-kit/testing';

const hello: ChatRequest = {
  model: 'gpt-4o-mini',
  messages: [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Say hello' },
  ],
};

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms))]);
}

describe('provider-openai client', () => {
  let fake: FakeOpenAI | undefined;
  afterEach(async () => {
    await fake?.close();
    fake = undefined;
  });

  it('streams tokens in order, then usage, then done', async () => {
    fake = await startFakeOpenAI({
      apiKey: 'sk-test',
      replies: [{ kind: 'answer', text: ['Hel', 'lo', ' there'], usage: { prompt_tokens: 12, completion_tokens: 3 } }],
    });
    const client = new OpenAIClient({ baseUrl: fake.url, apiKey: 'sk-test' });
    const events = await collect(client.chat({ ...hello, temperature: 0.2, maxTokens: 50, stop: ['\n\n'] }));
    assert.deepEqual(events, [
      { type: 'token', text: 'Hel' },
      { type: 'token', text: 'lo' },
      { type: 'token', text: ' there' },
      { type: 'usage', inputTokens: 12, outputTokens: 3 },
      { type: 'done', finishReason: 'stop' },
    ]);
    const sent = fake.requests[0]!;
    assert.equal(sent.path, '/v1/chat/completions');
    assert.equal(sent.headers.authorization, 'Bearer sk-test');
    assert.deepEqual(sent.body, {
      model: 'gpt-4o-mini',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Say hello' },
      ],
      stream: true,
      stream_options: { include_usage: true },
      temperature: 0.2,
      max_tokens: 50,
      stop: ['\n\n'],
    });
  });

  it('embeds inputs in order (POST /embeddings, floats), with dimensions and usage; a 429 rejects with PROVIDER_RATE_LIMITED', async () => {
    fake = await startFakeOpenAI({ apiKey: 'sk-test' });
    const client = new OpenAIClient({ baseUrl: fake.url, apiKey: 'sk-test' });
    const answer = await client.embed({ model: 'text-embedding-3-small', input: ['one', 'three'], dimensions: 3 });
    assert.deepEqual(answer, { embeddings: [fakeEmbedding('one', 3), fakeEmbedding('three', 3)], inputTokens: 3 });
    assert.deepEqual(fake.requests[0]!.body, { model: 'text-embedding-3-small', input: ['one', 'three'], encoding_format: 'float', dimensions: 3 });
    assert.equal(fake.requests[0]!.path, '/v1/embeddings');
    await assert.rejects(
      client.embed({ model: 'text-embedding-3-small', input: ['[openai:429]'] }),
      (e: unknown) => e instanceof AionError && e.code === 'PROVIDER_RATE_LIMITED' && e.httpStatus === 429,
    );
    await assert.rejects(
      client.embed({ model: 'text-embedding-3-small', input: [] }),
      (e: unknown) => e instanceof AionError && e.code === 'PROVIDER_BAD_REQUEST',
    );
  });

  it('calls the non-streaming endpoint when stream is false and yields the same events', async () => {
    fake = await startFakeOpenAI({
      replies: [{ kind: 'answer', text: ['Hello', ' world'], finishReason: 'length', usage: { prompt_tokens: 7, completion_tokens: 2 } }],
    });
    const client = new OpenAIClient({ baseUrl: fake.url, maxTokensParameter: 'max_completion_tokens' });
    const events = await collect(client.chat({ ...hello, stream: false, maxTokens: 2 }));
    assert.deepEqual(events, [
      { type: 'token', text: 'Hello world' },
      { type: 'usage', inputTokens: 7, outputTokens: 2 },
      { type: 'done', finishReason: 'length' },
    ]);
    assert.equal(fake.requests[0]!.body.stream, false);
    assert.equal(fake.requests[0]!.body.stream_options, undefined);
    assert.equal(fake.requests[0]!.body.max_completion_tokens, 2);
    assert.equal(fake.requests[0]!.headers.authorization, undefined, 'no key configured: no Authorization header');
  });

  it('assembles streamed tool-call fragments before yielding them', async () => {
    const args0 = JSON.stringify({ city: 'Zürich', unit: 'celsius', days: [1, 2, 3] });
    const args1 = JSON.stringify({ query: 'weather "today"' });
    fake = await startFakeOpenAI({
      argumentFragments: 5,
      replies: [
        {
          kind: 'answer',
          toolCalls: [
            { id: 'call_a', name: 'get_weather', arguments: args0 },
            { id: 'call_b', name: 'search', arguments: args1 },
          ],
        },
      ],
    });
    const client = new OpenAIClient({ baseUrl: fake.url });
    const request: ChatRequest = {
      ...hello,
      tools: [
        { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
        { name: 'search', parameters: { type: 'object' } },
      ],
      toolChoice: { name: 'get_weather' },
    };
    const events = await collect(client.chat(request));
    assert.deepEqual(
      events.filter((e) => e.type !== 'usage'),
      [
        { type: 'tool_call', call: { id: 'call_a', name: 'get_weather', arguments: args0 } },
        { type: 'tool_call', call: { id: 'call_b', name: 'search', arguments: args1 } },
        { type: 'done', finishReason: 'tool_calls' },
      ],
    );
    assert.equal(events.at(-2)!.type, 'usage');
    const body = fake.requests[0]!.body;
    assert.deepEqual(body.tools[0], {
      type: 'function',
      function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
    });
    assert.deepEqual(body.tool_choice, { type: 'function', function: { name: 'get_weather' } });
  });

  it('yields tool calls of a whole answer and sends tool history in OpenAI form', async () => {
    fake = await startFakeOpenAI({ replies: [{ kind: 'answer', toolCalls: [{ id: 'call_x', name: 'lookup', arguments: '{"id":7}' }] }] });
    const client = new OpenAIClient({ baseUrl: fake.url });
    const events = await collect(
      client.chat({
        model: 'gpt-4o-mini',
        stream: false,
        toolChoice: 'required',
        messages: [
          { role: 'user', content: 'look up 6' },
          { role: 'assistant', content: null, toolCalls: [{ id: 'call_1', name: 'lookup', arguments: '{"id":6}' }] },
          { role: 'tool', content: '{"found":false}', toolCallId: 'call_1', name: 'lookup' },
        ],
      }),
    );
    assert.deepEqual(events[0], { type: 'tool_call', call: { id: 'call_x', name: 'lookup', arguments: '{"id":7}' } });
    assert.deepEqual(last(events), { type: 'done', finishReason: 'tool_calls' });
    const body = fake.requests[0]!.body;
    assert.equal(body.tool_choice, 'required');
    assert.deepEqual(body.messages.slice(1), [
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'lookup', arguments: '{"id":6}' } }] },
      { role: 'tool', content: '{"found":false}', tool_call_id: 'call_1' },
    ]);
  });

  it('turns 429 with retry-after into a retryable PROVIDER_RATE_LIMITED', async () => {
    fake = await startFakeOpenAI({ replies: [{ kind: 'status', status: 429, headers: { 'retry-after': '2' } }] });
    const events = await collect(new OpenAIClient({ baseUrl: fake.url }).chat(hello));
    assert.equal(events.length, 1);
    assert.deepEqual(events[0], {
      type: 'error',
      code: 'PROVIDER_RATE_LIMITED',
      message: 'the provider answered HTTP 429: fake error 429',
      retryable: true,
      status: 429,
      retryAfterMs: 2000,
      afterFirstToken: false,
    });
  });

  it('reads retry-after-ms first, then retry-after as seconds or an HTTP date', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    assert.equal(retryAfterMs({ 'retry-after-ms': '1500', 'retry-after': '9' }, now), 1500);
    assert.equal(retryAfterMs({ 'retry-after': '0.5' }, now), 500);
    assert.equal(retryAfterMs({ 'retry-after': 'Wed, 01 Jan 2025 00:00:30 GMT' }, now), 30_000);
    assert.equal(retryAfterMs({ 'retry-after': 'Tue, 31 Dec 2024 00:00:00 GMT' }, now), 0);
    assert.equal(retryAfterMs({ 'retry-after': 'soon' }, now), undefined);
    assert.equal(retryAfterMs({}, now), undefined);
  });

  it('turns 500 into a retryable PROVIDER_UNAVAILABLE', async () => {
    fake = await startFakeOpenAI({
      replies: [{ kind: 'status', status: 500, body: { error: { message: 'The server had an error while processing your request.', type: 'server_error' } } }],
    });
    const [event] = await collect(new OpenAIClient({ baseUrl: fake.url }).chat(hello));
    assert.equal(event!.type, 'error');
    assert.equal((event as { code: string }).code, 'PROVIDER_UNAVAILABLE');
    assert.equal((event as { retryable: boolean }).retryable, true);
    assert.equal((event as { status: number }).status, 500);
    assert.match((event as { message: string }).message, /server had an error/);
  });

  it('turns 401 into PROVIDER_AUTH_FAILED', async () => {
    fake = await startFakeOpenAI({ apiKey: 'sk-right' });
    const [event] = await collect(new OpenAIClient({ baseUrl: fake.url, apiKey: 'sk-wrong' }).chat(hello));
    assert.deepEqual(
      { ...event, message: undefined },
      { type: 'error', code: 'PROVIDER_AUTH_FAILED', message: undefined, retryable: false, status: 401, afterFirstToken: false },
    );
    assert.match((event as { message: string }).message, /Incorrect API key/);
  });

  it('does not count a slow consumer against timeoutMs', async () => {
    fake = await startFakeOpenAI({ replies: [{ kind: 'answer', text: ['a', 'b', 'c'] }] });
    const events: ProviderEvent[] = [];
    for await (const event of new OpenAIClient({ baseUrl: fake.url, timeoutMs: 150 }).chat(hello)) {
      events.push(event);
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.deepEqual(tokens(events), ['a', 'b', 'c']);
    assert.deepEqual(last(events), { type: 'done', finishReason: 'stop' });
  });

  it('reports a malformed chunk as PROVIDER_BAD_RESPONSE', async () => {
    fake = await startFakeOpenAI({ replies: [{ kind: 'malformed', text: ['ok'] }, { kind: 'malformed' }] });
    const client = new OpenAIClient({ baseUrl: fake.url });
    const streamed = await collect(client.chat(hello));
    assert.deepEqual(tokens(streamed), ['ok']);
    assert.equal((last(streamed) as { code: string }).code, 'PROVIDER_BAD_RESPONSE');
    assert.equal((last(streamed) as { afterFirstToken: boolean }).afterFirstToken, true);
    const whole = await collect(client.chat({ ...hello, stream: false }));
    assert.deepEqual(
      { ...whole[0], message: undefined },
      { type: 'error', code: 'PROVIDER_BAD_RESPONSE', message: undefined, retryable: false, afterFirstToken: false },
    );
  });

  it('sends nothing when the token is already cancelled', async () => {
    fake = await startFakeOpenAI();
    const source = new CancellationTokenSource();
    source.cancel();
    const events = await collect(new OpenAIClient({ baseUrl: fake.url }).chat(hello, source.token));
    assert.equal((events[0] as { code: string }).code, 'CANCELLED');
    assert.equal(fake.requests.length, 0);
  });

  it('closes the upstream connection when the consumer stops iterating', async () => {
    fake = await startFakeOpenAI({ chunkDelayMs: 50, replies: [{ kind: 'answer', text: Array.from({ length: 50 }, () => 'x') }] });
    for await (const event of new OpenAIClient({ baseUrl: fake.url }).chat(hello)) {
      if (event.type === 'token') break;
    }
    await within(fake.requests[0]!.disconnected, 1_000, 'the server seeing the connection close');
  });

  it('refuses a request without messages without calling the server', async () => {
    fake = await startFakeOpenAI();
    const [event] = await collect(new OpenAIClient({ baseUrl: fake.url }).chat({ model: 'gpt-4o-mini', messages: [] }));
    assert.equal((event as { code: string }).code, 'PROVIDER_BAD_REQUEST');
    assert.equal(fake.requests.length, 0);
  });

  it('calls Azure deployment paths with the api-key header', async () => {
    fake = await startFakeOpenAI({
      apiKey: 'azure-key',
      azure: { deployment: 'prod-mini', apiVersion: '2024-10-21' },
      replies: [{ kind: 'answer', text: ['Hi', '!'] }],
    });
    const client = new OpenAIClient({
      baseUrl: `${fake.origin}/`,
      apiKey: async () => 'azure-key',
      azure: { deployment: 'prod-mini', apiVersion: '2024-10-21' },
    });
    const events = await collect(client.chat(hello));
    assert.deepEqual(tokens(events), ['Hi', '!']);
    assert.deepEqual(last(events), { type: 'done', finishReason: 'stop' });
    const sent = fake.requests[0]!;
    assert.equal(sent.path, '/openai/deployments/prod-mini/chat/completions');
    assert.deepEqual(sent.query, { 'api-version': '2024-10-21' });
    assert.equal(sent.headers['api-key'], 'azure-key');
    assert.equal(sent.headers.authorization, undefined);
  });

  it('uses the model as the Azure deployment when none is configured', async () => {
    fake = await startFakeOpenAI({ azure: { deployment: 'gpt-4o-mini', apiVersion: '2024-10-21' } });
    const events = await collect(new OpenAIClient({ baseUrl: fake.origin, azure: {} }).chat(hello));
    assert.equal(last(events).type, 'done');
    assert.equal(fake.requests[0]!.path, '/openai/deployments/gpt-4o-mini/chat/completions');
  });

  it('lists the server models with the configured metadata attached', async () => {
    fake = await startFakeOpenAI({ apiKey: 'k', models: ['gpt-4o-mini', 'ft:custom'] });
    const client = new OpenAIClient({ baseUrl: fake.url, apiKey: 'k', models: [{ id: 'gpt-4o-mini', contextWindow: 128000, tools: true }] });
    assert.deepEqual(await client.listModels(), [{ id: 'gpt-4o-mini', contextWindow: 128000, tools: true }, { id: 'ft:custom' }]);
    assert.equal(fake.requests[0]!.path, '/v1/models');
    assert.equal(fake.requests[0]!.headers.authorization, 'Bearer k');
  });

  it('rejects listModels with an AionError carrying the provider code', async () => {
    fake = await startFakeOpenAI({ apiKey: 'k' });
    await assert.rejects(new OpenAIClient({ baseUrl: fake.url }).listModels(), (err: unknown) => {
      assert.ok(err instanceof AionError);
      assert.equal(err.code, 'PROVIDER_AUTH_FAILED');
      assert.deepEqual(err.details, { retryable: false, status: 401, retryAfterMs: undefined });
      return true;
    });
  });

  it('lists the configured deployment for Azure without calling the server', async () => {
    const client = new OpenAIClient({ baseUrl: 'http://127.0.0.1:9', azure: { deployment: 'prod-mini' }, models: [{ id: 'gpt-4o-mini' }] });
    assert.deepEqual(await client.listModels(), [{ id: 'gpt-4o-mini' }, { id: 'prod-mini' }]);
  });
});

describe('provider-openai extension', () => {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as ExtensionManifest;

  function activateWith(
    configuration: Record<string, unknown>,
    secrets: Record<string, string>,
  ): { implementation: ProviderImplementation; point: string; id: string } {
    let registered: { point: string; id: string; implementation: ProviderImplementation } | undefined;
    const refuse = () => {
      throw new Error('not used by this extension');
    };
    const binding = {
      extensionId: 'aion.provider-openai',
      contributions: {
        register: (point: string, id: string, implementation: object) => {
          registered = { point, id, implementation: implementation as ProviderImplementation };
          return { dispose: () => undefined };
        },
        get: refuse,
        list: refuse,
      },
    } as unknown as ExtensionApiBinding;
    const context = {
      extension: { id: 'aion.provider-openai', version: manifest.version, manifest },
      extensionPath: '.',
      storagePath: '.',
      configuration: { get: (key?: string) => (key ? configuration[key] : configuration) },
      secrets: { get: async (name: string) => secrets[name] },
      logger: console,
      subscriptions: [],
    } as unknown as ExtensionContext;
    runInExtensionContext(binding, () => activate(context));
    assert.ok(registered, 'activate registered an implementation');
    return registered;
  }

  let fake: FakeOpenAI | undefined;
  afterEach(async () => {
    await fake?.close();
    fake = undefined;
  });

  it('registers the providers entry its manifest declares', () => {
    const { point, id, implementation } = activateWith({}, {});
    assert.equal(point, 'providers');
    assert.deepEqual(
      (manifest.contributes!.providers as Array<{ id: string }>).map((p) => p.id),
      [id],
    );
    assert.deepEqual(Object.keys(implementation).sort(), ['chat', 'complete', 'configuredModels', 'embed', 'listModels']);
  });

  it('reads the API key from the configured secret on each call', async () => {
    fake = await startFakeOpenAI({ apiKey: 'sk-from-secret', models: ['gpt-4o-mini', 'gpt-4o'] });
    const secrets: Record<string, string> = { OPENAI_API_KEY: 'sk-from-secret' };
    const { implementation } = activateWith({ baseUrl: fake.url }, secrets);
    const source = new CancellationTokenSource();
    assert.equal(last(await collect(implementation.chat(hello, source.token))).type, 'done');
    const models = await implementation.listModels(source.token);
    assert.deepEqual(
      models.map((m) => [m.id, m.costPer1kInput]),
      [
        ['gpt-4o-mini', 0.00015],
        ['gpt-4o', 0.0025],
      ],
      'manifest metadata is attached',
    );
    secrets.OPENAI_API_KEY = 'sk-rotated';
    assert.equal((last(await collect(implementation.chat(hello, source.token))) as { code: string }).code, 'PROVIDER_AUTH_FAILED');
  });

  it('sends no key when apiKeySecret is empty', async () => {
    fake = await startFakeOpenAI();
    const { implementation } = activateWith({ baseUrl: fake.url, apiKeySecret: '' }, { OPENAI_API_KEY: 'unused' });
    await collect(implementation.chat(hello, new CancellationTokenSource().token));
    assert.equal(fake.requests[0]!.headers.authorization, undefined);
  });
});
