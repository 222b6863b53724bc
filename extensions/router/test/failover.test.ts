import assert from 'node:assert/strict';
import type { TestKernel } from '@aion/core';
import { startFakeOpenAI, type FakeOpenAI, type RecordedRequest } from '@aion/ext-provider-openai/testing';
import { client, OPENAI_DIR, readSse, startRouterKernel } from './helpers.js';

/** `x-aion-failover: resume`: a stream cut mid-answer is continued by the next engine. */
describe('failover: resume', function () {
  this.timeout(60_000);
  let openai: FakeOpenAI;
  let kernel: TestKernel;
  const messagesOf = (r: RecordedRequest) => r.body.messages as Array<{ role: string; content: string }>;

  before(async () => {
    // Every first call of a conversation is cut after "Hel", "lo"; a call that carries the partial answer continues it.
    openai = await startFakeOpenAI({
      chunkDelayMs: 10,
      reply: (r) => {
        const resumed = messagesOf(r).some((m) => m.role === 'assistant');
        return resumed ? { kind: 'answer', text: [' world', '!'] } : { kind: 'cut', text: ['Hel', 'lo'] };
      },
    });
    kernel = await startRouterKernel({
      extensions: [OPENAI_DIR],
      config: {
        'aion.router': { providers: { openai: { enabled: true } }, defaults: { privacy: 'allow-api' }, circuitBreaker: { failureThreshold: 1000 } },
        'aion.provider-openai': { baseUrl: openai.url, apiKeySecret: '' },
      },
    });
  });
  after(async () => {
    await kernel?.stop();
    await openai?.close();
  });

  it('without it, a stream cut after the first token fails the task, as before', async () => {
    const { body } = await client(kernel).json(client(kernel).post('/v1/tasks', { input: 'greet', preferred_engine: 'openai/gpt-4o-mini', wait: true }));
    assert.equal(body.status, 'ERROR');
    assert.equal(body.error.code, 'PROVIDER_STREAM_CUT');
  });

  it('with it, the next engine continues the answer, the client stream never breaks, and the switch is in the record', async () => {
    const before = openai.requests.length;
    const { body: task } = await client(kernel).json(
      client(kernel).post('/v1/tasks', { input: 'greet', preferred_engine: 'openai/gpt-4o-mini' }, { 'x-aion-failover': 'resume' }),
    );
    const events = await readSse(await client(kernel).get(`/v1/stream/${task.task_id}`));
    const text = events.filter((e) => e.event === 'token').map((e) => (e.data as { text: string }).text);
    assert.deepEqual(text, ['Hel', 'lo', ' world', '!'], 'one answer, continued');
    const done = events.at(-1)!;
    assert.equal(done.event, 'done');
    const record = done.data as {
      status: string;
      result: { text: string };
      routing: { attempts: Array<{ engine: string; outcome: string; code?: string; resumed_after_chars?: number }> };
    };
    assert.equal(record.status, 'OK');
    assert.equal(record.result.text, 'Hello world!');
    const [cut, resumed] = record.routing.attempts;
    assert.deepEqual([cut!.outcome, cut!.code], ['failed', 'PROVIDER_STREAM_CUT']);
    assert.deepEqual([resumed!.outcome, resumed!.resumed_after_chars], ['ok', 5]);
    // The engine that continued saw the partial answer as its own turn, then the instruction to go on.
    const second = openai.requests[before + 1]!;
    const sent = messagesOf(second);
    assert.deepEqual(sent.at(-2), { role: 'assistant', content: 'Hello' });
    assert.match(sent.at(-1)!.content, /Continue it exactly where it stopped/);
  });

  it('continues a cut streamed answer on /v1/chat/completions too, with the header', async () => {
    const res = await client(kernel).post(
      '/v1/chat/completions',
      { model: 'openai/gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'greet' }] },
      { 'x-aion-failover': 'resume' },
    );
    assert.equal(res.status, 200);
    const chunks = await readSse(res);
    const text = chunks.map((c) => (c.data as { choices?: Array<{ delta?: { content?: string } }> })?.choices?.[0]?.delta?.content ?? '').join('');
    assert.equal(text, 'Hello world!');
  });

  it('refuses a failover header it does not know, rather than ignoring it', async () => {
    const res = await client(kernel).json(client(kernel).post('/v1/tasks', { input: 'greet' }, { 'x-aion-failover': 'resumee' }));
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, 'VALIDATION_FAILED');
  });
});
