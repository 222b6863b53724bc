import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FakeTools, heredoc } from '@aion/ext-accelerators/testing';
import { NvidiaDetector } from '../src/detector.js';
import { parseHeader, parseQuery, parseVersion } from '../src/parse.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const h200 = (file: string) => readFileSync(join(root, 'test/fixtures/h200', file), 'utf8');

// nvidia-smi 550.54.15 (CUDA 12.4), as its documentation prints --query-gpu with csv,noheader,nounits:
// two GPUs, the second a MIG-enabled A100 whose utilization and temperature read [N/A].
const DOCUMENTED_QUERY = `0, NVIDIA GeForce RTX 4090, GPU-3f8c2a5e-1b2c-4d5e-8f90-1a2b3c4d5e6f, 24564, 1022, 23156, 37, 48, 550.54.15, 8.9
1, NVIDIA A100-SXM4-80GB, GPU-7d6e5f4a-3b2c-1d0e-9f8a-7b6c5d4e3f2a, 81920, 0, 81050, [N/A], [N/A], 550.54.15, 8.0
`;
const DOCUMENTED_VERSION = `NVIDIA-SMI version  : 550.54.15
NVML version        : 550.54
DRIVER version      : 550.54.15
CUDA Version        : 12.4
`;

async function rejectsWithCode(work: Promise<unknown>, code: string): Promise<Error & { code: string }> {
  try {
    await work;
  } catch (err) {
    assert.equal((err as { code?: string }).code, code, (err as Error).message);
    return err as Error & { code: string };
  }
  assert.fail(`expected ${code}`);
}

async function processGone(pid: number): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if (!existsSync(`/proc/${pid}`) || readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.startsWith('Z')) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

describe('accelerator-nvidia: parsing nvidia-smi', () => {
  it('reads the H200 captured from a real machine', () => {
    assert.deepEqual(parseQuery(h200('query.stdout')), [
      {
        index: 0,
        name: 'NVIDIA H200',
        uuid: 'GPU-01060625-fc54-8566-0829-91dbf3a104a7',
        memoryTotalMiB: 143771,
        memoryUsedMiB: 0,
        memoryFreeMiB: 143156,
        utilizationPercent: 0,
        temperatureC: 35,
        driverVersion: '580.159.04',
        computeCapability: '9.0',
      },
    ]);
    assert.deepEqual(parseVersion(h200('version.stdout')), { smiVersion: '580.159.04', driverVersion: '580.159.04', cudaVersion: '13.0' });
    assert.deepEqual(parseHeader(h200('header.stdout')), { smiVersion: '580.159.04', driverVersion: '580.159.04', cudaVersion: '13.0' });
  });

  it('reads the documented format, with [N/A] values as unknown', () => {
    const [rtx, a100] = parseQuery(DOCUMENTED_QUERY);
    assert.equal(rtx!.name, 'NVIDIA GeForce RTX 4090');
    assert.equal(rtx!.utilizationPercent, 37);
    assert.equal(a100!.index, 1);
    assert.equal(a100!.utilizationPercent, undefined);
    assert.equal(a100!.temperatureC, undefined);
    assert.equal(a100!.memoryFreeMiB, 81050);
    assert.equal(parseVersion(DOCUMENTED_VERSION).cudaVersion, '12.4');
  });

  it('refuses malformed output with ACCELERATOR_OUTPUT_INVALID', () => {
    assert.throws(() => parseQuery('0, NVIDIA H200, GPU-x, 143771\n'), { code: 'ACCELERATOR_OUTPUT_INVALID' });
    assert.throws(() => parseQuery('0, NVIDIA H200, GPU-x, lots, 0, 1, 0, 35, 580.159.04, 9.0\n'), {
      code: 'ACCELERATOR_OUTPUT_INVALID',
      message: /memory\.total is "lots"/,
    });
    assert.throws(() => parseQuery('x, NVIDIA H200, GPU-x, 1, 0, 1, 0, 35, 580.159.04, 9.0\n'), { code: 'ACCELERATOR_OUTPUT_INVALID' });
    assert.throws(() => parseQuery('<html>oops</html>\n'), { code: 'ACCELERATOR_OUTPUT_INVALID' });
  });
});

describe('accelerator-nvidia: running nvidia-smi from PATH', () => {
  let tools: FakeTools;
  beforeEach(() => (tools = new FakeTools()));
  afterEach(() => tools.remove());
  const detector = (timeoutMs = 5000) => new NvidiaDetector({ command: 'nvidia-smi', timeoutMs });
  const answer = (text: string) => `/bin/cat <<'EOF'\n${heredoc(text)}\nEOF`;

  it('reports the GPU with its CUDA version', async () => {
    tools.write(
      'nvidia-smi',
      [
        '# stands in for nvidia-smi 580.159.04 (CUDA 13.0) on an H200; answers captured by scripts/capture-fixture.sh',
        'case "$1" in',
        `  --query-gpu=*) ${answer(h200('query.stdout'))}\n  ;;`,
        `  --version) ${answer(h200('version.stdout'))}\n  ;;`,
        '  *) echo "unexpected arguments: $*" >&2; exit 2 ;;',
        'esac',
      ].join('\n'),
    );
    const result = await tools.onPath(() => detector().detect());
    assert.equal(result.present, true);
    assert.deepEqual(result.tool, { name: 'nvidia-smi', version: '580.159.04' });
    assert.equal(result.devices.length, 1);
    assert.deepEqual(result.devices[0]!.runtime, { name: 'CUDA', version: '13.0' });
    assert.equal(result.devices[0]!.memoryFreeMiB, 143156);
  });

  it('reads the CUDA version from the header on drivers without --version', async () => {
    tools.write(
      'nvidia-smi',
      [
        '# nvidia-smi 470.x has no --version: it says so and exits 2 (the H200 banner stands in for its header)',
        'case "$1" in',
        `  --query-gpu=*) ${answer(h200('query.stdout'))}\n  ;;`,
        `  --version) echo 'Invalid combination of input arguments. Please run "nvidia-smi -h" for help.'; exit 2 ;;`,
        `  "") ${answer(h200('header.stdout'))}\n  ;;`,
        'esac',
      ].join('\n'),
    );
    const result = await tools.onPath(() => detector().detect());
    assert.deepEqual(result.devices[0]!.runtime, { name: 'CUDA', version: '13.0' });
  });

  it('reports "not present", not an error, when nvidia-smi is not installed', async () => {
    const result = await tools.onPath(() => detector().detect());
    assert.equal(result.present, false);
    assert.match(result.reason!, /not installed/);
    assert.deepEqual(result.devices, []);
  });

  it('reports "not present" when nvidia-smi cannot reach a driver', async () => {
    tools.printing(
      'nvidia-smi',
      "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.",
      9,
    );
    const result = await tools.onPath(() => detector().detect());
    assert.equal(result.present, false);
    assert.match(result.reason!, /cannot reach the NVIDIA driver/);
  });

  it("fails with ACCELERATOR_TOOL_FAILED and nvidia-smi's own words when it refuses the query", async () => {
    tools.printing('nvidia-smi', heredoc(h200('badfield.stdout')), 2);
    const err = await rejectsWithCode(
      tools.onPath(() => detector().detect()),
      'ACCELERATOR_TOOL_FAILED',
    );
    assert.match(err.message, /is not a valid field to query/);
  });

  it('fails with ACCELERATOR_OUTPUT_INVALID on output it cannot read', async () => {
    tools.printing('nvidia-smi', '0, NVIDIA H200, GPU-1, 143771, 0');
    await rejectsWithCode(
      tools.onPath(() => detector().detect()),
      'ACCELERATOR_OUTPUT_INVALID',
    );
  });

  it('kills a hanging nvidia-smi, and what it started, after the timeout', async () => {
    const pidFile = join(tools.dir, 'child.pid');
    tools.write('nvidia-smi', `# hangs the way nvidia-smi does when a GPU has fallen off the bus\n/bin/sleep 600 &\necho $! > ${pidFile}\nwait`);
    const started = performance.now();
    const err = await rejectsWithCode(
      tools.onPath(() => detector(300).detect()),
      'ACCELERATOR_TOOL_TIMEOUT',
    );
    assert.match(err.message, /300 ms/);
    assert.ok(performance.now() - started < 10_000, 'the detector answers once the timeout has passed');
    assert.ok(await processGone(Number(readFileSync(pidFile, 'utf8'))), 'the sleep the tool started is killed with it');
  });
});
