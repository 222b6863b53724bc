import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestKernel, type TestKernel } from '@aion/core';
import { bearer, fixture, removeDir, tempDir } from './support/helpers.js';

// nvidia-smi 580.159.04 (CUDA 13.0) on an H200, as the accelerator-nvidia fixture captured it.
const H200_QUERY = '0, NVIDIA H200, GPU-01060625-fc54-8566-0829-91dbf3a104a7, 143771, 0, 143156, 0, 35, 580.159.04, 9.0';
const H200_VERSION = 'NVIDIA-SMI version  : 580.159.04\nDRIVER version      : 580.159.04\nCUDA Version        : 13.0';

const ENV_SKILL = `import { createInterface } from 'node:readline';
const send = (m) => process.stdout.write(JSON.stringify({ jsonrpc: '2.0', ...m }) + '\\n');
createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line);
  if (m.method === 'initialize') send({ id: m.id, result: { protocolVersion: m.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'gpu-env', version: '1.0.0' } } });
  else if (m.method === 'tools/call') {
    const seen = { cuda: process.env.CUDA_VISIBLE_DEVICES ?? null };
    send({ id: m.id, result: { content: [{ type: 'text', text: JSON.stringify(seen) }], structuredContent: seen } });
  }
});
`;

function writePack(dir: string): string {
  const skill = (id: string, gpu: Record<string, unknown>) => ({
    id: `gpu.${id}`,
    title: id,
    description: `Reports the device it was given (${id}).`,
    runtime: 'process',
    entry: 'bin/env-skill.mjs',
    inputSchema: { type: 'object' },
    resources: { gpu },
  });
  mkdirSync(join(dir, 'bin'), { recursive: true });
  writeFileSync(join(dir, 'bin/env-skill.mjs'), ENV_SKILL);
  writeFileSync(
    join(dir, 'pack.json'),
    JSON.stringify({
      name: 'gpu',
      version: '1.0.0',
      title: 'GPU placement',
      description: 'Process skills that need a GPU, or use one when present.',
      skills: [
        skill('required', { required: true, vendor: 'nvidia', memoryMiB: 16384 }),
        skill('huge', { required: true, memoryMiB: 1_000_000 }),
        skill('optional', { required: false }),
      ],
    }),
  );
  return dir;
}

describe('skills: GPU placement through aion.accelerators', function () {
  this.timeout(90_000);
  let work: string;
  let savedPath: string | undefined;
  before(() => {
    work = tempDir();
    savedPath = process.env.PATH;
  });
  after(() => {
    process.env.PATH = savedPath;
    removeDir(work);
  });

  /** A kernel whose hosts see only `toolsDir` on PATH (with or without a stand-in nvidia-smi), with the gpu pack installed. */
  async function kernelWith(toolsDir: string): Promise<TestKernel> {
    process.env.PATH = toolsDir;
    const kernel = await startTestKernel({
      builtins: ['aion.skills', 'aion.accelerator-nvidia'],
      extensions: [fixture('test-auth')],
      config: { extensions: { 'aion.skills': { packsDir: join(toolsDir, 'packs'), watch: false } } },
    });
    await kernel.executeCommand('skills.install', { pack: writePack(join(toolsDir, 'src-gpu')), 'allow-unsigned': true });
    return kernel;
  }
  const run = (kernel: TestKernel, id: string) =>
    kernel.request(`/v1/skills/${id}/execute`, {
      method: 'POST',
      headers: { ...bearer('runner'), 'content-type': 'application/json' },
      body: JSON.stringify({ args: {} }),
    });

  it('runs a GPU skill with the chosen device in CUDA_VISIBLE_DEVICES, and refuses one whose memory no GPU has free', async () => {
    const tools = join(work, 'with-gpu');
    mkdirSync(tools, { recursive: true });
    writeFileSync(
      join(tools, 'nvidia-smi'),
      `#!/bin/sh\ncase "$1" in\n  --query-gpu=*) echo '${H200_QUERY}' ;;\n  --version) /bin/cat <<'EOF'\n${H200_VERSION}\nEOF\n  ;;\nesac\n`,
    );
    chmodSync(join(tools, 'nvidia-smi'), 0o755);
    const kernel = await kernelWith(tools);
    try {
      const placed = await run(kernel, 'gpu.required');
      assert.equal(placed.status, 200, await placed.clone().text());
      assert.deepEqual(((await placed.json()) as { result: unknown }).result, { cuda: 'GPU-01060625-fc54-8566-0829-91dbf3a104a7' });
      const huge = await run(kernel, 'gpu.huge');
      assert.equal(huge.status, 503);
      const error = ((await huge.json()) as { error: { code: string; message: string } }).error;
      assert.equal(error.code, 'NO_ACCELERATOR');
      assert.match(error.message, /with 1000000 MiB free/);
    } finally {
      await kernel.stop();
    }
  });

  it('refuses a GPU-requiring skill with NO_ACCELERATOR when no GPU is present, and runs an optional one on CPU', async () => {
    const tools = join(work, 'without-gpu');
    mkdirSync(tools, { recursive: true });
    const kernel = await kernelWith(tools);
    try {
      const refused = await run(kernel, 'gpu.required');
      assert.equal(refused.status, 503);
      const error = ((await refused.json()) as { error: { code: string; message: string; details: { required: unknown } } }).error;
      assert.equal(error.code, 'NO_ACCELERATOR');
      assert.match(error.message, /requires a GPU of vendor nvidia with 16384 MiB free/);
      assert.match(error.message, /nvidia-smi is not installed/);
      assert.deepEqual(error.details.required, { vendor: 'nvidia', memoryMiB: 16384 });
      const optional = await run(kernel, 'gpu.optional');
      assert.equal(optional.status, 200);
      assert.deepEqual(((await optional.json()) as { result: unknown }).result, { cuda: null });
    } finally {
      await kernel.stop();
    }
  });
});
