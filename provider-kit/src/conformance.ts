/**
 * The provider conformance suite: the behaviour every model provider owes the router, written once.
 * A provider's test file describes how to start its vendor's fake server and make its client, then
 * calls `describeProviderConformance`; mocha runs the scenarios below against it.
 */
import assert from 'node:assert/strict';
import { CancellationTokenSource, type CancellationToken } from '@aion/extension-api';
import type { CommonFakeReply, FakeServer } from './fakeServer.js';
import type { ChatRequest, ProviderEvent } from './types.js';

/** What the scenarios ask a fake vendor server to answer; each provider maps it to its vendor's reply. */
export type ConformanceReply =
  /** A normal answer streamed one piece per chunk (one whole message when the request does not stream). */
  | { kind: 'answer'; text: string[] }
  /** One tool call with these JSON arguments. */
  | { kind: 'toolCall'; id: string; name: string; arguments: Record<string, unknown> }
  /** These pieces, then a chunk that is not valid for the vendor's format. */
  | { kind: 'malformed'; text: string[] }
  | CommonFakeReply;

export interface ConformanceSubject {
  /** The provider's name in the tests' titles, e.g. `provider-openai`. */
  name: string;
  /** A model id the client sends. */
  model: string;
  /** Starts the vendor's fake server answering `replies` in order (the last one repeats). */
  start(replies: ConformanceReply[], options?: { apiKey?: string; chunkDelayMs?: number }): Promise<FakeServer>;
  /** The provider's client against `baseUrl` (the fake's `url`). */
  client(options: { baseUrl: string; apiKey?: string; timeoutMs?: number }): {
    chat(request: ChatRequest, token?: CancellationToken): AsyncIterable<ProviderEvent>;
    /** A whole answer at once, when the provider offers it (every provider-kit client does). */
    complete?(request: ChatRequest, token?: CancellationToken): Promise<ProviderEvent[]>;
  };
}

/** Every event of a chat, in order. */
export async function collect(events: AsyncIterable<ProviderEvent>): Promise<ProviderEvent[]> {
  const out: ProviderEvent[] = [];
  for await (const event of events) out.push(event);
  return out;
}

/** The text of the `token` events. */
export const tokens = (events: ProviderEvent[]) => events.flatMap((e) => (e.type === 'token' ? [e.text] : []));
export const last = (events: ProviderEvent[]) => events[events.length - 1]!;
const errorOf = (events: ProviderEvent[]) => {
  const event = last(events);
  assert.equal(event.type, 'error', `the last event is an error: ${JSON.stringify(events)}`);
  return event as Extract<ProviderEvent, { type: 'error' }>;
};

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms))]);
}

/** Registers the conformance scenarios with mocha (call it at the top level of a test file). */
export function describeProviderConformance(subject: ConformanceSubject): void {
  describe(`${subject.name}: provider conformance`, function () {
    this.timeout(20_000);
    let fake: FakeServer | undefined;
    const hello = (extra: Partial<ChatRequest> = {}): ChatRequest => ({ model: subject.model, messages: [{ role: 'user', content: 'Say hello' }], ...extra });
    const start = async (replies: ConformanceReply[], options?: { apiKey?: string; chunkDelayMs?: number }) => (fake = await subject.start(replies, options));
    afterEach(async () => {
      await fake?.close();
      fake = undefined;
    });

    it('streams tokens in order, then done', async () => {
      const server = await start([{ kind: 'answer', text: ['Hel', 'lo', ' there'] }]);
      const events = await collect(subject.client({ baseUrl: server.url }).chat(hello()));
      assert.deepEqual(tokens(events), ['Hel', 'lo', ' there']);
      assert.deepEqual(last(events), { type: 'done', finishReason: 'stop' });
    });

    it('answers a whole (non-streamed) request with the same events', async () => {
      const server = await start([{ kind: 'answer', text: ['Hel', 'lo'] }]);
      const events = await collect(subject.client({ baseUrl: server.url }).chat(hello({ stream: false })));
      assert.equal(tokens(events).join(''), 'Hello');
      assert.deepEqual(last(events), { type: 'done', finishReason: 'stop' });
    });

    it('answers a whole request at once with complete(): the events chat gives for it, tool calls included', async function () {
      const server = await start([
        { kind: 'answer', text: ['Hel', 'lo'] },
        { kind: 'answer', text: ['Hel', 'lo'] },
        { kind: 'toolCall', id: 'call_1', name: 'lookup', arguments: { q: 'x' } },
      ]);
      const client = subject.client({ baseUrl: server.url });
      if (!client.complete) this.skip();
      const whole = await client.complete!(hello());
      assert.deepEqual(whole, await collect(client.chat(hello({ stream: false }))));
      assert.equal(tokens(whole).join(''), 'Hello');
      const called = await client.complete!(hello());
      assert.deepEqual(called.at(-1), { type: 'done', finishReason: 'tool_calls' });
      assert.deepEqual(
        called.find((e) => e.type === 'tool_call'),
        { type: 'tool_call', call: { id: 'call_1', name: 'lookup', arguments: '{"q":"x"}' } },
      );
    });

    it('complete() never rejects: a failure, or a cancellation, is its last event', async function () {
      const failing = await start([{ kind: 'status', status: 500 }]);
      const client = subject.client({ baseUrl: failing.url });
      if (!client.complete) this.skip();
      const failed = await client.complete!(hello());
      assert.deepEqual(
        failed.map((e) => e.type === 'error' && [e.code, e.retryable]),
        [['PROVIDER_UNAVAILABLE', true]],
      );
      await fake!.close();
      const hanging = await start([{ kind: 'hang' }]);
      const source = new CancellationTokenSource();
      setTimeout(() => source.cancel(), 100);
      const cancelled = await subject.client({ baseUrl: hanging.url }).complete!(hello(), source.token);
      assert.deepEqual(
        cancelled.map((e) => e.type === 'error' && e.code),
        ['CANCELLED'],
      );
      await within(hanging.requests[0]!.disconnected, 1_000, 'the server seeing the connection close');
    });

    it('yields a tool call with complete JSON arguments, and finishes with tool_calls', async () => {
      const server = await start([{ kind: 'toolCall', id: 'call_1', name: 'lookup', arguments: { id: 7 } }]);
      const events = await collect(
        subject.client({ baseUrl: server.url }).chat(hello({ tools: [{ name: 'lookup', description: 'Looks up', parameters: { type: 'object' } }] })),
      );
      const call = events.find((e) => e.type === 'tool_call') as Extract<ProviderEvent, { type: 'tool_call' }> | undefined;
      assert.ok(call, `a tool_call event: ${JSON.stringify(events)}`);
      assert.equal(call.call.name, 'lookup');
      assert.deepEqual(JSON.parse(call.call.arguments), { id: 7 });
      assert.deepEqual(last(events), { type: 'done', finishReason: 'tool_calls' });
    });

    it('turns 429 with retry-after into a retryable PROVIDER_RATE_LIMITED with the delay', async () => {
      const server = await start([{ kind: 'status', status: 429, headers: { 'retry-after': '2' } }]);
      const error = errorOf(await collect(subject.client({ baseUrl: server.url }).chat(hello())));
      assert.deepEqual([error.code, error.retryable, error.retryAfterMs, error.status], ['PROVIDER_RATE_LIMITED', true, 2000, 429]);
    });

    it('turns 500 into a retryable PROVIDER_UNAVAILABLE', async () => {
      const server = await start([{ kind: 'status', status: 500 }]);
      const error = errorOf(await collect(subject.client({ baseUrl: server.url }).chat(hello())));
      assert.deepEqual([error.code, error.retryable, error.status], ['PROVIDER_UNAVAILABLE', true, 500]);
    });

    it('turns 401 into PROVIDER_AUTH_FAILED, not retried', async () => {
      const server = await start([{ kind: 'answer', text: ['never'] }], { apiKey: 'right-key' });
      const error = errorOf(await collect(subject.client({ baseUrl: server.url, apiKey: 'wrong-key' }).chat(hello())));
      assert.deepEqual([error.code, error.retryable, error.status], ['PROVIDER_AUTH_FAILED', false, 401]);
    });

    it('gives up with a retryable PROVIDER_TIMEOUT when the server never answers, and closes the request', async () => {
      const server = await start([{ kind: 'hang' }]);
      const started = Date.now();
      const error = errorOf(await collect(subject.client({ baseUrl: server.url, timeoutMs: 5_000 }).chat(hello({ timeoutMs: 300 }))));
      assert.ok(Date.now() - started < 3_000, `took ${Date.now() - started} ms`);
      assert.deepEqual([error.code, error.retryable, error.afterFirstToken], ['PROVIDER_TIMEOUT', true, false]);
      await within(server.requests[0]!.disconnected, 2_000, 'closing the timed-out request');
    });

    it('reports a stream that stalls after the first token as PROVIDER_TIMEOUT, not retryable', async () => {
      const server = await start([{ kind: 'stall', text: ['a'] }]);
      const events = await collect(subject.client({ baseUrl: server.url, timeoutMs: 300 }).chat(hello()));
      assert.deepEqual(tokens(events), ['a']);
      const error = errorOf(events);
      assert.deepEqual([error.code, error.retryable, error.afterFirstToken], ['PROVIDER_TIMEOUT', false, true]);
    });

    it('reports a stream cut after the first token as PROVIDER_STREAM_CUT, not retryable', async () => {
      const server = await start([{ kind: 'cut', text: ['one', ' two'] }]);
      const events = await collect(subject.client({ baseUrl: server.url }).chat(hello()));
      assert.deepEqual(tokens(events), ['one', ' two']);
      const error = errorOf(events);
      assert.deepEqual([error.code, error.retryable, error.afterFirstToken], ['PROVIDER_STREAM_CUT', false, true]);
    });

    it('reports a malformed chunk as PROVIDER_BAD_RESPONSE after what came before it', async () => {
      const server = await start([{ kind: 'malformed', text: ['ok'] }]);
      const events = await collect(subject.client({ baseUrl: server.url }).chat(hello()));
      assert.deepEqual(tokens(events), ['ok']);
      const error = errorOf(events);
      assert.deepEqual([error.code, error.afterFirstToken], ['PROVIDER_BAD_RESPONSE', true]);
    });

    it('reports a stream cut before any token as retryable', async () => {
      const server = await start([{ kind: 'cut', text: [] }]);
      const error = errorOf(await collect(subject.client({ baseUrl: server.url }).chat(hello())));
      assert.deepEqual([error.code, error.retryable, error.afterFirstToken], ['PROVIDER_STREAM_CUT', true, false]);
    });

    it('cancels a request still waiting for the server, and closes it', async () => {
      const server = await start([{ kind: 'hang' }]);
      const source = new CancellationTokenSource();
      setTimeout(() => source.cancel(), 100);
      const events = await collect(subject.client({ baseUrl: server.url }).chat(hello(), source.token));
      assert.deepEqual(
        events.map((e) => e.type === 'error' && [e.code, e.afterFirstToken]),
        [['CANCELLED', false]],
      );
      await within(server.requests[0]!.disconnected, 1_000, 'the server seeing the connection close');
    });

    it('reports a refused connection as a retryable PROVIDER_UNREACHABLE', async () => {
      const server = await start([{ kind: 'answer', text: ['x'] }]);
      const url = server.url;
      await server.close();
      fake = undefined;
      const error = errorOf(await collect(subject.client({ baseUrl: url }).chat(hello())));
      assert.deepEqual([error.code, error.retryable], ['PROVIDER_UNREACHABLE', true]);
    });

    it('reuses one connection for consecutive chats, streamed or not', async () => {
      const server = await start([{ kind: 'answer', text: ['hi'] }]);
      const client = subject.client({ baseUrl: server.url });
      for (let i = 0; i < 6; i++) assert.equal(last(await collect(client.chat(hello({ stream: i % 2 === 0 })))).type, 'done');
      assert.ok(server.connections <= 2, `${server.connections} connections for 6 requests`);
    });

    it('stops at once when cancelled mid-stream, and the server sees the connection close', async () => {
      const server = await start([{ kind: 'answer', text: Array.from({ length: 50 }, (_, i) => `t${i} `) }], { chunkDelayMs: 100 });
      const source = new CancellationTokenSource();
      const events: ProviderEvent[] = [];
      let cancelledAt = 0;
      for await (const event of subject.client({ baseUrl: server.url }).chat(hello(), source.token)) {
        events.push(event);
        if (events.length === 2) {
          cancelledAt = Date.now();
          source.cancel();
        }
      }
      assert.ok(Date.now() - cancelledAt < 1_000, 'the stream ended promptly');
      assert.ok(tokens(events).length < 5);
      assert.equal(errorOf(events).code, 'CANCELLED');
      await within(server.requests[0]!.disconnected, 1_000, 'the server seeing the connection close');
    });
  });
}
