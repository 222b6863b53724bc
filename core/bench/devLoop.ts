/**
 * The author's loop. Each figure beside a baseline measured in the same run:
 * `aion dev`'s reload (deactivate, restart the host, activate) against stopping and starting the kernel;
 * `npm start` on an unchanged tree against the former `npm run build && aion serve`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ActivationService, ExtensionRegistry, HostManager, Kernel, createLogger, loadConfig } from '../src/index.js';
import { writeVersioned } from '../test/helpers.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function reloadVersusRestart(): Promise<void> {
  const root = mkdtempSync(join(fileURLToPath(new URL('.', import.meta.url)), 'tmp-bench-'));
  writeVersioned(root, 1);
  const options = () => ({
    config: loadConfig({ env: {}, overrides: { dataDir: mkdtempSync(join(tmpdir(), 'aion-bench-')), server: { port: 0, host: '127.0.0.1' } } }),
    builtins: false,
    extensionDirs: [root],
    logger: createLogger({ level: 'silent' }),
  });
  const reloads: number[] = [];
  const warmReloads: number[] = [];
  const restarts: number[] = [];
  let kernel = await Kernel.start(options());
  try {
    for (let i = 0; i < ROUNDS; i++) {
      const t = performance.now();
      await kernel.get(ActivationService).reload('t.versioned');
      await fetch(`${kernel.url}/v1/versioned`);
      reloads.push(performance.now() - t);
    }
    // As `aion dev` does: a spare host process waits for the next edit (a person takes seconds to make one).
    for (let i = 0; i < ROUNDS; i++) {
      kernel.get(HostManager).prepareStandby(kernel.get(ExtensionRegistry).require('t.versioned'));
      await new Promise((r) => setTimeout(r, 3_000));
      const t = performance.now();
      await kernel.get(ActivationService).reload('t.versioned');
      await fetch(`${kernel.url}/v1/versioned`);
      warmReloads.push(performance.now() - t);
    }
    for (let i = 0; i < ROUNDS; i++) {
      const t = performance.now();
      await kernel.stop();
      kernel = await Kernel.start(options());
      await fetch(`${kernel.url}/v1/versioned`);
      restarts.push(performance.now() - t);
    }
  } finally {
    await kernel.stop();
    rmSync(root, { recursive: true, force: true });
  }
  console.log(`reload with a spare host process (aion dev)  median ${median(warmReloads).toFixed(0)} ms`);
  console.log(`reload, starting a host process (aion reload) median ${median(reloads).toFixed(0)} ms`);
  console.log(
    `  baseline: stop and start the kernel          median ${median(restarts).toFixed(0)} ms  (${(median(restarts) / median(warmReloads)).toFixed(1)}× the spare-process reload)`,
  );
}

/** Runs a start command until the server says it listens, then stops it; the time to that line. */
function timeToListening(command: string, args: string[]): Promise<number> {
  const dataDir = mkdtempSync(join(tmpdir(), 'aion-bench-'));
  const started = performance.now();
  const child = spawn(command, args, { cwd: repoRoot, env: { ...process.env, AION_LOG_LEVEL: 'silent' }, detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      if (/listening on/.test(out)) {
        const ms = performance.now() - started;
        process.kill(-child.pid!, 'SIGTERM');
        child.once('exit', () => {
          rmSync(dataDir, { recursive: true, force: true });
          resolve(ms);
        });
      }
    });
    child.once('exit', (code) => (/listening on/.test(out) ? undefined : reject(new Error(`${command} exited ${code}`))));
  }).then((ms) => ms as number);
}

async function startUnchanged(): Promise<void> {
  const serveArgs = ['--port', '0', '--builtins', 'none'];
  spawnSync(process.execPath, [join(repoRoot, 'scripts', 'start.mjs'), '--help'], { cwd: repoRoot, stdio: 'ignore' });
  const now: number[] = [];
  const before: number[] = [];
  const rounds = Math.max(1, Math.min(ROUNDS, 3));
  for (let i = 0; i < rounds; i++)
    now.push(
      await timeToListening(process.execPath, [join(repoRoot, 'scripts', 'start.mjs'), ...serveArgs, '--data-dir', mkdtempSync(join(tmpdir(), 'aion-bench-'))]),
    );
  for (let i = 0; i < rounds; i++)
    before.push(
      await timeToListening('sh', [
        '-c',
        `npm run build --silent >/dev/null 2>&1 && exec node core/dist/src/cli/main.js serve ${serveArgs.join(' ')} --data-dir ${mkdtempSync(join(tmpdir(), 'aion-bench-'))}`,
      ]),
    );
  console.log(`npm start on an unchanged tree, to listening  median ${median(now).toFixed(0)} ms`);
  console.log(`  baseline: npm run build && aion serve        median ${median(before).toFixed(0)} ms  (${(median(before) / median(now)).toFixed(1)}×)`);
}

console.log(`author loop, ${ROUNDS} rounds (medians; this machine is shared and noisy: read the ratios)`);
await reloadVersusRestart();
if (process.env.BENCH_SKIP_START !== '1') await startUnchanged();
