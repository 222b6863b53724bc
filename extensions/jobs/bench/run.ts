/**
 * Queue throughput (enqueue → complete of no-op jobs, jobs/s) and enqueue-to-start latency p50/p99,
 * on the embedded backend (SQLite) and on BullMQ (Redis), in one run. The baseline is the floor any
 * dispatch pays here: the same number of command round trips to the same extension host, no queue.
 *   node dist/bench/run.js [jobs]
 */
import { randomBytes } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestKernel } from '@aion/core';
import { dropPrefix, probeRedis, REDIS_URL } from '../test/helpers.js';

const FIXTURE = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'fixture');
const COUNT = Number(process.argv[2] ?? 2000);
const IN_FLIGHT = 32;

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

async function measure(name: string, jobsConfig: Record<string, unknown>): Promise<void> {
  const kernel = await startTestKernel({
    builtins: ['aion.storage', 'aion.jobs'],
    extensions: [FIXTURE],
    config: { extensions: { 'aion.jobs': { inProcessWorkers: { startDelayMs: 0 }, pollIntervalMs: 50, ...jobsConfig } } },
  });
  try {
    await kernel.executeCommand('bench.run', 200, IN_FLIGHT);
    const baselineStart = Date.now();
    let sent = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (sent++ < COUNT) await kernel.executeCommand('bench.noop');
      }),
    );
    const baseline = COUNT / ((Date.now() - baselineStart) / 1000);
    const { seconds, startLatencies } = await kernel.executeCommand<{ seconds: number; startLatencies: number[] }>('bench.run', COUNT, IN_FLIGHT);
    const sorted = startLatencies.sort((a, b) => a - b);
    console.log(
      `${name.padEnd(9)} ${String(COUNT).padStart(6)} jobs  ${(COUNT / seconds).toFixed(0).padStart(6)} jobs/s  start p50 ${pct(sorted, 50)} ms  p99 ${pct(sorted, 99)} ms   baseline: ${baseline.toFixed(0)} command round trips/s`,
    );
  } finally {
    await kernel.stop();
  }
}

console.log(`aion.jobs: ${COUNT} no-op jobs, ${IN_FLIGHT} enqueues in flight, 64 handler slots`);
await measure('embedded', { backend: 'embedded' });
const redisProblem = await probeRedis();
if (redisProblem) console.log(`bullmq    skipped: Redis at ${REDIS_URL} is unreachable (${redisProblem})`);
else {
  const prefix = `aion-bench-${randomBytes(4).toString('hex')}`;
  try {
    await measure('bullmq', { backend: 'bullmq', redisUrl: REDIS_URL, redisPrefix: prefix });
  } finally {
    await dropPrefix(prefix);
  }
}
