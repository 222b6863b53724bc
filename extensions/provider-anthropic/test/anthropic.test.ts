import assert from 'node:assert/strict';
import { collect, last, tokens } from '@aion/provider-kit/testing';
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
import { AnthropicClient } from '../src/client.js';
import { activate } from '../src/extension.js';
import { startFakeAnthropic, type FakeAnthropic } from '../src/testing.js';

const hello: ChatRequest = {
  model: 'claude-sonnet-4-5',
  messages: [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Say hello' },
  ],
};

const withoutMessage = (event: ProviderEvent | undefined) => ({ ...event, message: undefined });

describe('provider-anthropic client', () => {
  let fake: FakeAnthropic | undefined;
  afterEach(async () => {
    await fake?.close();
    fake = undefined;
  });

  it('streams text deltas in order, then usage, then done, with the system prompt hoisted', async () => {
    fake = await startFakeAnthropic({ apiKey: 'sk-ant', replies: [{ kind: 'answer', text: ['Hel', 'lo', ' there'], inputTokens: 25, outputTokens: 3 }] });
    const client = new AnthropicClient({ baseUrl: fake.url, apiKey: 'sk-ant' });
    const events = await collect(client.chat({ ...hello, temperature: 0.3, stop: ['END'] }));
    assert.deepEqual(events, [
      { type: 'token', text: 'Hel' },
      { type: 'token', text: 'lo' },
      { type: 'token', text: ' there' },
      { type: 'usage', inputTokens: 25, outputTokens: 3 },
      { type: 'done', finishReason: 'stop' },
    ]);
    const sent = fake.requests[0]!;
    assert.equal(sent.path, '/v1/messages');
    assert.equal(sent.headers['x-api-key'], 'sk-ant');
    assert.equal(sent.headers['anthropic-version'], '2023-06-01');
    assert.deepEqual(sent.body, {
      model: 'claude-sonnet-4-5',
      max_tokens: 4096,
      system: 'Be brief.',
      messages: [{ role: 'user', content: 'Say hello' }],
      stream: true,
      temperature: 0.3,
      stop_sequences: ['END'],
    });
  });

  it('asks for a whole message when stream is false and yields the same events', async () => {
    fake = await startFakeAnthropic({ replies: [{ kind: 'answer', text: ['Hello', ' world'], stopReason: 'max_tokens', inputTokens: 9, outputTokens: 2 }] });
    const events = await collect(
      new AnthropicClient({ baseUrl: fake.url, apiKey: 'k', defaultMaxTokens: 100 }).chat({ ...hello, stream: false, maxTokens: 2 }),
    );
    assert.deepEqual(events, [
      { type: 'token', text: 'Hello world' },
      { type: 'usage', inputTokens: 9, outputTokens: 2 },
      { type: 'done', finishReason: 'length' },
    ]);
    assert.equal(fake.requests[0]!.body.stream, false);
    assert.equal(fake.requests[0]!.body.max_tokens, 2);
  });

  it('assembles input_json_delta fragments into complete tool calls', async () => {
    const input = { city: 'Zürich', unit: 'celsius', days: [1, 2, 3] };
    fake = await startFakeAnthropic({
      inputFragments: 6,
      replies: [
        {
          kind: 'answer',
          text: ['Let me check.'],
          toolUses: [
            { id: 'toolu_1', name: 'get_weather', input },
            { id: 'toolu_2', name: 'now', input: {} },
          ],
        },
      ],
    });
    const client = new AnthropicClient({ baseUrl: fake.url, apiKey: 'k' });
    const request: ChatRequest = {
      ...hello,
      tools: [{ name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } }],
      toolChoice: 'required',
    };
    for (const stream of [true, false]) {
      const events = await collect(client.chat({ ...request, stream }));
      assert.deepEqual(
        events.filter((e) => e.type !== 'usage'),
        [
          { type: 'token', text: 'Let me check.' },
          { type: 'tool_call', call: { id: 'toolu_1', name: 'get_weather', arguments: JSON.stringify(input) } },
          { type: 'tool_call', call: { id: 'toolu_2', name: 'now', arguments: '{}' } },
          { type: 'done', finishReason: 'tool_calls' },
        ],
      );
    }
    const body = fake.requests[0]!.body;
    assert.deepEqual(body.tools, [{ name: 'get_weather', description: 'Weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }]);
    assert.deepEqual(body.tool_choice, { type: 'any' });
  });

  it('sends tool calls as tool_use blocks and tool results as tool_result blocks of one user turn', async () => {
    fake = await startFakeAnthropic();
    await collect(
      new AnthropicClient({ baseUrl: fake.url, apiKey: 'k' }).chat({
        model: 'claude-sonnet-4-5',
        toolChoice: { name: 'lookup' },
        messages: [
          { role: 'system', content: 'You look things up.' },
          { role: 'user', content: 'look up 6 and 7' },
          {
            role: 'assistant',
            content: 'Looking.',
            toolCalls: [
              { id: 'toolu_a', name: 'lookup', arguments: '{"id":6}' },
              { id: 'toolu_b', name: 'lookup', arguments: '{"id":7}' },
            ],
          },
          { role: 'tool', content: '{"found":false}', toolCallId: 'toolu_a', name: 'lookup' },
          { role: 'tool', content: '{"found":true}', toolCallId: 'toolu_b', name: 'lookup' },
          { role: 'user', content: 'And?' },
        ],
      }),
    );
    const body = fake.requests[0]!.body;
    assert.equal(body.system, 'You look things up.');
    assert.deepEqual(body.tool_choice, { type: 'tool', name: 'lookup' });
    assert.deepEqual(body.messages, [
      { role: 'user', content: 'look up 6 and 7' },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Looking.' },
          { type: 'tool_use', id: 'toolu_a', name: 'lookup', input: { id: 6 } },
          { type: 'tool_use', id: 'toolu_b', name: 'lookup', input: { id: 7 } },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'toolu_a', content: '{"found":false}' },
          { type: 'tool_result', tool_use_id: 'toolu_b', content: '{"found":true}' },
          { type: 'text', text: 'And?' },
        ],
      },
    ]);
  });

  it('turns 429 with retry-after into a retryable PROVIDER_RATE_LIMITED', async () => {
    fake = await startFakeAnthropic({ replies: [{ kind: 'status', status: 429, headers: { 'retry-after': '7' } }] });
    const events = await collect(new AnthropicClient({ baseUrl: fake.url, apiKey: 'k' }).chat(hello));
    assert.deepEqual(events, [
      {
        type: 'error',
        code: 'PROVIDER_RATE_LIMITED',
        message: 'the provider answered HTTP 429: fake error 429',
        retryable: true,
        status: 429,
        retryAfterMs: 7000,
        afterFirstToken: false,
      },
    ]);
  });

  it('turns 500 and 529 (overloaded) into a retryable PROVIDER_UNAVAILABLE', async () => {
    fake = await startFakeAnthropic({
      replies: [
        { kind: 'status', status: 500 },
        { kind: 'status', status: 529 },
      ],
    });
    const client = new AnthropicClient({ baseUrl: fake.url, apiKey: 'k' });
    for (const status of [500, 529]) {
      const [event] = await collect(client.chat(hello));
      assert.deepEqual(withoutMessage(event), {
        type: 'error',
        code: 'PROVIDER_UNAVAILABLE',
        message: undefined,
        retryable: true,
        status,
        afterFirstToken: false,
      });
    }
  });

  it('turns an overloaded_error event in the stream into PROVIDER_UNAVAILABLE, retryable only before output', async () => {
    fake = await startFakeAnthropic({ replies: [{ kind: 'streamError' }, { kind: 'streamError', text: ['partial'] }] });
    const client = new AnthropicClient({ baseUrl: fake.url, apiKey: 'k' });
    assert.deepEqual(await collect(client.chat(hello)), [
      { type: 'error', code: 'PROVIDER_UNAVAILABLE', message: 'the provider reported overloaded_error: Overloaded', retryable: true, afterFirstToken: false },
    ]);
    const after = await collect(client.chat(hello));
    assert.deepEqual(tokens(after), ['partial']);
    assert.deepEqual(withoutMessage(last(after)), { type: 'error', code: 'PROVIDER_UNAVAILABLE', message: undefined, retryable: false, afterFirstToken: true });
  });

  it('turns 401 into PROVIDER_AUTH_FAILED, and a missing key into the same without a request', async () => {
    fake = await startFakeAnthropic({ apiKey: 'right' });
    const [refused] = await collect(new AnthropicClient({ baseUrl: fake.url, apiKey: 'wrong' }).chat(hello));
    assert.deepEqual(withoutMessage(refused), {
      type: 'error',
      code: 'PROVIDER_AUTH_FAILED',
      message: undefined,
      retryable: false,
      status: 401,
      afterFirstToken: false,
    });
    assert.match((refused as { message: string }).message, /invalid x-api-key/);
    const [missing] = await collect(new AnthropicClient({ baseUrl: fake.url }).chat(hello));
    assert.deepEqual(missing, { type: 'error', code: 'PROVIDER_AUTH_FAILED', message: 'no API key is configured', retryable: false, afterFirstToken: false });
    assert.equal(fake.requests.length, 1);
  });

  it('turns a bad request into PROVIDER_BAD_REQUEST with the vendor message', async () => {
    fake = await startFakeAnthropic({
      replies: [
        {
          kind: 'status',
          status: 400,
          body: { type: 'error', error: { type: 'invalid_request_error', message: 'messages.0.content: Input should be a valid list' } },
        },
      ],
    });
    const [event] = await collect(new AnthropicClient({ baseUrl: fake.url, apiKey: 'k' }).chat(hello));
    assert.equal((event as { code: string }).code, 'PROVIDER_BAD_REQUEST');
    assert.match((event as { message: string }).message, /Input should be a valid list/);
  });

  it('reports a malformed event as PROVIDER_BAD_RESPONSE', async () => {
    fake = await startFakeAnthropic({ replies: [{ kind: 'malformed', text: ['ok'] }, { kind: 'malformed' }] });
    const client = new AnthropicClient({ baseUrl: fake.url, apiKey: 'k' });
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

  it('lists every page of /v1/models with display names and configured metadata', async () => {
    fake = await startFakeAnthropic({ modelsPageSize: 2, models: ['claude-sonnet-4-5', 'claude-haiku-4-5', 'claude-opus-4-1'] });
    const client = new AnthropicClient({ baseUrl: fake.url, apiKey: 'k', models: [{ id: 'claude-haiku-4-5', contextWindow: 200000 }] });
    const models = await client.listModels();
    assert.deepEqual(
      models.map((m) => [m.id, m.contextWindow]),
      [
        ['claude-sonnet-4-5', undefined],
        ['claude-haiku-4-5', 200000],
        ['claude-opus-4-1', undefined],
      ],
    );
    assert.equal(models[0]!.displayName, 'Claude sonnet 4 5');
    assert.deepEqual(
      fake.requests.map((r) => r.query.after_id),
      [undefined, 'claude-haiku-4-5'],
    );
  });

  it('rejects listModels with an AionError carrying the provider code', async () => {
    fake = await startFakeAnthropic({ apiKey: 'k' });
    await assert.rejects(
      new AnthropicClient({ baseUrl: fake.url, apiKey: 'x' }).listModels(),
      (err: unknown) => err instanceof AionError && err.code === 'PROVIDER_AUTH_FAILED',
    );
  });
});

describe('provider-anthropic extension', () => {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as ExtensionManifest;

  function activateWith(
    configuration: Record<string, unknown>,
    secrets: Record<string, string>,
  ): { implementation: ProviderImplementation; point: string; id: string } {
    let registered: { point: string; id: string; implementation: ProviderImplementation } | undefined;
    const binding = {
      extensionId: 'aion.provider-anthropic',
      contributions: {
        register: (point: string, id: string, implementation: object) => {
          registered = { point, id, implementation: implementation as ProviderImplementation };
          return { dispose: () => undefined };
        },
      },
    } as unknown as ExtensionApiBinding;
    const context = {
      extension: { id: 'aion.provider-anthropic', version: manifest.version, manifest },
      configuration: { get: (key?: string) => (key ? configuration[key] : configuration) },
      secrets: { get: async (name: string) => secrets[name] },
      subscriptions: [],
    } as unknown as ExtensionContext;
    runInExtensionContext(binding, () => activate(context));
    assert.ok(registered, 'activate registered an implementation');
    return registered;
  }

  let fake: FakeAnthropic | undefined;
  afterEach(async () => {
    await fake?.close();
    fake = undefined;
  });

  it('registers the providers entry its manifest declares and reads ANTHROPIC_API_KEY', async () => {
    fake = await startFakeAnthropic({ apiKey: 'sk-ant-secret', models: ['claude-sonnet-4-5'] });
    const { point, id, implementation } = activateWith({ baseUrl: fake.url }, { ANTHROPIC_API_KEY: 'sk-ant-secret' });
    assert.equal(point, 'providers');
    assert.deepEqual(
      (manifest.contributes!.providers as Array<{ id: string }>).map((p) => p.id),
      [id],
    );
    assert.deepEqual(Object.keys(implementation).sort(), ['chat', 'complete', 'configuredModels', 'listModels']);
    const token = new CancellationTokenSource().token;
    assert.equal(last(await collect(implementation.chat(hello, token))).type, 'done');
    assert.equal((await implementation.listModels(token))[0]!.costPer1kInput, 0.003, 'manifest metadata is attached');
  });

  it('names the missing secret instead of calling the API', async () => {
    fake = await startFakeAnthropic();
    const { implementation } = activateWith({ baseUrl: fake.url }, {});
    const [event] = await collect(implementation.chat(hello, new CancellationTokenSource().token));
    assert.deepEqual(event, {
      type: 'error',
      code: 'PROVIDER_AUTH_FAILED',
      message: 'the API key could not be read: the secret ANTHROPIC_API_KEY is not set',
      retryable: false,
      afterFirstToken: false,
    });
    assert.equal(fake.requests.length, 0);
  });
});
