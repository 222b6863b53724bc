import { FakeTools } from '@aion/ext-accelerators/testing';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startTestKernel, type TestKernel } from '@aion/core';
import type { JobsHealth, JobView } from '../src/api.js';
import { CLI, FIXTURES, forEachBackend, waitFor } from './helpers.js';

const ADMIN = { authorization: 'Bearer admin' };

forEachBackend('aion worker processes', (backend) => {
  let kernel: TestKernel;
  let configFile: string;
  const children: ChildProcess[] = [];
  const jobsConfig = backend.jobsConfig({
    inProcessWorkers: { enabled: false },
    leaseMs: 1000,
    pollIntervalMs: 20,
    heartbeatIntervalMs: 200,
    unresponsiveAfterMs: 1500,
  });
  const enqueue = (queue: string, payload: unknown, options?: unknown) => kernel.executeCommand<JobView>('reports.enqueue', queue, payload, options);
  const get = (id: string) => kernel.executeCommand<JobView>('reports.get', id);
  const health = async () => (await (await kernel.request('/v1/jobs/health', { headers: ADMIN })).json()) as JobsHealth;

  /** `aion worker` as an operator runs it, sharing the hub's data directory and configuration. */
  const startWorker = (id: string, queues = 'slow', extra: string[] = [], env: NodeJS.ProcessEnv = {}) => {
    const child = spawn(
      process.execPath,
      [
        CLI,
        'worker',
        '--queues',
        queues,
        '--concurrency',
        '1',
        '--id',
        id,
        '--config',
        configFile,
        '--data-dir',
        kernel.dataDir,
        '--builtins',
        'aion.storage,aion.jobs',
        '--extensions-dir',
        resolve(FIXTURES, 'reports'),
        ...extra,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, AION_LOG_LEVEL: 'error', ...env },
      },
    );
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    children.push(child);
    const exited = new Promise<{ code: number | null; output: string }>((r) => child.once('exit', (code) => r({ code, output })));
    return { child, exited };
  };

  before(async () => {
    kernel = await startTestKernel({
      builtins: ['aion.storage', 'aion.jobs'],
      extensions: [resolve(FIXTURES, 'reports'), resolve(FIXTURES, 'jobs-auth')],
      config: { permissions: { grants: { 'fixtures.jobs-auth': { kernelHost: true } } }, extensions: { 'aion.jobs': jobsConfig } },
    });
    configFile = join(kernel.dataDir, 'worker-config.json');
    writeFileSync(configFile, JSON.stringify({ extensions: { 'aion.jobs': jobsConfig } }));
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await kernel?.stop();
  });

  it('runs jobs in a separate `aion worker` process that heartbeats its id, type, queues and load', async () => {
    const { child } = startWorker('w1');
    const job = await enqueue('slow', { action: 'echo', value: 'remote' });
    const done = await waitFor(
      'the worker to run the job',
      async () => {
        const j = await get(job.id);
        return j.status === 'success' && j;
      },
      60_000,
    );
    assert.deepEqual(done.result, { echo: 'remote' });
    const w1 = (await health()).workers.find((w) => w.id === 'w1')!;
    assert.equal(w1.type, 'cpu');
    assert.deepEqual(w1.queues, ['slow']);
    assert.equal(w1.pid, child.pid);
    assert.equal(w1.state, 'ok');
    assert.ok(w1.load >= 0 && w1.load <= 1);
  });

  it('retries a job whose worker died once its lease ran out, and shows the dead worker unresponsive', async () => {
    const job = await enqueue('slow', { action: 'sleep', ms: 4000 }, { attempts: 2 });
    await waitFor('w1 to take the job', async () => (await get(job.id)).status === 'running');
    const w1 = children[0]!;
    w1.kill('SIGKILL');
    await new Promise((r) => w1.once('exit', r));
    startWorker('w2');
    const done = await waitFor(
      'another worker to finish the job',
      async () => {
        const j = await get(job.id);
        return ['success', 'failed'].includes(j.status) && j;
      },
      60_000,
    );
    assert.equal(done.status, 'success');
    assert.equal(done.attempts.made, 2);
    const dead = await waitFor('w1 to be unresponsive', async () => (await health()).workers.find((w) => w.id === 'w1' && w.state === 'unresponsive'));
    assert.equal(dead.id, 'w1');
    const h = await health();
    assert.ok(h.problems.some((p) => p.includes('w1')));
  });

  it('stops on SIGTERM after its job in flight, leaving the heartbeat table', async () => {
    const w2 = children[1]!;
    const job = await enqueue('slow', { action: 'sleep', ms: 500 });
    await waitFor('w2 to take the job', async () => (await get(job.id)).status === 'running');
    const exited = new Promise<number | null>((r) => w2.once('exit', (code) => r(code)));
    w2.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.equal((await get(job.id)).status, 'success');
    assert.equal(
      (await health()).workers.some((w) => w.id === 'w2'),
      false,
    );
  });

  it('runs cleanup queues in one worker of the installation at a time', async () => {
    startWorker('c1', 'cleanup');
    startWorker('c2', 'cleanup');
    const holders = await waitFor(
      'both cleanup workers to heartbeat',
      async () => {
        const workers = (await health()).workers.filter((w) => w.id === 'c1' || w.id === 'c2');
        return workers.length === 2 && workers;
      },
      60_000,
    );
    assert.equal(holders.filter((w) => w.queues.includes('cleanup')).length, 1);
    for (const c of children.slice(-2)) c.kill('SIGTERM');
  });

  it('refuses a GPU queue on a cpu worker, with a message that says how', async () => {
    const { exited } = startWorker('w3', 'gpu_ai_jobs');
    const { code, output } = await exited;
    assert.equal(code, 1);
    assert.match(output, /VALIDATION_FAILED: queue gpu_ai_jobs needs a GPU: serve it with --type gpu/);
  });

  it('refuses a gpu worker where no GPU can be found, naming what is missing', async () => {
    const { exited } = startWorker('g1', 'gpu_ai_jobs', ['--type', 'gpu']);
    const { code, output } = await exited;
    assert.equal(code, 1);
    assert.match(output, /NO_ACCELERATOR: a gpu worker needs a GPU, and aion\.accelerators .* is not installed/);
  });

  it('runs a gpu worker where a GPU is found, one job at a time', async () => {
    const tools = new FakeTools();
    // nvidia-smi as an H200 answers the detector's query (see accelerator-nvidia's fixtures).
    tools.write(
      'nvidia-smi',
      'case "$*" in *--query-gpu*) echo "0, NVIDIA H200, GPU-01060625-fc54-8566-0829-91dbf3a104a7, 143771, 0, 143156, 0, 35, 580.159.04, 9.0";; *--version*) echo "CUDA Version        : 13.0";; esac',
    );
    const builtins = ['--builtins', 'aion.storage,aion.jobs,aion.accelerators,aion.accelerator-nvidia', '--type', 'gpu', '--concurrency', '4'];
    const { child } = startWorker('g2', 'slow', builtins, { PATH: `${tools.dir}:${process.env.PATH}` });
    const worker = await waitFor('the gpu worker to heartbeat', async () => (await health()).workers.find((w) => w.id === 'g2'), 60_000);
    assert.equal(worker.type, 'gpu');
    assert.equal(worker.concurrency, 1);
    child.kill('SIGTERM');
  });
});
