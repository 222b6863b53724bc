import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestKernel, type TestKernel } from '../src/index.js';
import { connectControl } from '../src/control/controlClient.js';
import { ControlErrorCodes, controlSecretPath, controlSocketPath } from '../src/control/controlProtocol.js';
import { ControlServer, ensureControlSecret } from '../src/control/controlServer.js';
import { base, tempDir, waitFor, writeExtension, writeVersioned } from './helpers.js';

const NOBODY = 65534;

async function refusal(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (err) {
    return err as { code: string; message: string };
  }
  assert.fail('expected a refusal');
}

describe('the local control channel', () => {
  let root: string;
  let kernel: TestKernel;
  let control: ControlServer;

  before(async () => {
    // Inside the repository, so the extension resolves @aion/extension-api from the workspace.
    root = mkdtempSync(join(fileURLToPath(new URL('.', import.meta.url)), 'tmp-control-'));
    writeVersioned(root, 1);
    // Two commands offered to the CLI: one to run in the running server, one in a kernel of its own.
    writeExtension(
      root,
      'commands',
      base({
        name: 'commands',
        main: 'extension.js',
        type: 'module',
        activationEvents: ['onStartup'],
        contributes: {
          commands: [
            { command: 't.inServer', cli: { name: 't where', running: true } },
            { command: 't.ownKernel', cli: { name: 't wipe' } },
          ],
        },
        // Its own host, so reloading t.versioned's below restarts nothing else.
        aion: { host: 'dedicated' },
      }),
      {
        'extension.js': `import * as aion from '@aion/extension-api';\nexport function activate(ctx) { ctx.subscriptions.push(aion.commands.register('t.inServer', (o) => ({ answered: 'in the server', args: o })), aion.commands.register('t.ownKernel', () => 'wiped')); }\n`,
      },
    );
    kernel = await startTestKernel({ extensions: [join(root, 'versioned'), join(root, 'commands')] });
    control = await ControlServer.start(kernel.kernel, { burst: 5, ratePerSecond: 1 });
  });
  after(async () => {
    await control?.close();
    await kernel?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('listens on a 0600 socket in the data directory with a 0600 256-bit secret', () => {
    assert.equal(control.socketPath, controlSocketPath(kernel.dataDir));
    assert.ok(statSync(control.socketPath).isSocket());
    assert.equal(statSync(control.socketPath).mode & 0o777, 0o600);
    assert.equal(statSync(controlSecretPath(kernel.dataDir)).mode & 0o777, 0o600);
    assert.match(readFileSync(controlSecretPath(kernel.dataDir), 'utf8'), /^[0-9a-f]{64}\n$/);
  });

  it('opens with a hello carrying the protocol and capabilities, then answers the authenticated client', async () => {
    const client = await connectControl(kernel.dataDir);
    try {
      assert.deepEqual(client.capabilities, ['extensions.list', 'health', 'reload', 'commands.execute']);
      assert.equal(client.server.url, kernel.url);
      const rows = await client.call<Array<{ id: string; state: string }>>('extensions.list');
      assert.equal(rows.find((r) => r.id === 't.versioned')?.state, 'active');
      const health = await client.call<{ health: { status: string; hosts: unknown[] }; readiness: { ready: boolean } }>('health');
      assert.equal(health.health.status, 'ok');
      assert.equal(health.readiness.ready, true);
      assert.ok(Array.isArray(health.health.hosts), 'the socket sees what an admin sees');
      assert.equal((await refusal(client.call('shutdown'))).code, 'NOT_FOUND');
    } finally {
      client.close();
    }
  });

  it('runs a command a manifest offers the CLI as running in the server, and no other', async () => {
    const client = await connectControl(kernel.dataDir);
    try {
      assert.deepEqual(await client.call('commands.execute', { command: 't.inServer', args: { n: 1 } }), { answered: 'in the server', args: { n: 1 } });
      const other = await refusal(client.call('commands.execute', { command: 't.ownKernel' }));
      assert.equal(other.code, 'NOT_FOUND');
      assert.match(other.message, /offers no command "t.ownKernel" to the CLI/);
      assert.equal((await refusal(client.call('commands.execute', { command: 'aion.nothing' }))).code, 'NOT_FOUND');
    } finally {
      client.close();
    }
  });

  it('refuses a wrong secret', async () => {
    const err = await refusal(connectControl(kernel.dataDir, { secret: 'f'.repeat(64) }));
    assert.equal(err.code, 'UNAUTHENTICATED');
    const empty = await refusal(connectControl(kernel.dataDir, { secret: '' }));
    assert.equal(empty.code, 'UNAUTHENTICATED');
  });

  it('refuses a client of another protocol version with a clear error', async () => {
    const err = await refusal(connectControl(kernel.dataDir, { protocol: 2 }));
    assert.equal(err.code, ControlErrorCodes.PROTOCOL_MISMATCH);
    assert.match(err.message, /server speaks control protocol 1, the client 2/);
  });

  it('the client refuses a server of another protocol version without sending it the secret', async () => {
    const dataDir = tempDir();
    ensureControlSecret(dataDir);
    let received = '';
    const fake = createServer((socket) => {
      socket.on('data', (d) => (received += d));
      socket.write(JSON.stringify({ type: 'hello', protocol: 99, capabilities: [] }) + '\n');
    });
    await new Promise<void>((r) => fake.listen(controlSocketPath(dataDir), r));
    chmodSync(controlSocketPath(dataDir), 0o600);
    try {
      const err = await refusal(connectControl(dataDir));
      assert.equal(err.code, ControlErrorCodes.PROTOCOL_MISMATCH);
      assert.match(err.message, /server speaks control protocol 99, this aion CLI speaks 1/);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(received, '', 'no secret was sent');
    } finally {
      fake.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('rate-limits each connection', async () => {
    const client = await connectControl(kernel.dataDir);
    try {
      const answers = await Promise.allSettled(Array.from({ length: 12 }, () => client.call('extensions.list')));
      const limited = answers.filter((a) => a.status === 'rejected' && (a.reason as { code: string }).code === 'RATE_LIMITED');
      assert.ok(limited.length >= 6, `${limited.length} of 12 were limited`);
      assert.ok(answers.filter((a) => a.status === 'fulfilled').length >= 5);
    } finally {
      client.close();
    }
    // Another connection has its own budget.
    const other = await connectControl(kernel.dataDir);
    await other.call('extensions.list');
    other.close();
  });

  it('refuses a secret file that others may read, or that another user owns', async () => {
    const secretPath = controlSecretPath(kernel.dataDir);
    try {
      chmodSync(secretPath, 0o644);
      let err = await refusal(connectControl(kernel.dataDir));
      assert.equal(err.code, ControlErrorCodes.UNSAFE);
      assert.match(err.message, /mode 644; it must be 600/);
      assert.throws(() => ensureControlSecret(kernel.dataDir), /mode 644/);
      chmodSync(secretPath, 0o600);
      if (process.getuid?.() === 0) {
        chownSync(secretPath, NOBODY, NOBODY);
        err = await refusal(connectControl(kernel.dataDir));
        assert.equal(err.code, ControlErrorCodes.UNSAFE);
        assert.match(err.message, /belongs to uid 65534, not to you/);
      }
    } finally {
      chmodSync(secretPath, 0o600);
      if (process.getuid?.() === 0) chownSync(secretPath, 0, 0);
    }
  });

  it("refuses another user's socket before sending anything", async function () {
    if (process.getuid?.() !== 0) this.skip();
    try {
      chownSync(control.socketPath, NOBODY, NOBODY);
      const err = await refusal(connectControl(kernel.dataDir));
      assert.equal(err.code, ControlErrorCodes.UNSAFE);
      assert.match(err.message, /control socket .* belongs to uid 65534/);
    } finally {
      chownSync(control.socketPath, 0, 0);
    }
  });

  it('refuses a second server on the same data directory, and replaces a stale socket', async () => {
    const err = await refusal(ControlServer.start(kernel.kernel));
    assert.equal(err.code, 'CONFLICT');
    const dataDir = tempDir();
    const stale = createServer().listen(controlSocketPath(dataDir));
    await new Promise((r) => stale.once('listening', r));
    chmodSync(controlSocketPath(dataDir), 0o600);
    // Closing a Node server removes its socket file; simulate a crash by leaving one behind.
    const { spawnSync } = await import('node:child_process');
    stale.close();
    spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(controlSocketPath(dataDir))}, () => process.exit(0))`]);
    const started = await startTestKernel({ config: { dataDir } });
    try {
      const fresh = await ControlServer.start(started.kernel);
      await fresh.close();
    } finally {
      await started.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('reloads an extension: its host restarts and new code answers, without restarting the kernel', async () => {
    const before = (await (await kernel.request('/v1/versioned')).json()) as { version: number; pid: number };
    assert.equal(before.version, 1);
    writeVersioned(root, 2);
    const client = await connectControl(kernel.dataDir);
    try {
      const reloaded = await client.call<{ host: string; extensions: string[]; ms: number }>('reload', { extension: 't.versioned' });
      assert.deepEqual(reloaded.extensions, ['t.versioned']);
      assert.match(reloaded.host, /^shared/);
      const after = (await (await kernel.request('/v1/versioned')).json()) as { version: number; pid: number };
      assert.equal(after.version, 2);
      assert.notEqual(after.pid, before.pid, 'a fresh host process');
      assert.equal((await refusal(client.call('reload', { extension: 'nobody.here' }))).code, 'EXTENSION_NOT_FOUND');
      assert.equal((await refusal(client.call('reload', {}))).code, 'BAD_REQUEST');
    } finally {
      client.close();
    }
    assert.equal(kernel.health().counts.hosts.exited, undefined, 'no host is left exited');
  });

  it('a spare host process prepared ahead (as aion dev does) is the one the reload switches to', async () => {
    const children = () => new Set(readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
    const before = children();
    const { ExtensionRegistry, HostManager } = await import('../src/index.js');
    kernel.kernel.get(HostManager).prepareStandby(kernel.kernel.get(ExtensionRegistry).require('t.versioned'));
    const spare = await waitFor(() => [...children()].find((pid) => !before.has(pid)));
    writeVersioned(root, 3);
    const client = await connectControl(kernel.dataDir);
    try {
      await client.call('reload', { extension: 't.versioned' });
    } finally {
      client.close();
    }
    const after = (await (await kernel.request('/v1/versioned')).json()) as { version: number; pid: number };
    assert.equal(after.version, 3, 'the spare imported the extension only when activated, so it runs the new code');
    assert.equal(after.pid, spare);
  });
});
