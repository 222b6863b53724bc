/**
 * gRPC `Submit` (wait) vs REST `POST /v1/tasks` (wait) against the same hub and fake upstream, in
 * the same run: sequential latency in alternating blocks, then closed-loop throughput per protocol.
 *
 *   node dist/bench/run.js        BENCH_N (default 400) sequential calls per side, BENCH_CONCURRENCY (32), BENCH_TOTAL (2000)
 */
import { bearer, startHub, tasksClient, unary } from '../test/helpers.js';

const N = Number(process.env.BENCH_N ?? 400);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const TOTAL = Number(process.env.BENCH_TOTAL ?? 2000);
const BLOCK = 50;

// Per-user rate limits would throttle a closed loop from one user: off for the measurement.
const hub = await startHub({ grpc: { maxInFlight: 4096 }, router: { limits: { maxRunningTasks: 4096 } }, auth: { rateLimits: { enabled: false } } });
const client = tasksClient(hub.grpc.port);
const metadata = bearer(hub.adminToken);
const request = { intent: 'chat', messages: [{ role: 'user', content: 'bench' }], wait: true };
const restBody = JSON.stringify(request);

async function viaGrpc(): Promise<void> {
  const task = await unary(client, 'Submit', request, metadata);
  if (task.status !== 'OK') throw new Error(`gRPC task ended ${task.status}`);
}

async function viaRest(): Promise<void> {
  const res = await fetch(`${hub.kernel.url}/v1/tasks`, {
    method: 'POST',
    headers: { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/json' },
    body: restBody,
  });
  const task = (await res.json()) as { status: string };
  if (task.status !== 'OK') throw new Error(`REST task ended ${res.status} ${JSON.stringify(task)}`);
}

const sides = [
  ['REST POST /v1/tasks (baseline)', viaRest],
  ['gRPC Submit', viaGrpc],
] as const;
const latency: Record<string, number[]> = {};
for (let i = 0; i < 40; i++) await (i % 2 ? viaGrpc() : viaRest());
for (let done = 0; done < N; done += BLOCK) {
  for (const [name, fn] of sides) {
    for (let i = 0; i < BLOCK; i++) {
      const started = performance.now();
      await fn();
      (latency[name] ??= []).push(performance.now() - started);
    }
  }
}

async function throughput(fn: () => Promise<void>): Promise<number> {
  let issued = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (issued++ < TOTAL) await fn();
    }),
  );
  return TOTAL / ((performance.now() - started) / 1000);
}
const rates: Record<string, number> = {};
for (const [name, fn] of sides) rates[name] = await throughput(fn);

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
console.log(
  `\ngRPC Submit vs REST POST /v1/tasks, both waiting for the result; ${N} sequential calls each, then ${TOTAL} calls with ${CONCURRENCY} in flight\n`,
);
console.log('| protocol | p50 ms | p99 ms | throughput (tasks/s) |\n|---|---|---|---|');
for (const [name] of sides)
  console.log(`| ${name} | ${pct(latency[name]!, 50).toFixed(2)} | ${pct(latency[name]!, 99).toFixed(2)} | ${rates[name]!.toFixed(0)} |`);
const [rest, grpc] = sides.map(([name]) => name);
console.log(
  `\nratio gRPC/REST: p50 ${(pct(latency[grpc!]!, 50) / pct(latency[rest!]!, 50)).toFixed(3)}×, throughput ${(rates[grpc!]! / rates[rest!]!).toFixed(3)}×`,
);
client.close();
await hub.stop();
