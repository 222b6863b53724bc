import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestKernel, type TestKernel } from '@aion/core';
import type { AcceleratorDevice, AcceleratorSnapshot, MetricFamily } from '../src/api.js';
import { FakeTools } from '../src/testing.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const repo = resolve(root, '../..');
const fixture = (name: string) => join(root, 'test/fixtures', name);
const DETECTORS = ['aion.accelerator-nvidia', 'aion.accelerator-amd', 'aion.accelerator-intel', 'aion.accelerator-cpu'];

// nvidia-smi 580.159.04 (CUDA 13.0) on an H200, as captured by accelerator-nvidia/scripts/capture-fixture.sh;
// the query answer is read from a file so a test can change the reading between refreshes.
const H200_VERSION = 'NVIDIA-SMI version  : 580.159.04\nNVML version        : 580.159\nDRIVER version      : 580.159.04\nCUDA Version        : 13.0';
const h200Query = (usedMiB: number, utilization: number) =>
  `0, NVIDIA H200, GPU-01060625-fc54-8566-0829-91dbf3a104a7, 143771, ${usedMiB}, ${143156 - usedMiB}, ${utilization}, 35, 580.159.04, 9.0\n`;

function fakeH200(tools: FakeTools): string {
  const state = join(tools.dir, 'query.csv');
  writeFileSync(state, h200Query(0, 0));
  tools.write(
    'nvidia-smi',
    `case "$1" in\n  --query-gpu=*) exec /bin/cat ${state} ;;\n  --version) /bin/cat <<'EOF'\n${H200_VERSION}\nEOF\n  ;;\n  *) exit 2 ;;\nesac`,
  );
  return state;
}

async function json<T>(response: Response): Promise<T> {
  return (await response.json()) as T;
}

async function eventually<T>(read: () => Promise<T>, ok: (value: T) => boolean, ms = 15_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (ok(value) || Date.now() > until) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('aion.accelerators in a real kernel, with the four detectors and nvidia-smi on PATH', () => {
  let kernel: TestKernel;
  let tools: FakeTools;
  let queryFile: string;
  let savedPath: string | undefined;
  const get = (token?: string, query = '') => kernel.request(`/v1/accelerators${query}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

  before(async () => {
    tools = new FakeTools();
    queryFile = fakeH200(tools);
    // Hosts inherit PATH from the kernel: only the fake tools are there, so no real vendor tool interferes.
    savedPath = process.env.PATH;
    process.env.PATH = tools.dir;
    kernel = await startTestKernel({
      builtins: DETECTORS,
      extensions: [fixture('test-auth'), fixture('probe')],
      config: { extensions: { 'aion.accelerators': { refreshIntervalMs: 200 } } },
    });
  });
  after(async () => {
    await kernel?.stop();
    process.env.PATH = savedPath;
    tools.remove();
  });

  it('lists the GPU with its CUDA runtime, the CPU, and the vendors that are not present', async () => {
    const response = await get('reader');
    assert.equal(response.status, 200);
    const body = await json<AcceleratorSnapshot>(response);
    const gpu = body.devices.find((d) => d.id === 'nvidia:0')!;
    assert.equal(gpu.name, 'NVIDIA H200');
    assert.equal(gpu.node, 'hub');
    assert.equal(gpu.vendor, 'nvidia');
    assert.equal(gpu.kind, 'gpu');
    assert.equal(gpu.uuid, 'GPU-01060625-fc54-8566-0829-91dbf3a104a7');
    assert.deepEqual(gpu.runtime, { name: 'CUDA', version: '13.0' });
    assert.equal(gpu.computeCapability, '9.0');
    assert.equal(gpu.extensionId, 'aion.accelerator-nvidia');
    const cpu = body.devices.find((d) => d.id === 'cpu:0')!;
    assert.equal(cpu.kind, 'cpu');
    assert.ok(cpu.cores! >= 1);
    const state = Object.fromEntries(body.detectors.map((d) => [d.id, d.state]));
    assert.deepEqual(state, { nvidia: 'present', amd: 'absent', intel: 'absent', cpu: 'present' });
    assert.match(body.detectors.find((d) => d.id === 'amd')!.reason!, /rocm-smi is not installed/);
  });

  it('requires accelerators:read; an admin holding * gets in', async () => {
    assert.equal((await get()).status, 401);
    const forbidden = await get('nobody');
    assert.equal(forbidden.status, 403);
    assert.equal((await json<{ error: { code: string } }>(forbidden)).error.code, 'FORBIDDEN');
    assert.equal((await get('admin')).status, 200);
  });

  it('refreshes readings on its interval', async () => {
    writeFileSync(queryFile, h200Query(40960, 87));
    const body = await eventually(
      async () => json<AcceleratorSnapshot>(await get('reader')),
      (b) => b.devices.find((d) => d.id === 'nvidia:0')?.memoryUsedMiB === 40960,
    );
    const gpu = body.devices.find((d) => d.id === 'nvidia:0')!;
    assert.equal(gpu.memoryUsedMiB, 40960);
    assert.equal(gpu.utilizationPercent, 87);
    const readings = await kernel.executeCommand<MetricFamily[]>('probe.readings');
    const value = (name: string) => readings.find((m) => m.name === name)!.values.find((v) => v.labels.device === 'nvidia:0')?.value;
    assert.equal(value('aion_gpu_utilization_ratio'), 0.87);
    assert.equal(value('aion_gpu_memory_used_bytes'), 40960 * 1024 * 1024);
    assert.equal(value('aion_gpu_memory_total_bytes'), 143771 * 1024 * 1024);
    assert.ok(!readings.some((m) => m.values.some((v) => v.labels.device === 'cpu:0')), 'the gauges are GPU gauges');
  });

  it('finds a GPU for another extension, and fails with NO_ACCELERATOR naming what was required', async () => {
    const device = await kernel.executeCommand<AcceleratorDevice>('probe.find', { vendor: 'nvidia', memoryMiB: 16384 });
    assert.equal(device.id, 'nvidia:0');
    await assert.rejects(kernel.executeCommand('probe.find', { vendor: 'amd' }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'NO_ACCELERATOR');
      assert.match(err.message, /requires a GPU of vendor amd/);
      assert.match(err.message, /amd: rocm-smi is not installed/);
      return true;
    });
    await assert.rejects(kernel.executeCommand('probe.find', { vendor: 'nvidia', memoryMiB: 1_000_000 }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'NO_ACCELERATOR');
      assert.match(err.message, /with 1000000 MiB free/);
      assert.match(err.message, /nvidia:0 NVIDIA H200 \(\d+ MiB free\): only \d+ MiB free/);
      return true;
    });
    await assert.rejects(kernel.executeCommand('probe.find', { memoryMiB: 'lots' }), { code: 'BAD_REQUEST' });
    await assert.rejects(kernel.executeCommand('probe.find', { vram: 1 }), { code: 'BAD_REQUEST' });
    assert.equal((await get('reader')).status, 200, 'bad input leaves the extension serving');
  });
});

describe('aion.accelerators with hostile detectors', () => {
  let kernel: TestKernel;
  before(async () => {
    kernel = await startTestKernel({
      builtins: ['aion.accelerator-cpu'],
      extensions: [fixture('test-auth'), fixture('hostile-detectors')],
      // Generous, so the well-behaved CPU detector answers in time on a loaded machine; the hanging one never does.
      config: { extensions: { 'aion.accelerators': { refreshIntervalMs: 0, detectorTimeoutMs: 5000 } } },
    });
  });
  after(() => kernel?.stop());

  it('reports each misbehaving detector with a code, leaves its devices out, and keeps serving the rest', async () => {
    for (let round = 0; round < 2; round++) {
      const response = await kernel.request('/v1/accelerators?refresh=1', { headers: { authorization: 'Bearer reader' } });
      assert.equal(response.status, 200);
      const body = await json<AcceleratorSnapshot>(response);
      const byId = Object.fromEntries(body.detectors.map((d) => [d.id, d]));
      assert.equal(byId.hangs!.state, 'error');
      assert.equal(byId.hangs!.error!.code, 'ACCELERATOR_DETECTOR_TIMEOUT');
      assert.equal(byId.lies!.error!.code, 'ACCELERATOR_DETECTOR_RESULT_INVALID');
      assert.equal(byId.floods!.error!.code, 'ACCELERATOR_DETECTOR_RESULT_INVALID');
      assert.equal(byId.throws!.error!.code, 'ACCELERATOR_TOOL_FAILED');
      assert.equal(byId.cpu!.state, 'present');
      assert.deepEqual(
        body.devices.map((d) => d.id),
        ['cpu:0'],
      );
    }
  });
});

describe('aion accelerators (CLI)', () => {
  let tools: FakeTools;
  let cwd: string;
  before(() => {
    tools = new FakeTools();
    fakeH200(tools);
    cwd = mkdtempSync(join(tmpdir(), 'aion-accel-cli-'));
  });
  after(() => {
    tools.remove();
    rmSync(cwd, { recursive: true, force: true });
  });

  const aion = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((done, fail) => {
      const child = spawn(
        process.execPath,
        [
          join(repo, 'core/dist/src/cli/main.js'),
          'accelerators',
          ...args,
          '--builtins',
          'aion.accelerator-nvidia,aion.accelerator-amd,aion.accelerator-cpu',
          '--data-dir',
          join(cwd, 'data'),
        ],
        {
          cwd,
          env: { PATH: tools.dir, HOME: cwd, AION_LOG_LEVEL: 'error' },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c));
      child.stderr.on('data', (c: Buffer) => (stderr += c));
      child.on('error', fail);
      child.on('close', (code) => done({ code, stdout, stderr }));
    });

  it('prints a table of devices and detectors', async () => {
    const { code, stdout, stderr } = await aion([]);
    assert.equal(code, 0, stderr);
    const lines = stdout.split('\n');
    assert.match(lines[0]!, /^DEVICE\s+NODE\s+NAME\s+MEMORY\s+UTIL\s+TEMP\s+DRIVER\s+RUNTIME\s+COMPUTE$/);
    assert.match(stdout, /nvidia:0\s+hub\s+NVIDIA H200\s+0\.0\/140\.4 GiB\s+0%\s+35 C\s+580\.159\.04\s+CUDA 13\.0\s+9\.0/);
    assert.match(stdout, /cpu:0\s+hub/);
    assert.match(stdout, /amd\s+aion\.accelerator-amd\s+not present: rocm-smi is not installed/);
  });

  it('prints the snapshot as JSON with --json', async () => {
    const { code, stdout, stderr } = await aion(['--json']);
    assert.equal(code, 0, stderr);
    const snapshot = JSON.parse(stdout) as AcceleratorSnapshot;
    assert.deepEqual(snapshot.devices.map((d) => d.id).sort(), ['cpu:0', 'nvidia:0']);
  });
});
