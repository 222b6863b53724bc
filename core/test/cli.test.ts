import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startTestKernel } from '../src/index.js';
import { BUILTIN_EXTENSIONS_DIR } from '../src/kernel.js';
import { base, fixture, tempDir, writeExtension } from './helpers.js';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const run = promisify(execFile);

async function aion(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [cli, ...args], { env: { ...process.env, AION_LOG_LEVEL: 'silent', ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('the aion CLI', () => {
  it('validates a manifest without running it', async () => {
    const ok = await aion(['extensions', 'validate', fixture('basic'), '--builtins', 'none']);
    assert.equal(ok.code, 0);
    assert.match(ok.stdout, /fixtures\.basic: valid/);
    const root = tempDir();
    const bad = writeExtension(root, 'bad', base({ name: 'bad', aion: { host: 'moon' } }));
    const res = await aion(['extensions', 'validate', bad, '--builtins', 'none']);
    assert.equal(res.code, 1);
    assert.match(res.stdout, /MANIFEST_INVALID: .*bad\/package\.json: \/aion\/host: must be equal to one of the allowed values/);
    rmSync(root, { recursive: true, force: true });
  });

  it('describes a command with --help and never runs it', async () => {
    const dataDir = tempDir();
    const served = await aion(['serve', '--help', '--data-dir', dataDir]);
    assert.equal(served.code, 0);
    assert.match(served.stdout, /aion serve \[--port N\]/);
    const keys = tempDir();
    const generated = await aion(['keys', 'generate', '--help', '--out', keys, '--data-dir', dataDir]);
    assert.equal(generated.code, 0, generated.stderr);
    assert.match(generated.stdout, /aion keys generate/);
    assert.match(generated.stdout, /--out <value>/);
    assert.ok(!existsSync(join(keys, 'aion-signing.key')), '--help wrote no key');
    assert.ok(!existsSync(join(dataDir, 'storage')), '--help started no kernel');
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(keys, { recursive: true, force: true });
  });

  it('answers an unknown option and a busy port with a sentence, not a stack trace', async () => {
    const unknown = await aion(['serve', '--bogus']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /aion: Unknown option '--bogus'/);
    assert.doesNotMatch(unknown.stderr, /\n\s+at /);
    const { createServer } = await import('node:net');
    const taken = createServer().listen(0, '127.0.0.1');
    await new Promise((r) => taken.once('listening', r));
    const port = (taken.address() as { port: number }).port;
    const dataDir = tempDir();
    const busy = await aion(['serve', '--port', String(port), '--data-dir', dataDir, '--builtins', 'none']);
    taken.close();
    assert.equal(busy.code, 1);
    assert.match(busy.stderr, new RegExp(`127\\.0\\.0\\.1:${port} is already in use`));
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('prints the effective configuration with secrets masked', async () => {
    const root = tempDir();
    const file = join(root, 'aion.config.json');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(file, JSON.stringify({ server: { port: 9999 }, extensions: { 'acme.db': { url: 'postgres://app:hunter2@db.internal/app', apiKey: 'sk-live-123', region: 'eu' } } }));
    const res = await aion(['config', 'print', '--config', file], { AION_CONFIG__SERVER__MAX_IN_FLIGHT: '64' });
    assert.equal(res.code, 0, res.stderr);
    const printed = JSON.parse(res.stdout);
    assert.equal(printed.server.port, 9999);
    assert.equal(printed.server.maxInFlight, 64);
    assert.equal(printed.extensions['acme.db'].region, 'eu');
    assert.equal(printed.extensions['acme.db'].apiKey, '********');
    assert.equal(printed.extensions['acme.db'].url, 'postgres://app:********@db.internal/app');
    assert.doesNotMatch(res.stdout, /hunter2|sk-live-123/);
    rmSync(root, { recursive: true, force: true });
  });

  it('validates an unmodified built-in as valid, not as defined twice', async () => {
    const res = await aion(['extensions', 'validate', join(BUILTIN_EXTENSIONS_DIR, 'router')]);
    assert.equal(res.code, 0, res.stdout + res.stderr);
    assert.match(res.stdout, /aion\.router: valid/);
  });

  it('lists extensions with their problems', async () => {
    const res = await aion(['extensions', 'list', '--json', '--builtins', 'none', '--extensions-dir', fixture('needs-missing')]);
    const rows = JSON.parse(res.stdout) as Array<{ id: string; state: string; problems: string[] }>;
    assert.equal(rows[0]!.id, 'fixtures.needs-missing');
    assert.equal(rows[0]!.state, 'skipped');
    assert.equal(res.code, 1);
  });

  it('scaffolds an extension that builds and serves its route', async function () {
    this.timeout(60_000);
    // Inside the repository so the scaffold resolves @aion/* from the workspace.
    const dir = mkdtempSync(join(repoRoot, '.scaffold-test-'));
    try {
      const res = await aion(['extensions', 'new', 'greeter', '--dir', dir, '--publisher', 'acme']);
      assert.equal(res.code, 0, res.stderr);
      const ext = join(dir, 'greeter');
      await run(process.execPath, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', ext]);
      assert.ok(existsSync(join(ext, 'dist', 'src', 'extension.js')));
      const kernel = await startTestKernel({ extensions: [ext], config: { extensions: { 'acme.greeter': { greeting: 'hey' } } } });
      try {
        assert.deepEqual(await (await kernel.request('/v1/greeter?name=ada')).json(), { message: 'hey ada' });
      } finally {
        await kernel.stop();
      }
      assert.equal((await aion(['extensions', 'new', 'greeter', '--dir', dir])).code, 1, 'refuses to overwrite');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('serve prints its URL, and SIGTERM drains an in-flight request then exits 0', async function () {
    this.timeout(30_000);
    const dataDir = tempDir();
    const child = spawn(process.execPath, [cli, 'serve', '--port', '0', '--builtins', 'none', '--data-dir', dataDir, '--extensions-dir', fixture('basic')], { env: { ...process.env, AION_LOG_LEVEL: 'silent' } });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d) => {
          out += d;
          const m = /listening on (http:\/\/\S+)/.exec(out);
          if (m) resolve(m[1]!);
        });
        child.once('exit', (code) => reject(new Error(`serve exited with ${code}`)));
      });
      const health = await aion(['health', '--url', url, '--json']);
      assert.equal(health.code, 0);
      assert.equal(JSON.parse(health.stdout).ready, true);
      const inFlight = fetch(`${url}/v1/basic/slow?ms=1000`);
      await new Promise((r) => setTimeout(r, 400));
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const res = await inFlight;
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { waited: 1000, cancelled: false });
      assert.equal(await exited, 0);
      const after = await aion(['health', '--url', url]);
      assert.equal(after.code, 1);
    } finally {
      child.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('prints usage and fails on an unknown command', async () => {
    const res = await aion(['frobnicate', '--builtins', 'none']);
    assert.equal(res.code, 2);
    assert.match(res.stderr, /unknown command "frobnicate"/);
  });
});
