import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KERNEL_NODE_FLAGS } from '../src/index.js';
import { tempDir } from './helpers.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Runs `npm start`'s script once; resolves with its output, the server's pid and the time to ready. */
async function startOnce(dataDir: string): Promise<{ script: ReturnType<typeof spawn>; serverPid: number; output: () => string; readyMs: number }> {
  const started = performance.now();
  const script = spawn(process.execPath, [join(repoRoot, 'scripts', 'start.mjs'), '--port', '0', '--builtins', 'none', '--data-dir', dataDir], {
    cwd: repoRoot,
    env: { ...process.env, AION_LOG_LEVEL: 'silent' },
  });
  let out = '';
  script.stdout!.on('data', (d) => (out += d));
  script.stderr!.on('data', (d) => (out += d));
  await new Promise<void>((resolve, reject) => {
    const check = () => (/listening on http/.test(out) ? resolve() : script.exitCode !== null ? reject(new Error(out)) : setTimeout(check, 25));
    check();
  });
  const readyMs = Math.round(performance.now() - started);
  const children = readFileSync(`/proc/${script.pid}/task/${script.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
  assert.equal(children.length, 1, `one server process: ${children}`);
  return { script, serverPid: children[0]!, output: () => out, readyMs };
}

describe('npm start (scripts/start.mjs)', () => {
  it('skips unchanged builds, and SIGTERM to it stops the server it started', async function () {
    this.timeout(240_000);
    const dataDir = tempDir();
    try {
      // The first run may build; the second finds nothing changed.
      const first = await startOnce(dataDir);
      first.script.kill('SIGTERM');
      await new Promise((r) => first.script.once('exit', r));
      const second = await startOnce(dataDir);
      const argv = readFileSync(`/proc/${second.serverPid}/cmdline`, 'utf8').split('\0');
      for (const flag of KERNEL_NODE_FLAGS) assert.ok(argv.includes(flag), `the server runs with ${flag}: ${argv.join(' ')}`);
      assert.match(second.output(), /sample WASM skills unchanged: not rebuilt/);
      process.stdout.write(`      (unchanged tree: ready in ${second.readyMs} ms)\n`);
      const exit = new Promise<number | null>((r) => second.script.once('exit', (code) => r(code)));
      second.script.kill('SIGTERM');
      assert.equal(await exit, 0, 'the server drained and exited 0, and the script passed its code on');
      assert.equal(alive(second.serverPid), false, 'no orphaned server');
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
