import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { KERNEL_NODE_FLAGS, startTestKernel, withKernelFlags } from '../src/index.js';
import { BUILTIN_EXTENSIONS_DIR } from '../src/kernel.js';
import { base, fixture, tempDir, writeExtension, writeVersioned } from './helpers.js';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';

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

/** Starts `aion <args>` and resolves once its stdout matched every pattern in turn. */
function startAion(args: string[]): {
  child: ChildProcessWithoutNullStreams;
  output: () => string;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
} {
  const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, AION_LOG_LEVEL: 'silent' } });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  return {
    child,
    output: () => out,
    waitFor: (pattern, timeoutMs = 30_000) =>
      new Promise((resolve, reject) => {
        const deadline = Date.now() + timeoutMs;
        const check = () => {
          const m = pattern.exec(out);
          if (m) return resolve(m);
          if (child.exitCode !== null || Date.now() > deadline) return reject(new Error(`no ${pattern} in: ${out}`));
          setTimeout(check, 50);
        };
        check();
      }),
  };
}

const repoTemp = (prefix: string) => mkdtempSync(join(fileURLToPath(new URL('.', import.meta.url)), prefix));

describe('the aion CLI', () => {
  it('prints its version, and exits 2 with usage when given nothing', async () => {
    const version = await aion(['--version']);
    assert.equal(version.code, 0);
    const { version: expected } = JSON.parse((await import('node:fs')).readFileSync(join(repoRoot, 'core', 'package.json'), 'utf8'));
    assert.equal(version.stdout.trim(), expected);
    const bare = await aion([]);
    assert.equal(bare.code, 2);
    assert.match(bare.stdout, /Usage: aion/);
    assert.match(bare.stdout, /Exit codes: 0 success, 1 .* 2 usage error/);
  });

  it('prints bash and zsh completion that list the verbs and extension commands', async () => {
    const bash = await aion(['completion', 'bash']);
    assert.equal(bash.code, 0, bash.stderr);
    assert.match(bash.stdout, /complete -o default -F _aion_complete aion/);
    assert.match(bash.stdout, /""\) words="serve dev extensions health reload config completion [^"]*skills/);
    assert.match(bash.stdout, /"extensions"\) words="list validate new/);
    assert.match(bash.stdout, /"extensions list"\) words="--running [^"]*--json/);
    const zsh = await aion(['completion', 'zsh']);
    assert.match(zsh.stdout, /bashcompinit/);
    const fish = await aion(['completion', 'fish']);
    assert.equal(fish.code, 2);
    assert.match(fish.stderr, /bash and zsh, not "fish"/);
  });

  it('talks to a running server over its control socket: list --running, health, reload', async function () {
    this.timeout(90_000);
    const root = repoTemp('tmp-cli-');
    const dataDir = tempDir();
    writeVersioned(root, 1);
    const server = startAion(['serve', '--port', '0', '--builtins', 'none', '--data-dir', dataDir, '--extensions-dir', root]);
    try {
      const [, url] = await server.waitFor(/listening on (http:\/\/\S+)/);
      const listed = await aion(['extensions', 'list', '--running', '--json', '--data-dir', dataDir]);
      assert.equal(listed.code, 0, listed.stderr);
      assert.equal(JSON.parse(listed.stdout).find((r: { id: string }) => r.id === 't.versioned').state, 'active');
      const health = await aion(['health', '--json', '--data-dir', dataDir]);
      assert.equal(health.code, 0, health.stdout + health.stderr);
      const report = JSON.parse(health.stdout);
      assert.equal(report.url, url);
      assert.ok(
        report.health.hosts.some((h: { extensions: string[] }) => h.extensions.includes('t.versioned')),
        'hosts without a token: the socket is the credential',
      );
      writeVersioned(root, 2);
      const reloaded = await aion(['reload', 't.versioned', '--data-dir', dataDir]);
      assert.equal(reloaded.code, 0, reloaded.stderr);
      assert.match(reloaded.stdout, /reloaded t\.versioned \(host shared\S*\) in \d+ ms/);
      assert.equal(((await (await fetch(`${url}/v1/versioned`)).json()) as { version: number }).version, 2);
      const missing = await aion(['reload', 'nobody.here', '--data-dir', dataDir]);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /EXTENSION_NOT_FOUND/);
    } finally {
      server.child.kill('SIGTERM');
      await new Promise((r) => server.child.once('exit', r));
    }
    const gone = await aion(['extensions', 'list', '--running', '--data-dir', dataDir]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /CONTROL_UNAVAILABLE: no Aion server is running/);
    assert.doesNotMatch(gone.stderr, /\n\s+at /);
    rmSync(root, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('dev rebuilds a changed extension and reloads its host without restarting the kernel', async function () {
    this.timeout(90_000);
    const root = repoTemp('tmp-dev-');
    const dataDir = tempDir();
    writeVersioned(root, 1);
    const dev = startAion(['dev', '--port', '0', '--builtins', 'none', '--data-dir', dataDir, '--extensions-dir', root]);
    try {
      const [, url] = await dev.waitFor(/listening on (http:\/\/\S+)/);
      await dev.waitFor(/watching 1 extension folder/);
      const first = (await (await fetch(`${url}/v1/versioned`)).json()) as { version: number; pid: number };
      writeVersioned(root, 2);
      const [line] = await dev.waitFor(/reloaded t\.versioned \(host shared\S*\) in (\d+) ms; build \d+ ms/);
      const second = (await (await fetch(`${url}/v1/versioned`)).json()) as { version: number; pid: number };
      assert.equal(second.version, 2);
      assert.notEqual(second.pid, first.pid);
      process.stdout.write(`      (${line})\n`);
      const again = await aion(['dev', '--builtins', 'none', '--data-dir', tempDir()]);
      assert.equal(again.code, 2);
      assert.match(again.stderr, /needs --extensions-dir/);
    } finally {
      dev.child.kill('SIGTERM');
      await new Promise((r) => dev.child.once('exit', r));
      rmSync(root, { recursive: true, force: true });
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

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
    writeFileSync(
      file,
      JSON.stringify({
        server: { port: 9999 },
        extensions: { 'acme.db': { url: 'postgres://app:hunter2@db.internal/app', apiKey: 'sk-live-123', region: 'eu' } },
      }),
    );
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

  it('scaffolds each kind with a README of next steps and a test that passes', async function () {
    this.timeout(300_000);
    const dir = repoTemp('tmp-kinds-');
    try {
      for (const kind of ['provider', 'skill-pack', 'accelerator']) {
        const res = await aion(['extensions', 'new', `my-${kind}`, '--kind', kind, '--dir', dir, '--publisher', 'acme']);
        assert.equal(res.code, 0, res.stderr);
        const ext = join(dir, `my-${kind}`);
        assert.match((await import('node:fs')).readFileSync(join(ext, 'README.md'), 'utf8'), /## Next steps\n\n- /);
        await run(process.execPath, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', ext]);
        const tested = await run(
          process.execPath,
          [join(repoRoot, 'node_modules', 'mocha', 'bin', 'mocha.js'), '--no-config', '--spec', 'dist/test/**/*.test.js', '--timeout', '60000', '--exit'],
          { cwd: ext },
        );
        assert.match(tested.stdout, /2 passing/, `${kind}: ${tested.stdout}`);
        assert.doesNotMatch(tested.stdout, /pending|skipped/, `${kind} ran its kernel test here`);
      }
      const wrong = await aion(['extensions', 'new', 'x', '--kind', 'widget', '--dir', dir]);
      assert.equal(wrong.code, 2);
      assert.match(wrong.stderr, /Allowed choices are route, provider, skill-pack, accelerator/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('serve prints its URL, and SIGTERM drains an in-flight request then exits 0', async function () {
    this.timeout(30_000);
    const dataDir = tempDir();
    const child = spawn(process.execPath, [cli, 'serve', '--port', '0', '--builtins', 'none', '--data-dir', dataDir, '--extensions-dir', fixture('basic')], {
      env: { ...process.env, AION_LOG_LEVEL: 'silent' },
    });
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

  it('serve --workers 2 runs two kernels on one port, reaches both, and drains both on SIGTERM', async function () {
    this.timeout(60_000);
    const dataDir = tempDir();
    const server = startAion(['serve', '--workers', '2', '--port', '0', '--builtins', 'none', '--data-dir', dataDir, '--extensions-dir', fixture('basic')]);
    try {
      const [, url] = await server.waitFor(/listening on (http:\/\/\S+) \(2 workers\)/, 45_000);
      // A new connection per request, so the primary spreads them over the workers.
      const pidOf = () =>
        new Promise<number>((resolve, reject) => {
          get(`${url}/v1/basic/pid`, { agent: false }, (res) => {
            let body = '';
            res.on('data', (d) => (body += d));
            res.on('end', () => resolve((JSON.parse(body) as { pid: number }).pid));
          }).on('error', reject);
        });
      const pids = new Set<number>();
      for (let i = 0; i < 20 && pids.size < 2; i++) pids.add(await pidOf());
      assert.equal(pids.size, 2, 'two workers, each with its own extension host, answer on the one port');
      // Each worker runs with the kernel's Node flags, though the primary was started without them (Linux: read from /proc).
      if (process.platform === 'linux') {
        const workers = readFileSync(`/proc/${server.child.pid}/task/${server.child.pid}/children`, 'utf8').trim().split(/\s+/);
        assert.equal(workers.length, 2);
        for (const pid of workers) {
          const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
          for (const flag of KERNEL_NODE_FLAGS) assert.ok(argv.includes(flag), `worker ${pid} runs with ${flag}: ${argv.join(' ')}`);
        }
      }
      // The first worker owns the local control channel.
      const health = await aion(['health', '--data-dir', dataDir, '--json']);
      assert.equal(health.code, 0, health.stderr);
      const exited = new Promise<number | null>((resolve) => server.child.once('exit', resolve));
      server.child.kill('SIGTERM');
      assert.equal(await exited, 0);
      for (const pid of pids) assert.throws(() => process.kill(pid, 0), /ESRCH/, 'no host process outlives the server');
    } finally {
      server.child.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("runs as an executable with the kernel's Node flags in its shebang, and gives them to other processes unless the operator set them", async () => {
    const shebang = readFileSync(cli, 'utf8').split('\n')[0]!;
    assert.equal(shebang, `#!/usr/bin/env -S node ${KERNEL_NODE_FLAGS.join(' ')}`);
    // As `npx aion` runs it: the file itself (the build makes it executable), through its shebang.
    const { stdout } = await run(cli, ['--version']);
    assert.match(stdout, /\d+\.\d+\.\d+/);
    assert.deepEqual(withKernelFlags(['--enable-source-maps'], ''), ['--enable-source-maps', ...KERNEL_NODE_FLAGS]);
    assert.deepEqual(withKernelFlags(['--max-semi-space-size=8'], ''), ['--max-semi-space-size=8']);
    assert.deepEqual(withKernelFlags([], '--max-old-space-size=512 --max-semi-space-size=64'), []);
    assert.deepEqual(withKernelFlags(['--max_semi_space_size=64'], ''), ['--max_semi_space_size=64'], 'V8 reads _ and - alike');
  });

  it('refuses a --workers value that is not a count', async () => {
    const res = await aion(['serve', '--workers', 'many', '--builtins', 'none']);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /--workers must be "auto" or a whole number from 1 to 256, not "many"/);
  });

  it('prints usage and fails on an unknown command', async () => {
    const res = await aion(['frobnicate', '--builtins', 'none']);
    assert.equal(res.code, 2);
    assert.match(res.stderr, /unknown command "frobnicate"/);
  });
});
