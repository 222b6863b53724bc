import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const cli = join(repoRoot, 'core', 'dist', 'src', 'cli', 'main.js');
const run = promisify(execFile);

/** The environment of a person's shell: none of the npm_* variables `npm test` sets for the repository. */
const cleanEnv = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('npm_'))) as NodeJS.ProcessEnv;

describe('an extension scaffolded outside the repository', () => {
  it('installs from the packed tarballs, passes its test and serves with the installed aion', async function () {
    this.timeout(600_000);
    await run(process.execPath, [join(repoRoot, 'scripts', 'pack.mjs')], { cwd: repoRoot });
    const parent = mkdtempSync(join(tmpdir(), 'aion-outside-'));
    assert.ok(!parent.startsWith(repoRoot));
    const env = cleanEnv();
    try {
      const started = performance.now();
      const created = await run(process.execPath, [cli, 'extensions', 'new', 'greeter', '--publisher', 'acme', '--dir', parent], { env });
      assert.match(created.stdout, /tarballs of this checkout/);
      const dir = join(parent, 'greeter');
      // The npm cache is reused; only third-party packages come from the registry.
      await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: dir, env });
      const installedMs = performance.now() - started;
      const tested = await run('npm', ['test'], { cwd: dir, env });
      assert.match(tested.stdout, /2 passing/);
      process.stdout.write(
        `      (new → install ${(installedMs / 1000).toFixed(1)} s → passing test ${((performance.now() - started) / 1000).toFixed(1)} s)\n`,
      );

      const server = spawn(join(dir, 'node_modules', '.bin', 'aion'), ['serve', '--extensions-dir', '.', '--port', '0', '--data-dir', join(parent, 'data')], {
        cwd: dir,
        env: { ...env, AION_LOG_LEVEL: 'silent' },
      });
      let out = '';
      server.stdout.on('data', (d) => (out += d));
      server.stderr.on('data', (d) => (out += d));
      try {
        const url = await new Promise<string>((resolve, reject) => {
          const check = () => {
            const m = /listening on (http:\/\/\S+)/.exec(out);
            if (m) return resolve(m[1]!);
            if (server.exitCode !== null) return reject(new Error(out));
            setTimeout(check, 50);
          };
          check();
        });
        const res = await fetch(`${url}/v1/greeter?name=ada`);
        assert.equal(res.status, 200);
        assert.deepEqual(await res.json(), { message: 'hello ada' });
        const health = await run(join(dir, 'node_modules', '.bin', 'aion'), ['health', '--data-dir', join(parent, 'data')], { cwd: dir, env });
        assert.match(health.stdout, /healthy/);
        // The installed aion is not a checkout: what it scaffolds depends on the published version range.
        await run(join(dir, 'node_modules', '.bin', 'aion'), ['extensions', 'new', 'second', '--dir', parent], { cwd: dir, env });
        const second = JSON.parse(readFileSync(join(parent, 'second', 'package.json'), 'utf8'));
        assert.match(second.dependencies['@aion/extension-api'], /^\^\d+\.\d+\.\d+$/);
        assert.match(second.devDependencies['@aion/core'], /^\^\d+\.\d+\.\d+$/);
      } finally {
        const exited = new Promise<number | null>((r) => server.once('exit', (code) => r(code)));
        server.kill('SIGTERM');
        assert.equal(await exited, 0);
      }
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });

  it('installs globally from a checkout as an aion on the PATH', async function () {
    this.timeout(120_000);
    const prefix = mkdtempSync(join(tmpdir(), 'aion-global-'));
    try {
      await run('npm', ['install', '--global', '--prefix', prefix, '--no-audit', '--no-fund', join(repoRoot, 'core')], { env: cleanEnv() });
      const version = await run(join(prefix, 'bin', 'aion'), ['--version'], { cwd: prefix, env: cleanEnv() });
      assert.equal(version.stdout.trim(), JSON.parse(readFileSync(join(repoRoot, 'core', 'package.json'), 'utf8')).version);
      const help = await run(join(prefix, 'bin', 'aion'), ['extensions', 'new', '--help'], { cwd: prefix, env: cleanEnv() });
      assert.match(help.stdout, /--kind <kind>/);
    } finally {
      rmSync(prefix, { recursive: true, force: true });
    }
  });
});
