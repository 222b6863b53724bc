/**
 * The benchmark's kernel, in its own process so the client's work does not share its event loop:
 * prints `{ url, dataDir }` once ready and stops when its stdin closes. Each `stats` line on stdin is
 * answered with one JSON line: this process's event-loop delay and garbage-collection pauses since the
 * previous `stats`, so the benchmark can tell a slow request's cause (a stall here, or the machine).
 */
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { startTestKernel, type TestKernelOptions } from '@aion/core';

const options = JSON.parse(process.argv[2]!) as TestKernelOptions;
const kernel = await startTestKernel(options);

const loopDelay = monitorEventLoopDelay({ resolution: 1 });
loopDelay.enable();
let gcPauses: number[] = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) gcPauses.push(entry.duration);
}).observe({ entryTypes: ['gc'] });

process.stdout.write(`${JSON.stringify({ url: kernel.url, dataDir: kernel.dataDir })}\n`);
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line !== 'stats') return;
  const ms = (ns: number) => ns / 1e6;
  const stats = {
    loopDelayP99: ms(loopDelay.percentile(99)),
    loopDelayMax: ms(loopDelay.max),
    gcCount: gcPauses.length,
    gcTotal: gcPauses.reduce((a, b) => a + b, 0),
    gcMax: Math.max(0, ...gcPauses),
  };
  loopDelay.reset();
  gcPauses = [];
  process.stdout.write(`${JSON.stringify(stats)}\n`);
});
lines.on('close', async () => {
  await kernel.stop();
  process.exit(0);
});
