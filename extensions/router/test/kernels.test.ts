import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import type { TestKernel } from '@aion/core';
import { probeRedis, REDIS_URL } from '@aion/ext-auth/testing';
import { startFakeOpenAI, type FakeOpenAI } from '@aion/ext-provider-openai/testing';
import { dropSchema, newSchemaName, POSTGRES_TEST_URL, probePostgres, requireServer } from '@aion/ext-storage/testing';
import { client, OPENAI_DIR, readSse, STORAGE_DIR, startRouterKernel } from './helpers.js';

/** Two kernels on one PostgreSQL and one Redis: a task started on A is followed and cancelled from B. */
describe('tasks across two kernels sharing PostgreSQL and Redis', function () {
  this.timeout(120_000);
  let openai: FakeOpenAI;
  let a: TestKernel;
  let b: TestKernel;
  let schema: string | undefined;
  const words = Array.from({ length: 30 }, (_, i) => `w${i} `);

  before(async function () {
    requireServer(this, `PostgreSQL at ${POSTGRES_TEST_URL}`, await probePostgres());
    requireServer(this, `Redis at ${REDIS_URL}`, await probeRedis());
    schema = newSchemaName();
    // Streams slowly, so the task is still running when the other kernel joins in.
    // `[fail]` in a message: the upstream answers 500.
    openai = await startFakeOpenAI({
      chunkDelayMs: 60,
      reply: (r) => (JSON.stringify(r.body?.messages ?? []).includes('[fail]') ? { kind: 'status', status: 500 } : { kind: 'answer', text: words }),
    });
    const start = () =>
      startRouterKernel({
        extensions: [STORAGE_DIR, OPENAI_DIR],
        config: {
          'aion.storage': { databaseUrl: POSTGRES_TEST_URL, postgres: { schema } },
          'aion.router': {
            providers: { openai: { enabled: true } },
            defaults: { privacy: 'allow-api' },
            circuitBreaker: { failureThreshold: 2, openMs: 60_000 },
            redisUrl: REDIS_URL,
            redisPrefix: `aion-test:${schema}`,
            latencyShareMs: 100,
          },
          'aion.provider-openai': { baseUrl: openai.url, apiKeySecret: '' },
        },
      });
    a = await start();
    b = await start();
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    await openai?.close();
    if (schema) await dropSchema(schema);
  });

  const submit = async () => {
    const { status, body } = await client(a).json(client(a).post('/v1/tasks', { input: 'stream something', preferred_engine: 'openai/gpt-4o-mini' }));
    assert.equal(status, 202, JSON.stringify(body));
    return body.task_id as string;
  };

  it('streams a task that runs on A from B, resuming after a Last-Event-ID, every event once and in order', async () => {
    const taskId = await submit();
    // The first events on A, then the client moves to B with the last id it saw.
    const first = await readSse(await client(a).get(`/v1/stream/${taskId}`), (events) => events.filter((e) => e.event === 'token').length >= 3);
    const lastSeen = first.filter((e) => e.event === 'token').at(-1)!.id!;
    const rest = await readSse(await client(b).get(`/v1/stream/${taskId}`, { 'last-event-id': lastSeen }));
    const ids = rest.map((e) => Number(e.id));
    assert.ok(ids[0]! === Number(lastSeen) + 1, `B resumes right after ${lastSeen}: ${ids.slice(0, 3)}`);
    assert.deepEqual(
      ids,
      [...ids].sort((x, y) => x - y),
      'in order',
    );
    assert.equal(new Set(ids).size, ids.length, 'no event twice');
    assert.equal(rest.at(-1)!.event, 'done');
    const text = [...first, ...rest]
      .filter((e) => e.event === 'token')
      .map((e) => (e.data as { text: string }).text)
      .join('');
    assert.equal(text, words.join(''), 'nothing lost across the move');
  });

  it('cancels from B a task that runs on A: A stops the upstream call and B answers CANCELED', async () => {
    const taskId = await submit();
    await readSse(await client(a).get(`/v1/stream/${taskId}`), (events) => events.some((e) => e.event === 'token'));
    const upstream = openai.requests.at(-1)!;
    const { status, body } = await client(b).json(client(b).post(`/v1/tasks/${taskId}/cancel`, {}));
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.status, 'CANCELED');
    await Promise.race([upstream.disconnected, new Promise((_, reject) => setTimeout(() => reject(new Error('A did not close the upstream request')), 5_000))]);
    const seenOnA = (await client(a).json(client(a).get(`/v1/tasks/${taskId}`))).body;
    assert.equal(seenOnA.status, 'CANCELED');
  });

  it('still answers a finished task from either kernel as its final event', async () => {
    const taskId = await submit();
    await readSse(await client(a).get(`/v1/stream/${taskId}`));
    const fromB = await readSse(await client(b).get(`/v1/stream/${taskId}`, { 'last-event-id': '1' }));
    assert.equal(fromB.at(-1)!.event, 'done');
  });

  it("B's latency window holds what A measured, and B ignores malformed latency messages", async () => {
    const engine = 'openai/gpt-4o-mini';
    const health = async (k: TestKernel) =>
      (await client(k, 'admin-token').json(client(k, 'admin-token').get('/v1/router/policies'))).body.health[engine] as
        | { samples: number; p95_ms: number | null }
        | undefined;
    // Someone else on the channel: not JSON, not an object, samples that are not latencies.
    const intruder = new Redis(REDIS_URL);
    try {
      const channel = `aion-test:${schema}:latency`;
      await intruder.publish(channel, 'not json');
      await intruder.publish(channel, JSON.stringify({ from: 'x', samples: [1, 2] }));
      await intruder.publish(channel, JSON.stringify({ from: 'x', samples: { 'openai/other': { latency: [-1, 'slow', null, Number.MAX_VALUE * 2] } } }));
    } finally {
      intruder.disconnect();
    }
    const { body } = await client(a).json(client(a).post('/v1/tasks', { input: 'hello', preferred_engine: engine, wait: true }));
    assert.equal(body.status, 'OK', JSON.stringify(body));
    const onA = await health(a);
    assert.ok(onA && onA.samples >= 1 && onA.p95_ms !== null, 'A measured the engine');
    const until = Date.now() + 5_000;
    while (((await health(b))?.samples ?? 0) < onA.samples && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    const onB = await health(b);
    assert.deepEqual(
      { samples: onB?.samples, p95_ms: onB?.p95_ms },
      { samples: onA.samples, p95_ms: onA.p95_ms },
      'B routes on the same window without having called the engine',
    );
    assert.equal(
      (
        (await client(b, 'admin-token').json(client(b, 'admin-token').get('/v1/router/policies'))).body.health['openai/other'] as
          | { samples: number }
          | undefined
      )?.samples ?? 0,
      0,
      'no sample that is not a latency was taken',
    );
  });

  it('a circuit that opens on A is open on B: B routes around the failing engine without calling it', async () => {
    const engine = 'openai/gpt-4o-mini';
    const circuit = async (k: TestKernel) =>
      (await client(k, 'admin-token').json(client(k, 'admin-token').get('/v1/router/policies'))).body.health[engine]?.circuit;
    for (let i = 0; i < 2 && (await circuit(a)) !== 'open'; i++) {
      await client(a).json(client(a).post('/v1/tasks', { input: '[fail] please', preferred_engine: engine, wait: true }));
    }
    assert.equal(await circuit(a), 'open', 'the failures opened the circuit on A');
    const until = Date.now() + 5_000;
    while ((await circuit(b)) !== 'open' && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    assert.equal(await circuit(b), 'open', 'B took on the open circuit');
    const before = openai.requests.length;
    const { body } = await client(b).json(client(b).post('/v1/tasks', { input: 'hello', preferred_engine: engine, wait: true }));
    assert.notEqual(body.status, 'OK', 'B did not use the engine A found failing');
    assert.equal(openai.requests.length, before, 'B never called it');
  });
});
