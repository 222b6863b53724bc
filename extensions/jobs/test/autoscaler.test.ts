import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Autoscaler, decideWorkers, LocalWorkerAction, type ScaleAction, type ScalePolicy } from '../src/autoscaler.js';
import { waitFor } from './helpers.js';

const policy: ScalePolicy = { minWorkers: 1, maxWorkers: 4, scaleUpDepth: 10, scaleDownDepth: 2 };
const cpu = (depth: number) => ({ queue: 'ai_jobs', depth, workerType: 'cpu' as const });

describe('autoscaler decisions', () => {
  it('scales up one step when the waiting jobs per worker pass the threshold, never past the maximum', () => {
    assert.equal(decideWorkers({ depths: [cpu(25)], current: 2 }, policy).workers, 3);
    assert.equal(decideWorkers({ depths: [cpu(1000)], current: 4 }, policy).workers, 4);
  });

  it('scales down one step when the queues drain, never below the minimum', () => {
    assert.equal(decideWorkers({ depths: [cpu(1)], current: 3 }, policy).workers, 2);
    assert.equal(decideWorkers({ depths: [cpu(0)], current: 1 }, policy).workers, 1);
  });

  it('stays within the thresholds', () => {
    assert.deepEqual(decideWorkers({ depths: [cpu(10)], current: 2 }, policy), { workers: 2, reason: 'within thresholds' });
  });

  it('never counts cleanup queues', () => {
    assert.equal(decideWorkers({ depths: [{ queue: 'cleanup', depth: 500, workerType: 'cleanup' }], current: 1 }, policy).workers, 1);
  });

  it('starts a worker from zero when jobs wait, and brings the count back inside [min, max]', () => {
    const zeroMin = { ...policy, minWorkers: 0 };
    assert.equal(decideWorkers({ depths: [cpu(3)], current: 0 }, zeroMin).workers, 1);
    assert.equal(decideWorkers({ depths: [cpu(0)], current: 0 }, zeroMin).workers, 0);
    assert.equal(decideWorkers({ depths: [], current: 9 }, policy).workers, 4);
    assert.equal(decideWorkers({ depths: [], current: 0 }, policy).workers, 1);
  });

  it('drives a scale action each round with the decision', async () => {
    let workers = 1;
    const calls: number[] = [];
    const action: ScaleAction = { current: () => workers, scale: async (n) => (calls.push(n), (workers = n), { workers: n }) };
    let depth = 50;
    const scaler = new Autoscaler({
      policy: () => policy,
      pollIntervalMs: 1000,
      depths: async () => [cpu(depth)],
      action: async () => action,
      log: () => undefined,
    });
    await scaler.tick();
    await scaler.tick();
    depth = 0;
    await scaler.tick();
    assert.deepEqual(calls, [2, 3, 2]);
  });
});

describe('local scale action', () => {
  it('spawns worker processes with the CLI and stops them with SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aion-scale-'));
    const cli = join(dir, 'fake-cli.mjs');
    // Stands in for the aion CLI: records its arguments, then waits for SIGTERM like `aion worker`.
    writeFileSync(
      cli,
      `import { writeFileSync, rmSync } from 'node:fs';
const mark = ${JSON.stringify(dir)} + '/worker-' + process.pid;
writeFileSync(mark, JSON.stringify(process.argv.slice(2)));
process.on('SIGTERM', () => { rmSync(mark); process.exit(0); });
setInterval(() => {}, 1000);
`,
    );
    const action = new LocalWorkerAction({ cliPath: cli, args: ['--queues', 'ai_jobs', '--concurrency', '2'], env: process.env, log: () => undefined });
    const running = () => readdirSync(dir).filter((f) => f.startsWith('worker-'));
    try {
      assert.deepEqual(await action.scale(2), { workers: 2 });
      await waitFor('two workers', async () => running().length === 2);
      assert.deepEqual(await action.scale(1), { workers: 1 });
      await waitFor('one worker', async () => running().length === 1);
      assert.equal(action.current(), 1);
    } finally {
      await action.stopAll();
    }
    assert.equal(running().length, 0);
  });
});
