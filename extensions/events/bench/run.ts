/**
 * Publish → webhook delivered, through a real kernel (SQLite outbox) to a real HTTP receiver on
 * 127.0.0.1: one-at-a-time latency p50/p99, and the throughput of a burst (publishes 16 in flight, the
 * sink delivering in order). The baseline is the same signed JSON POSTed directly to the same receiver
 * with fetch, one after another as the sink does, in the same run.
 *   node dist/bench/run.js [events]
 */
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startTestKernel } from '@aion/core';
import { signWebhook } from '../src/sinks/signature.js';
import { FIXTURES, SECRET, WebhookReceiver } from '../test/helpers.js';

const COUNT = Number(process.argv[2] ?? 1000);
const SEQUENTIAL = 200;
const IN_FLIGHT = 16;

const pct = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};
const ms = (v: number) => `${v.toFixed(2)} ms`;

const receiver = new WebhookReceiver();
const arrivals = new Map<string, number>();
const waiting = new Map<string, () => void>();
receiver.status = ({ body }) => {
  const id = (JSON.parse(body) as { id: string }).id;
  arrivals.set(id, performance.now());
  waiting.get(id)?.();
  return 200;
};
const port = await receiver.listen();
const url = `http://127.0.0.1:${port}/hook`;
const arrived = (id: string) => (arrivals.has(id) ? Promise.resolve() : new Promise<void>((r) => waiting.set(id, r)));

// Baseline: what one signed POST costs without the outbox.
async function post(n: number): Promise<void> {
  const body = JSON.stringify({
    id: `baseline-${n}`,
    type: 'fixture.thing',
    source: 'bench',
    tenant_id: 'default',
    key: null,
    time: new Date().toISOString(),
    data: { n },
  });
  const timestamp = Math.floor(Date.now() / 1000);
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'aion-event-id': `baseline-${n}`,
      'aion-event-type': 'fixture.thing',
      'aion-event-timestamp': String(timestamp),
      'aion-signature': signWebhook(SECRET, timestamp, body),
    },
    body,
  });
  await res.text();
}
for (let n = 0; n < 50; n++) await post(n);
const baselineLatency: number[] = [];
for (let n = 0; n < SEQUENTIAL; n++) {
  const t0 = performance.now();
  await post(n);
  baselineLatency.push(performance.now() - t0);
}
let t0 = performance.now();
for (let n = 0; n < COUNT; n++) await post(n);
const baselineRate = COUNT / ((performance.now() - t0) / 1000);

const kernel = await startTestKernel({
  builtins: ['aion.storage', 'aion.events'],
  extensions: [resolve(FIXTURES, 'publisher')],
  config: { extensions: { 'aion.events': { sinks: { hook: { type: 'webhook', url, secret: SECRET, timeoutMs: 5000 } } } } },
});
try {
  const publish = async (n: number) =>
    (await kernel.executeCommand<{ ok: boolean; id: string; message?: string }>('publisher.publish', 'fixture.thing', { n })).id;
  for (let n = 0; n < 50; n++) await arrived(await publish(n));

  const publishLatency: number[] = [];
  const endToEnd: number[] = [];
  for (let n = 0; n < SEQUENTIAL; n++) {
    const start = performance.now();
    const id = await publish(n);
    publishLatency.push(performance.now() - start);
    await arrived(id);
    endToEnd.push(arrivals.get(id)! - start);
  }

  t0 = performance.now();
  const ids: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < COUNT) ids.push(await publish(next++));
    }),
  );
  const published = performance.now();
  await Promise.all(ids.map(arrived));
  const done = performance.now();
  const rate = COUNT / ((done - t0) / 1000);

  console.log(`aion.events bench: webhook sink on 127.0.0.1, SQLite outbox; ${SEQUENTIAL} one-at-a-time, then a burst of ${COUNT}`);
  console.log(`                          p50         p99         throughput`);
  console.log(
    `direct POST (baseline)    ${ms(pct(baselineLatency, 50)).padEnd(12)}${ms(pct(baselineLatency, 99)).padEnd(12)}${baselineRate.toFixed(0)} events/s (sequential)`,
  );
  console.log(
    `publish (durable)         ${ms(pct(publishLatency, 50)).padEnd(12)}${ms(pct(publishLatency, 99)).padEnd(12)}${(COUNT / ((published - t0) / 1000)).toFixed(0)} events/s (${IN_FLIGHT} in flight)`,
  );
  console.log(`publish → delivered       ${ms(pct(endToEnd, 50)).padEnd(12)}${ms(pct(endToEnd, 99)).padEnd(12)}${rate.toFixed(0)} events/s`);
  console.log(
    `ratio: delivered throughput ${(rate / baselineRate).toFixed(2)}× the direct POST; p50 latency ${(pct(endToEnd, 50) / pct(baselineLatency, 50)).toFixed(1)}× the direct POST`,
  );
} finally {
  await kernel.stop();
  await receiver.close();
}
