import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ProcessEngine, type ProcessLimits, type ProcessSkill } from '../src/index.js';
import { paths } from './support/assemblyscript.js';
import { rejectsWith } from './support/assertions.js';

const skill: ProcessSkill = { id: 'test-skill', command: process.execPath, args: [join(paths.sandboxRoot, 'test/fixtures/process/mcp-skill.mjs')] };
const limits: ProcessLimits = { timeoutMs: 5000, maxOutputBytes: 1024 * 1024 };

/** Gone, or a zombie waiting to be reaped: either way it runs no more. */
function processGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

async function eventually(check: () => boolean, ms = 2000): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return check();
}

describe('ProcessEngine', () => {
  const notices: string[] = [];
  const engine = new ProcessEngine({ idleTimeoutMs: 5000, onNotice: (m) => notices.push(m) });
  after(() => engine.close());

  it('calls a tool over newline-delimited JSON-RPC', async () => {
    const result = await engine.call({ skill, name: 'echo', arguments: { hello: 'world' }, limits });
    assert.deepEqual(result.content, [{ type: 'text', text: '{"hello":"world"}' }]);
    assert.deepEqual(result.structuredContent, { hello: 'world' });
    assert.equal(result.isError, false);
    assert.ok(result.durationMs > 0);
  });

  it('starts the skill with an empty environment plus its declared secrets', async () => {
    process.env.SANDBOX_TEST_LEAK = 'host value';
    try {
      const result = await engine.call({ skill: { ...skill, secrets: { API_TOKEN: 't-1' } }, name: 'env', limits });
      assert.deepEqual(result.structuredContent, { env: { API_TOKEN: 't-1' } });
      const bare = await engine.call({ skill, name: 'env', limits });
      assert.deepEqual(bare.structuredContent, { env: {} });
    } finally {
      delete process.env.SANDBOX_TEST_LEAK;
    }
  });

  it("passes the device the skill was placed on in the vendor runtime's variable", async () => {
    const nvidia = await engine.call({
      skill,
      name: 'env',
      limits,
      accelerator: { vendor: 'nvidia', index: 1, uuid: 'GPU-01060625-fc54-8566-0829-91dbf3a104a7' },
    });
    assert.deepEqual(nvidia.structuredContent, { env: { CUDA_VISIBLE_DEVICES: 'GPU-01060625-fc54-8566-0829-91dbf3a104a7' } });
    const amd = await engine.call({ skill, name: 'env', limits, accelerator: { vendor: 'amd', index: 2 } });
    assert.deepEqual(amd.structuredContent, { env: { HIP_VISIBLE_DEVICES: '2' } });
    const intel = await engine.call({ skill: { ...skill, keepAlive: true }, name: 'env', limits, accelerator: { vendor: 'intel', index: 0 } });
    assert.deepEqual(intel.structuredContent, { env: { ONEAPI_DEVICE_SELECTOR: 'level_zero:0' } });
    // A warm process placed on one device is not reused for a call placed on another.
    const other = await engine.call({ skill: { ...skill, keepAlive: true }, name: 'env', limits, accelerator: { vendor: 'intel', index: 1 } });
    assert.deepEqual(other.structuredContent, { env: { ONEAPI_DEVICE_SELECTOR: 'level_zero:1' } });
    await rejectsWith(engine.call({ skill, name: 'env', limits, accelerator: { vendor: 'acme', index: 0 } }), 'INVALID_REQUEST');
  });

  it('runs the skill in a fresh temporary directory that is removed afterwards', async () => {
    const result = await engine.call({ skill, name: 'cwd', limits });
    const { cwd, files } = result.structuredContent as { cwd: string; files: string[] };
    assert.notEqual(cwd, process.cwd());
    assert.deepEqual(files, ['scratch.txt']);
    assert.equal(existsSync(cwd), false);
  });

  it('makes the working directories under workDir when given one', async () => {
    const workDir = mkdtempSync(join(tmpdir(), 'aion-workdir-'));
    const scoped = new ProcessEngine({ workDir: join(workDir, 'tmp') });
    try {
      const { cwd } = (await scoped.call({ skill, name: 'cwd', limits })).structuredContent as { cwd: string };
      assert.equal(dirname(cwd), join(workDir, 'tmp'));
      assert.deepEqual(readdirSync(join(workDir, 'tmp')), []);
    } finally {
      await scoped.close();
      rmSync(workDir, { recursive: true, force: true });
    }
  });

  it('kills the whole process group on timeout, grandchildren included', async () => {
    const started = Date.now();
    const err = await rejectsWith(engine.call({ skill, name: 'orphan', limits: { ...limits, timeoutMs: 700 } }), 'TIMEOUT');
    assert.ok(Date.now() - started < 3000);
    const pid = Number(/grandchild (\d+)/.exec(err.stderr)?.[1]);
    assert.ok(pid > 0, `no grandchild pid in stderr: ${err.stderr}`);
    assert.ok(await eventually(() => processGone(pid)), `grandchild ${pid} survived`);
  });

  it('stops a skill that writes more than maxOutputBytes', async () => {
    await rejectsWith(engine.call({ skill, name: 'flood', limits: { ...limits, maxOutputBytes: 100_000 } }), 'OUTPUT_TOO_LARGE');
  });

  it('reports a crash as SKILL_FAILED with the tail of stderr', async () => {
    const err = await rejectsWith(engine.call({ skill, name: 'crash', limits }), 'SKILL_FAILED');
    assert.match(err.message, /exited with code 3/);
    assert.match(err.stderr, /about to crash/);
  });

  it('marks the kills a skill brings on itself as fatal: a timeout, death by a signal; not an exit, a cancellation or a full stdout', async () => {
    const killed = await rejectsWith(engine.call({ skill, name: 'killed', limits }), 'SKILL_FAILED');
    assert.match(killed.message, /was killed by SIGKILL/);
    assert.equal(killed.fatal, true);
    assert.equal((await rejectsWith(engine.call({ skill, name: 'hang', limits: { ...limits, timeoutMs: 200 } }), 'TIMEOUT')).fatal, true);
    assert.equal((await rejectsWith(engine.call({ skill, name: 'crash', limits }), 'SKILL_FAILED')).fatal, false);
    assert.equal((await rejectsWith(engine.call({ skill, name: 'flood', limits: { ...limits, maxOutputBytes: 100_000 } }), 'OUTPUT_TOO_LARGE')).fatal, false);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    assert.equal((await rejectsWith(engine.call({ skill, name: 'hang', limits, signal: controller.signal }), 'CANCELLED')).fatal, false);
  });

  it('passes tool errors through and turns protocol errors into SKILL_FAILED', async () => {
    const result = await engine.call({ skill, name: 'fail', limits });
    assert.equal(result.isError, true);
    const err = await rejectsWith(engine.call({ skill, name: 'missing', limits }), 'SKILL_FAILED');
    assert.match(err.message, /unknown tool missing/);
  });

  it('keeps a process warm between calls when the skill allows it, and replaces it after a timeout', async () => {
    const warm = { ...skill, id: 'warm-skill', keepAlive: true };
    const first = (await engine.call({ skill: warm, name: 'pid', limits })).structuredContent as { pid: number };
    const second = (await engine.call({ skill: warm, name: 'pid', limits })).structuredContent as { pid: number };
    assert.equal(first.pid, second.pid);
    await rejectsWith(engine.call({ skill: warm, name: 'hang', limits: { ...limits, timeoutMs: 300 } }), 'TIMEOUT');
    assert.ok(await eventually(() => processGone(first.pid)));
    const third = (await engine.call({ skill: warm, name: 'pid', limits })).structuredContent as { pid: number };
    assert.notEqual(third.pid, first.pid);
    const cold = [await engine.call({ skill, name: 'pid', limits }), await engine.call({ skill, name: 'pid', limits })];
    assert.notEqual((cold[0]!.structuredContent as { pid: number }).pid, (cold[1]!.structuredContent as { pid: number }).pid);
  });

  it('cancels a call through its AbortSignal', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    await rejectsWith(engine.call({ skill, name: 'hang', limits, signal: controller.signal }), 'CANCELLED');
  });

  it('refuses a command that is not an absolute path, and reports one that cannot start', async () => {
    await rejectsWith(engine.call({ skill: { ...skill, command: 'node' }, name: 'echo', limits }), 'INVALID_REQUEST');
    const err = await rejectsWith(engine.call({ skill: { ...skill, command: '/nonexistent/skill' }, name: 'echo', limits }), 'SKILL_FAILED');
    assert.match(err.message, /could not start/);
  });

  it('caps memory with a cgroup v2 group where the host delegates one, and says so where it does not', async function () {
    const support = await engine.memoryLimitSupport();
    if (!support.available) {
      const result = await engine.call({ skill, name: 'echo', arguments: {}, limits: { ...limits, memoryBytes: 64 * 1024 * 1024 } });
      assert.equal(result.isError, false);
      assert.equal(notices.length, 1);
      assert.match(notices[0]!, /without a memory limit/);
      this.skip();
    }
    await rejectsWith(
      engine.call({ skill, name: 'allocate', arguments: { megabytes: 512 }, limits: { ...limits, timeoutMs: 10_000, memoryBytes: 128 * 1024 * 1024 } }),
      'MEMORY_LIMIT',
    );
    const small = await engine.call({ skill, name: 'allocate', arguments: { megabytes: 8 }, limits: { ...limits, memoryBytes: 128 * 1024 * 1024 } });
    assert.deepEqual(small.structuredContent, { allocated: 8 });
  });
});
