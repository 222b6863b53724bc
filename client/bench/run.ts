/**
 * @aion/client overhead: a task submit (wait) + get through the client vs the same two requests with
 * bare `fetch` (same headers, Idempotency-Key included), against one real hub with a fake upstream,
 * in the same run, alternating blocks so both see the same machine.
 *
 *   node dist/bench/run.js        BENCH_N (default 400) pairs per side
 */
import { randomUUID } from 'node:crypto';
import { AionClient } from '../src/index.js';
import { startHub } from '../test/hub.js';

const N = Number(process.env.BENCH_N ?? 400);
const BLOCK = 50;

// Per-user rate limits would throttle a closed loop from one user: off for the measurement.
const hub = await startHub({ extensions: { 'aion.auth': { rateLimits: { enabled: false } } } });
const client = new AionClient({ baseUrl: hub.url });
await client.auth.login(hub.admin.username, hub.admin.password);
const token = (await client.auth.tokens())!.accessToken;
const body = { intent: 'chat', messages: [{ role: 'user' as const, content: 'bench' }], wait: true };

async function viaFetch(): Promise<void> {
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json', 'idempotency-key': randomUUID() };
  const res = await fetch(`${hub.url}/v1/tasks`, { method: 'POST', headers, body: JSON.stringify(body) });
  const task = (await res.json()) as { task_id: string; status: string };
  if (task.status !== 'OK') throw new Error(`task ended ${res.status} ${JSON.stringify(task)}`);
  const got = await fetch(`${hub.url}/v1/tasks/${task.task_id}`, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
  await got.json();
}

async function viaClient(): Promise<void> {
  const task = await client.tasks.submit(body);
  if (task.status !== 'OK') throw new Error(`task ended ${task.status}`);
  await client.tasks.get(task.task_id);
}

const samples: Record<'fetch' | 'client', number[]> = { fetch: [], client: [] };
for (let i = 0; i < 40; i++) await (i % 2 ? viaClient() : viaFetch()); // warm-up
for (let done = 0; done < N; done += BLOCK) {
  for (const [name, fn] of [
    ['fetch', viaFetch],
    ['client', viaClient],
  ] as const) {
    for (let i = 0; i < BLOCK; i++) {
      const started = performance.now();
      await fn();
      samples[name].push(performance.now() - started);
    }
  }
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const row = (name: string, xs: number[]) => `| ${name} | ${xs.length} | ${pct(xs, 50).toFixed(2)} | ${pct(xs, 99).toFixed(2)} | ${mean(xs).toFixed(2)} |`;
console.log(`\n@aion/client vs bare fetch: task submit (wait) + get, ${N} pairs each, ms\n`);
console.log('| path | n | p50 | p99 | mean |\n|---|---|---|---|---|');
console.log(row('bare fetch (baseline)', samples.fetch));
console.log(row('@aion/client', samples.client));
console.log(
  `\nratio client/fetch: p50 ${(pct(samples.client, 50) / pct(samples.fetch, 50)).toFixed(3)}×, mean ${(mean(samples.client) / mean(samples.fetch)).toFixed(3)}× (target ≤ 1.1×)`,
);
client.close();
await hub.stop();
