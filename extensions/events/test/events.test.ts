import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startTestKernel, type TestKernel } from '@aion/core';
import { forEachDatabase } from '@aion/ext-storage/testing';
import type { SinkStatus, StoredEvent } from '../src/api.js';
import { UUID_V7 } from '../src/ids.js';
import { signWebhook, verifyWebhook } from '../src/sinks/signature.js';
import { closedPort, FIXTURES, SECRET, waitFor, WebhookReceiver } from './helpers.js';

const ADMIN = { authorization: 'Bearer admin' };
const ADA = { authorization: 'Bearer ada' };
const FIXTURE_DIRS = ['publisher', 'intruder', 'events-auth'].map((f) => resolve(FIXTURES, f));
const GRANTS = { permissions: { grants: { 'fixtures.events-auth': { kernelHost: true } } } };
const FAST = { retry: { initialDelayMs: 20, maxDelayMs: 200 }, pollIntervalMs: 50 };

type Outcome = { ok: boolean; id?: string; code?: string; message?: string; value?: unknown };

function startEventsKernel(events: Record<string, unknown>, extra: { storage?: Record<string, unknown>; dataDir?: string } = {}): Promise<TestKernel> {
  return startTestKernel({
    builtins: ['aion.storage', 'aion.events'],
    extensions: FIXTURE_DIRS,
    config: {
      ...GRANTS,
      ...(extra.dataDir ? { dataDir: extra.dataDir } : {}),
      extensions: { 'aion.storage': extra.storage ?? {}, 'aion.events': { ...FAST, ...events } },
    },
  });
}

const publish = async (kernel: TestKernel, type: string, payload: unknown, options?: unknown): Promise<string> => {
  const outcome = await kernel.executeCommand<Outcome>('publisher.publish', type, payload, options);
  assert.ok(outcome.ok, `publish ${type} was refused: ${outcome.code} ${outcome.message}`);
  return outcome.id!;
};

const sinkStatus = async (kernel: TestKernel, name: string): Promise<SinkStatus> => {
  const res = await kernel.request('/v1/events/sinks', { headers: ADMIN });
  assert.equal(res.status, 200);
  const { sinks } = (await res.json()) as { sinks: SinkStatus[] };
  return sinks.find((s) => s.name === name)!;
};

describe('aion.events', function () {
  // Kernels start and retry with backoff on a shared 2-core machine.
  this.timeout(120_000);
  forEachDatabase('outbox and sinks', (db) => {
    let kernel: TestKernel;
    let port: number;
    const receiver = new WebhookReceiver();

    before(async () => {
      port = await closedPort();
      kernel = await startEventsKernel(
        {
          sinks: {
            hook: { type: 'webhook', url: `http://127.0.0.1:${port}/hooks/aion`, secret: SECRET, timeoutMs: 2000, types: ['fixture.*'] },
            memory: { type: 'memory', types: ['fixture.thing'], options: { failFirst: 3 } },
          },
        },
        { storage: db.storageConfig() },
      );
    });
    after(async () => {
      await kernel?.stop();
      await receiver.close();
    });

    const ids: string[] = [];

    it('keeps events while the webhook receiver is down, retries in order while it answers 500, then delivers each once, signed', async () => {
      for (let n = 0; n < 20; n++) ids.push(await publish(kernel, 'fixture.thing', { n }));
      assert.ok(
        ids.every((id) => UUID_V7.test(id)),
        'ids are UUIDv7',
      );
      assert.deepEqual([...ids].sort(), ids, 'ids sort in publish order');

      const down = await waitFor('the sink to report the outage', async () => {
        const s = await sinkStatus(kernel, 'hook');
        return s.last_error !== null && s;
      });
      assert.match(down.last_error!, /cannot be reached/);
      assert.equal(down.backlog, 20);
      assert.equal(down.delivered, 0);
      assert.ok(down.attempts >= 1);

      // Back, but failing: the first five tries get 500, and nothing behind the head may overtake it.
      let failures = 0;
      receiver.status = () => (failures++ < 5 ? 500 : 200);
      await receiver.listen(port);
      await waitFor('all 20 events at the receiver', async () => receiver.accepted().length >= 20);
      await new Promise((r) => setTimeout(r, 200));

      const accepted = receiver.accepted();
      assert.deepEqual(
        accepted.map((e) => e.id),
        ids,
        'in publish order, each once',
      );
      assert.deepEqual(
        accepted.map((e) => e.data.n),
        [...Array(20).keys()],
      );
      const refused = receiver.requests.filter((r) => r.status === 500);
      assert.equal(refused.length, 5);
      assert.ok(
        refused.every((r) => JSON.parse(r.body).id === ids[0]),
        'the head is retried; later events wait',
      );
      for (const r of receiver.requests) {
        const event = JSON.parse(r.body);
        assert.equal(r.headers['aion-event-id'], event.id);
        assert.equal(r.headers['aion-event-type'], 'fixture.thing');
        assert.equal(r.headers['content-type'], 'application/json');
        assert.ok(
          verifyWebhook({
            secret: SECRET,
            body: r.body,
            timestamp: r.headers['aion-event-timestamp'] as string,
            signature: r.headers['aion-signature'] as string,
          }),
          'the signature verifies',
        );
        assert.equal(event.source, 'fixtures.publisher');
        assert.equal(event.tenant_id, 'default');
      }
      const up = await sinkStatus(kernel, 'hook');
      assert.equal(up.backlog, 0);
      assert.equal(up.delivered, 20);
      assert.equal(up.last_delivered_id, ids[19]);
      assert.equal(up.attempts, 0);
      assert.match(up.last_error!, /answered 500/, 'the last error stays visible after recovery');
    });

    it('refuses a tampered body, a forged signature, another secret and a stale timestamp', () => {
      const r = receiver.accepted().length > 0 ? receiver.requests.find((q) => q.status === 200)! : assert.fail('no request');
      const timestamp = r.headers['aion-event-timestamp'] as string;
      const signature = r.headers['aion-signature'] as string;
      assert.equal(verifyWebhook({ secret: SECRET, body: r.body, timestamp, signature }), true);
      assert.equal(verifyWebhook({ secret: SECRET, body: r.body.replace('"n":0', '"n":9'), timestamp, signature }), false);
      assert.equal(verifyWebhook({ secret: SECRET, body: r.body, timestamp, signature: signature.replace(/.$/, (c) => (c === '0' ? '1' : '0')) }), false);
      assert.equal(verifyWebhook({ secret: 'another-secret-of-enough-length', body: r.body, timestamp, signature }), false);
      assert.equal(verifyWebhook({ secret: SECRET, body: r.body, timestamp: String(Number(timestamp) + 1), signature }), false, 'the timestamp is signed');
      const old = Math.floor(Date.now() / 1000) - 3600;
      assert.equal(
        verifyWebhook({ secret: SECRET, body: r.body, timestamp: String(old), signature: signWebhook(SECRET, old, r.body) }),
        false,
        'replays outside the window are refused',
      );
      assert.equal(verifyWebhook({ secret: SECRET, body: r.body, timestamp, signature: undefined }), false);
    });

    it('delivers to a sink another extension contributes, in order, after its failures', async () => {
      const received = await waitFor('the memory sink to catch up', async () => {
        const r = await kernel.executeCommand<{ events: Array<{ id: string }>; tries: number }>('publisher.received');
        return r.events.length >= 20 && r;
      });
      assert.deepEqual(
        received.events.map((e) => e.id),
        ids,
      );
      assert.equal(received.tries, 23, 'three refused tries of the head, then one per event');
    });

    it("validates payloads against the type's schema with a stable code", async () => {
      const bad = await kernel.executeCommand<Outcome>('publisher.publish', 'fixture.thing', { n: -1, extra: true });
      assert.equal(bad.ok, false);
      assert.equal(bad.code, 'EVENT_PAYLOAD_INVALID');
      assert.match(bad.message!, /\/n must be >= 0/);
      assert.match(bad.message!, /additional properties/);
      const missing = await kernel.executeCommand<Outcome>('publisher.publish', 'fixture.thing', 'not an object');
      assert.equal(missing.code, 'EVENT_PAYLOAD_INVALID');
      const tenant = await kernel.executeCommand<Outcome>('publisher.publish', 'fixture.thing', { n: 1 }, { tenantId: 'a.b' });
      assert.equal(tenant.code, 'VALIDATION_FAILED');
      const unknown = await kernel.executeCommand<Outcome>('publisher.publish', 'fixture.nothing', {});
      assert.equal(unknown.code, 'EVENT_TYPE_UNKNOWN');
    });

    it('refuses a hostile extension that publishes types it does not own, and lets it publish public ones under its own name', async () => {
      const forged = await kernel.executeCommand<Outcome>('intruder.publish', 'fixture.thing', { n: 1 });
      assert.equal(forged.ok, false);
      assert.equal(forged.code, 'EVENT_PUBLISH_DENIED');
      assert.match(forged.message!, /belongs to fixtures\.publisher/);
      const kernelType = await kernel.executeCommand<Outcome>('intruder.publish', 'task.finished', { task_id: 't', intent: 'chat', status: 'OK' });
      assert.equal(kernelType.code, 'EVENT_PUBLISH_DENIED');
      const audit = await kernel.executeCommand<Outcome>('intruder.publish', 'audit.entry', { event: 'login_succeeded' });
      assert.equal(audit.code, 'EVENT_PUBLISH_DENIED', 'only aion.auth publishes audit entries');
      const undeclared = await kernel.executeCommand<Outcome>('intruder.publish', 'evil.things', {});
      assert.equal(undeclared.code, 'EVENT_TYPE_UNKNOWN');
      const types = (await kernel.executeCommand<Outcome>('intruder.types')).value as Array<{
        id: string;
        owner: string;
        public: boolean;
        publishers: string[];
      }>;
      assert.deepEqual(
        types.find((t) => t.id === 'fixture.open'),
        { ...types.find((t) => t.id === 'fixture.open'), owner: 'fixtures.publisher', public: true },
      );
      assert.deepEqual(types.find((t) => t.id === 'audit.entry')!.publishers, ['aion.auth']);
      assert.equal(types.find((t) => t.id === 'task.finished')!.owner, 'aion.events', 'a second contributor of a type does not take it over');
      assert.equal(types.find((t) => t.id === 'task.finished')!.public, false);
      const read = await kernel.executeCommand<Outcome>('intruder.read');
      assert.equal(read.ok, false);
      assert.equal(read.code, 'FORBIDDEN', 'reading the outbox is privileged');

      const open = await kernel.executeCommand<Outcome>('intruder.publish', 'fixture.open', { hello: 'world' });
      assert.equal(open.ok, true);
      await waitFor('the public event at the receiver', async () => receiver.accepted().some((e) => e.id === open.value));
      const seen = receiver.accepted().find((e) => e.id === open.value) as unknown as { source: string };
      assert.equal(seen.source, 'evil.intruder', 'the event names its real publisher');
    });

    it("lists the outbox to admins: after, type and limit, with each sink's delivery state", async () => {
      assert.equal((await kernel.request('/v1/events')).status, 401);
      assert.equal((await kernel.request('/v1/events', { headers: ADA })).status, 403);
      assert.equal((await kernel.request('/v1/events/sinks', { headers: ADA })).status, 403);
      const page = async (query: string) => {
        const res = await kernel.request(`/v1/events${query}`, { headers: ADMIN });
        assert.equal(res.status, 200);
        return (await res.json()) as { events: StoredEvent[]; next: string | null };
      };
      const first = await page('?type=fixture.thing&limit=10');
      assert.deepEqual(
        first.events.map((e) => e.id),
        ids.slice(0, 10),
      );
      assert.equal(first.next, ids[9]);
      const second = await page(`?type=fixture.thing&limit=10&after=${first.next}`);
      assert.deepEqual(
        second.events.map((e) => e.id),
        ids.slice(10, 20),
      );
      const event = second.events[0]!;
      assert.deepEqual(event.data, { n: 10 });
      assert.deepEqual(
        event.deliveries.map((d) => [d.sink, d.status, d.attempts]),
        [
          ['hook', 'delivered', 1],
          ['memory', 'delivered', 1],
        ],
      );
      const head = first.events[0]!;
      assert.ok(head.deliveries.find((d) => d.sink === 'hook')!.attempts >= 6, 'the head records its tries');
      const prefixed = await page('?type=fixture.*&limit=500');
      assert.ok(prefixed.events.some((e) => e.type === 'fixture.open'));
      for (const bad of ['?limit=0', '?limit=501', '?after=nope', '?type=DROP%20TABLE']) {
        const res = await kernel.request(`/v1/events${bad}`, { headers: ADMIN });
        assert.equal(res.status, 400, bad);
        assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'VALIDATION_FAILED');
      }
    });

    it('removes settled events on purge, never one a sink still waits for', async () => {
      await receiver.close();
      const pending = await publish(kernel, 'fixture.open', { late: true });
      await waitFor('the hook to fail on it', async () => (await sinkStatus(kernel, 'hook')).attempts > 0);
      const bad = await kernel.executeCommand<unknown>('events.purge', { before: 'yesterday' }).catch((err: { code: string }) => err.code);
      assert.equal(bad, 'VALIDATION_FAILED');
      const kept = await kernel.executeCommand<{ removed: number }>('events.purge', {});
      assert.equal(kept.removed, 0, 'nothing is older than retentionMs');
      const purged = await kernel.executeCommand<{ removed: number }>('events.purge', { before: new Date(Date.now() + 60_000).toISOString() });
      assert.equal(purged.removed, 21);
      const res = await kernel.request('/v1/events?limit=500', { headers: ADMIN });
      const { events } = (await res.json()) as { events: StoredEvent[] };
      assert.deepEqual(
        events.map((e) => e.id),
        [pending],
      );
      assert.deepEqual(
        events[0]!.deliveries.map((d) => [d.sink, d.status]),
        [['hook', 'pending']],
      );
    });
  });
});

describe('aion.events durability and dead letters', function () {
  this.timeout(120_000);

  it('delivers events published before a kernel stopped, once a new kernel starts on the same data', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'aion-events-restart-'));
    const receiver = new WebhookReceiver();
    const port = await closedPort();
    const events = { sinks: { hook: { type: 'webhook', url: `http://127.0.0.1:${port}/`, secret: SECRET, timeoutMs: 1000 } } };
    const published: string[] = [];
    try {
      const first = await startEventsKernel(events, { dataDir });
      try {
        for (let n = 0; n < 5; n++) published.push(await publish(first, 'fixture.thing', { n }, { tenantId: n % 2 ? 'acme' : 'globex', key: `thing-${n}` }));
        await waitFor('a failed try', async () => (await sinkStatus(first, 'hook')).attempts > 0);
      } finally {
        await first.stop();
      }
      await receiver.listen(port);
      const second = await startEventsKernel(events, { dataDir });
      try {
        await waitFor('the backlog at the receiver', async () => receiver.accepted().length >= 5);
        await new Promise((r) => setTimeout(r, 150));
        const accepted = receiver.accepted();
        assert.deepEqual(
          accepted.map((e) => e.id),
          published,
        );
        assert.deepEqual(
          accepted.map((e) => e.tenant_id),
          ['globex', 'acme', 'globex', 'acme', 'globex'],
        );
        assert.deepEqual(
          accepted.map((e) => (e as unknown as { key: string }).key),
          [0, 1, 2, 3, 4].map((n) => `thing-${n}`),
        );
        assert.equal((await sinkStatus(second, 'hook')).backlog, 0);
      } finally {
        await second.stop();
      }
    } finally {
      await receiver.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('lets one of two kernels sharing a database dispatch a sink at a time: each event is delivered once', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'aion-events-shared-'));
    const receiver = new WebhookReceiver();
    const port = await receiver.listen();
    const events = { leaseMs: 1000, sinks: { hook: { type: 'webhook', url: `http://127.0.0.1:${port}/`, secret: SECRET, timeoutMs: 1000 } } };
    const a = await startEventsKernel(events, { dataDir });
    const b = await startEventsKernel(events, { dataDir });
    try {
      const fromA: string[] = [];
      const fromB: string[] = [];
      for (let n = 0; n < 10; n++) {
        fromA.push(await publish(a, 'fixture.thing', { n }));
        fromB.push(await publish(b, 'fixture.thing', { n }));
      }
      await waitFor('20 events at the receiver', async () => receiver.accepted().length >= 20);
      await new Promise((r) => setTimeout(r, 300));
      const got = receiver.accepted().map((e) => e.id);
      assert.equal(got.length, 20, 'no event twice');
      assert.deepEqual(
        got.filter((id) => fromA.includes(id)),
        fromA,
      );
      assert.deepEqual(
        got.filter((id) => fromB.includes(id)),
        fromB,
      );
    } finally {
      await a.stop();
      await b.stop();
      await receiver.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('gives up on a receiver that does not answer within timeoutMs and tries again', async () => {
    const receiver = new WebhookReceiver();
    let calls = 0;
    receiver.status = () => (calls++ === 0 ? 0 : 200);
    const port = await receiver.listen();
    const kernel = await startEventsKernel({ sinks: { hook: { type: 'webhook', url: `http://127.0.0.1:${port}/`, secret: SECRET, timeoutMs: 300 } } });
    try {
      const id = await publish(kernel, 'fixture.thing', { n: 1 });
      await waitFor('the retry to be answered', async () => receiver.accepted().length === 1);
      assert.equal(receiver.requests.length, 2);
      assert.deepEqual(
        receiver.requests.map((r) => JSON.parse(r.body).id),
        [id, id],
      );
      const status = await sinkStatus(kernel, 'hook');
      assert.match(status.last_error!, /did not answer within 300 ms/);
      assert.equal(status.delivered, 1);
    } finally {
      await kernel.stop();
      await receiver.close();
    }
  });

  it('sets an event aside as dead after the configured tries, only when configured, and delivers the rest', async () => {
    const kernel = await startEventsKernel({ deadLetterAfterAttempts: 3, sinks: { memory: { type: 'memory', options: { rejectPoison: true } } } });
    try {
      const good1 = await publish(kernel, 'fixture.thing', { n: 1 });
      const poison = await publish(kernel, 'fixture.thing', { n: 2, poison: true });
      const good2 = await publish(kernel, 'fixture.thing', { n: 3 });
      const received = await waitFor('the good events', async () => {
        const r = await kernel.executeCommand<{ events: Array<{ id: string }> }>('publisher.received');
        return r.events.length >= 2 && r;
      });
      assert.deepEqual(
        received.events.map((e) => e.id),
        [good1, good2],
      );
      const status = await sinkStatus(kernel, 'memory');
      assert.equal(status.dead, 1);
      assert.equal(status.backlog, 0);
      assert.match(status.last_error!, /poison event/);
      const res = await kernel.request(`/v1/events?after=${good1}&limit=1`, { headers: ADMIN });
      const [dead] = ((await res.json()) as { events: StoredEvent[] }).events;
      assert.equal(dead!.id, poison);
      assert.deepEqual(
        dead!.deliveries.map((d) => [d.status, d.attempts]),
        [['dead', 3]],
      );
    } finally {
      await kernel.stop();
    }
  });

  it('reports a misconfigured sink and keeps its events for when it is fixed', async () => {
    const kernel = await startEventsKernel({ sinks: { broken: { type: 'kafka' }, unsigned: { type: 'webhook', url: 'http://127.0.0.1:9/' } } });
    try {
      await publish(kernel, 'fixture.thing', { n: 1 });
      const broken = await sinkStatus(kernel, 'broken');
      assert.equal(broken.enabled, false);
      assert.match(broken.last_error!, /^EVENT_SINK_INVALID: .*no installed extension contributes the sink type kafka/);
      assert.equal(broken.backlog, 1);
      const unsigned = await sinkStatus(kernel, 'unsigned');
      assert.match(unsigned.last_error!, /needs a secret/);
    } finally {
      await kernel.stop();
    }
  });
});
