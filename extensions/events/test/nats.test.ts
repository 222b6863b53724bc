import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { startTestKernel, type TestKernel } from '@aion/core';
import { requireServer } from '@aion/ext-storage/testing';
import { connect, nanos, type JetStreamManager, type NatsConnection } from 'nats';
import type { EventEnvelope, SinkStatus } from '../src/api.js';
import { FIXTURES, NATS_URL, probeNats, TcpGate, waitFor } from './helpers.js';

const ADMIN = { authorization: 'Bearer admin' };

describe('aion.events NATS JetStream sink (real server)', function () {
  this.timeout(120_000);
  const suffix = randomBytes(4).toString('hex');
  const prefix = `aiontest${suffix}`;
  const latePrefix = `aiontestlate${suffix}`;
  const stream = `AION_EVENTS_TEST_${suffix}`;
  const lateStream = `AION_EVENTS_TEST_LATE_${suffix}`;
  let nc: NatsConnection | undefined;
  let jsm: JetStreamManager;
  let kernel: TestKernel | undefined;
  let gate: TcpGate | undefined;
  let skipped = false;

  before(async function () {
    const problem = await probeNats();
    skipped = problem !== undefined;
    requireServer(this, `NATS JetStream at ${NATS_URL}`, problem);
    nc = await connect({ servers: NATS_URL });
    jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: stream, subjects: [`${prefix}.>`], duplicate_window: nanos(120_000) });
    const { hostname, port } = new URL(NATS_URL);
    gate = new TcpGate({ host: hostname, port: Number(port || 4222) });
    await gate.open();
    await gate.close();
    kernel = await startTestKernel({
      builtins: ['aion.storage', 'aion.events'],
      extensions: ['publisher', 'events-auth'].map((f) => resolve(FIXTURES, f)),
      config: {
        permissions: { grants: { 'fixtures.events-auth': { kernelHost: true } } },
        extensions: {
          'aion.events': {
            retry: { initialDelayMs: 20, maxDelayMs: 200 },
            pollIntervalMs: 50,
            sinks: {
              bus: { type: 'nats', servers: [`nats://127.0.0.1:${gate.port}`], subjectPrefix: prefix, timeoutMs: 2000 },
              late: { type: 'nats', servers: [NATS_URL], subjectPrefix: latePrefix, timeoutMs: 2000, tenants: ['acme'] },
            },
          },
        },
      },
    });
  });
  after(async () => {
    await kernel?.stop();
    await gate?.close();
    if (nc && !skipped) {
      await jsm.streams.delete(stream).catch(() => undefined);
      await jsm.streams.delete(lateStream).catch(() => undefined);
      await nc.close();
    }
  });

  const sink = async (name: string): Promise<SinkStatus> => {
    const { sinks } = (await (await kernel!.request('/v1/events/sinks', { headers: ADMIN })).json()) as { sinks: SinkStatus[] };
    return sinks.find((s) => s.name === name)!;
  };
  const read = async (name: string, count: number): Promise<Array<{ subject: string; event: EventEnvelope; msgId: string | undefined }>> => {
    const consumer = await nc!.jetstream().consumers.get(name);
    const out: Array<{ subject: string; event: EventEnvelope; msgId: string | undefined }> = [];
    const messages = await consumer.fetch({ max_messages: count, expires: 5000 });
    for await (const m of messages) out.push({ subject: m.subject, event: m.json<EventEnvelope>(), msgId: m.headers?.get('Nats-Msg-Id') });
    return out;
  };

  const ids: Array<{ id: string; tenant: string }> = [];

  it('keeps events while NATS is unreachable, then publishes each in order on per-tenant subjects, msgID = event id', async () => {
    for (let n = 0; n < 10; n++) {
      const tenant = n % 3 === 0 ? 'acme' : 'globex';
      const outcome = await kernel!.executeCommand<{ ok: boolean; id: string }>('publisher.publish', 'fixture.thing', { n }, { tenantId: tenant });
      assert.ok(outcome.ok);
      ids.push({ id: outcome.id, tenant });
    }
    const down = await waitFor('the outage to show', async () => {
      const s = await sink('bus');
      return s.last_error !== null && s;
    });
    assert.match(down.last_error!, /NATS at .* cannot be reached/);
    assert.equal(down.backlog, 10);

    await gate!.open();
    await waitFor('the backlog to drain', async () => (await sink('bus')).backlog === 0);
    const messages = await read(stream, 10);
    assert.deepEqual(
      messages.map((m) => m.event.id),
      ids.map((e) => e.id),
      'in publish order',
    );
    assert.deepEqual(
      messages.map((m) => m.subject),
      ids.map((e) => `${prefix}.${e.tenant}.fixture.thing`),
    );
    assert.deepEqual(
      messages.map((m) => m.msgId),
      ids.map((e) => e.id),
    );
    assert.deepEqual(
      messages.map((m) => m.event.data),
      [...Array(10).keys()].map((n) => ({ n })),
    );
    assert.equal((await jsm.streams.info(stream)).state.messages, 10);
  });

  it('lets the server drop an event sent again (the same msgID), so a retry after a lost ack is no duplicate', async () => {
    const first = (await read(stream, 1))[0]!;
    const ack = await nc!.jetstream().publish(first.subject, JSON.stringify(first.event), { msgID: first.event.id });
    assert.equal(ack.duplicate, true);
    assert.equal((await jsm.streams.info(stream)).state.messages, 10);
  });

  it('retries while no stream captures the subjects, and delivers once one does (only the tenants it is configured for)', async () => {
    const late = await waitFor('the missing stream to show', async () => {
      const s = await sink('late');
      return s.last_error !== null && s;
    });
    assert.match(late.last_error!, /no JetStream stream captures aiontestlate/);
    assert.equal(late.backlog, 4, 'acme events only');
    await jsm.streams.add({ name: lateStream, subjects: [`${latePrefix}.>`] });
    await waitFor('the late backlog to drain', async () => (await sink('late')).backlog === 0);
    const messages = await read(lateStream, 4);
    assert.deepEqual(
      messages.map((m) => m.event.id),
      ids.filter((e) => e.tenant === 'acme').map((e) => e.id),
    );
    assert.ok(messages.every((m) => m.subject === `${latePrefix}.acme.fixture.thing`));
  });
});
