import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HostCallStatus, isSandboxError, validateModule, WasmEngine, type WasmLimits } from '../src/index.js';
import { buildFixtures, type Fixtures } from './support/assemblyscript.js';
import { tinyModule } from './support/wasm-builder.js';
import { rejectsWith } from './support/assertions.js';

const limits: WasmLimits = { timeoutMs: 2000, memoryPages: 64, maxOutputBytes: 64 * 1024 };

describe('WasmEngine', function () {
  let fixtures: Fixtures;
  let engine: WasmEngine;
  let probe: string;

  before(async function () {
    this.timeout(120_000);
    fixtures = await buildFixtures();
    engine = new WasmEngine({ workers: 2 });
    probe = (await engine.compile(fixtures.probe)).hash;
    await engine.ready();
  });

  after(() => engine.close());

  const run = (args: string[], extra: Partial<Parameters<WasmEngine['run']>[0]> = {}) => engine.run({ hash: probe, args, limits, ...extra });

  it('gives the guest its JSON input on stdin and parses its stdout', async () => {
    const result = await run(['echo'], { input: { text: 'héllo', n: [1, 2, 3] } });
    assert.deepEqual(result.output, { text: 'héllo', n: [1, 2, 3] });
    assert.equal(result.stderr, '');
    assert.deepEqual(result.diagnostics, []);
    assert.ok(result.durationMs > 0);
  });

  it('compiles each module once, keyed by the sha256 of its bytes', async () => {
    const again = await engine.compile(fixtures.probe.slice());
    assert.equal(again.hash, probe);
    assert.match(probe, /^[0-9a-f]{64}$/);
    assert.ok(engine.has(probe));
    const byBytes = await engine.run({ bytes: fixtures.probe, args: ['echo'], input: 7, limits });
    assert.equal(byBytes.output, 7);
  });

  it('stops an endless loop with TIMEOUT and keeps serving during and after', async () => {
    const started = performance.now();
    const looping = rejectsWith(run(['loop'], { limits: { ...limits, timeoutMs: 300 } }), 'TIMEOUT');
    const during = await Promise.all(Array.from({ length: 5 }, (_, i) => run(['echo'], { input: i })));
    assert.deepEqual(
      during.map((r) => r.output),
      [0, 1, 2, 3, 4],
    );
    await looping;
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 300 && elapsed < 1000, `timed out after ${elapsed} ms`);
    const after = await run(['echo'], { input: 'still here' });
    assert.equal(after.output, 'still here');
    // Both threads time out at once: the spare and fresh workers take over.
    await Promise.all([1, 2].map(() => rejectsWith(run(['loop'], { limits: { ...limits, timeoutMs: 100 } }), 'TIMEOUT')));
    assert.equal((await run(['echo'], { input: 'again' })).output, 'again');
  });

  it('reports MEMORY_LIMIT when the guest grows memory past the cap', async () => {
    await rejectsWith(run(['grow'], { limits: { ...limits, memoryPages: 32 } }), 'MEMORY_LIMIT');
    await rejectsWith(run(['bigalloc']), 'MEMORY_LIMIT');
    assert.equal((await run(['echo'], { input: 1 })).output, 1);
  });

  it('reports a plain trap as SKILL_FAILED, not as a memory problem', async () => {
    const err = await rejectsWith(run(['trap']), 'SKILL_FAILED');
    assert.match(err.message, /trapped: unreachable/);
  });

  it('aborts a call whose output passes maxOutputBytes with OUTPUT_TOO_LARGE', async () => {
    const err = await rejectsWith(run(['bigout'], { limits: { ...limits, maxOutputBytes: 10_000 } }), 'OUTPUT_TOO_LARGE');
    assert.match(err.message, /10000 bytes/);
  });

  it('reports a non-zero exit as SKILL_FAILED with the tail of stderr', async () => {
    const err = await rejectsWith(run(['exit', '3']), 'SKILL_FAILED');
    assert.match(err.message, /exited with code 3/);
    assert.match(err.message, /failing on purpose/);
    assert.doesNotMatch(err.message, /\/work|\/tmp|at .*\.js/);
  });

  it('reports output that is not JSON as INVALID_OUTPUT', async () => {
    await rejectsWith(run(['notjson']), 'INVALID_OUTPUT');
  });

  it('refuses a module that defines memory without a maximum', async () => {
    await rejectsWith(engine.compile(fixtures.probeUnbounded), 'MODULE_MEMORY_UNBOUNDED');
    assert.throws(
      () => validateModule(tinyModule({ definedMemory: { min: 1 } })),
      (err) => isSandboxError(err, 'MODULE_MEMORY_UNBOUNDED'),
    );
    assert.throws(
      () => validateModule(tinyModule({ definedMemory: { min: 1, max: 100 } }), { memoryPages: 64 }),
      (err) => isSandboxError(err, 'MODULE_MEMORY_UNBOUNDED'),
    );
    const info = validateModule(tinyModule({ definedMemory: { min: 1, max: 16 } }), { memoryPages: 64 });
    assert.deepEqual(
      info.memories.map((m) => [m.source, m.minimumPages, m.maximumPages]),
      [['defined', 1, 16]],
    );
  });

  it('runs a module with its own bounded memory, capped by the smaller of its maximum and the limit', async () => {
    const { hash } = await engine.compile(fixtures.probeBounded);
    assert.deepEqual((await engine.run({ hash, args: ['echo'], input: [1], limits })).output, [1]);
    await rejectsWith(engine.run({ hash, args: ['echo'], input: [1], limits: { ...limits, memoryPages: 4 } }), 'MODULE_MEMORY_UNBOUNDED');
    const err = await rejectsWith(engine.run({ hash, args: ['grow'], limits }), 'MEMORY_LIMIT');
    assert.match(err.message, /limit 8 pages/);
  });

  it('refuses modules that are not valid or import what the sandbox does not provide', async () => {
    await rejectsWith(engine.compile(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 99])), 'MODULE_INVALID');
    await rejectsWith(engine.compile(new TextEncoder().encode('not wasm at all')), 'MODULE_INVALID');
    const err = await rejectsWith(engine.compile(tinyModule({ functionImports: [['aion', 'spawn']], importedMemory: { min: 1 } })), 'MODULE_INVALID');
    assert.match(err.message, /aion\.spawn/);
    await rejectsWith(engine.compile(tinyModule({ functionImports: [['wasi_snapshot_preview1', 'fd_write']] })), 'MODULE_INVALID');
    await rejectsWith(engine.run({ hash: 'f'.repeat(64), limits }), 'MODULE_INVALID');
  });

  it('links any WASI import name, answering ENOSYS outside the subset', async () => {
    // _start calls sched_yield, which is not implemented; the call returns and the guest exits with no output.
    const bytes = tinyModule({ functionImports: [['wasi_snapshot_preview1', 'sched_yield']], importedMemory: { min: 1 }, start: [0x10, 0x00] });
    await rejectsWith(engine.run({ bytes, limits }), 'INVALID_OUTPUT');
  });

  it('refuses a memory minimum above the cap', async () => {
    await rejectsWith(engine.run({ bytes: tinyModule({ importedMemory: { min: 100 } }), limits }), 'MEMORY_LIMIT');
  });

  it('shows the guest no host files: no preopened directories, path_open fails for every descriptor', async () => {
    const { output } = await run(['files', 'etc/passwd']);
    const result = output as { pathOpen: number[]; prestat: number; readFd3: number };
    assert.deepEqual(result.pathOpen, Array(8).fill(52)); // ENOSYS on stdio and on descriptors that do not exist
    assert.equal(result.prestat, 8); // EBADF: nothing preopened
    assert.equal(result.readFd3, 8);
  });

  it('gives the guest only the declared environment and arguments', async () => {
    process.env.SANDBOX_TEST_LEAK = 'host value';
    const { output } = await run(['env'], { env: { LANG: 'C', MODE: 'test' } });
    delete process.env.SANDBOX_TEST_LEAK;
    assert.deepEqual(output, { env: ['LANG=C', 'MODE=test'], argv: [probe, 'env'] });
  });

  it('streams stderr and aion.log lines to onLog and returns them', async () => {
    const lines: string[] = [];
    const result = await run(['log'], { onLog: (line) => lines.push(line) });
    assert.deepEqual(result.output, { logged: true });
    assert.deepEqual(lines, ['hello from the guest', 'and from stderr']);
    assert.equal(result.stderr, 'hello from the guest\nand from stderr\n');
  });

  it('serves clocks and randomness', async () => {
    const { output } = await run(['clock']);
    const { now, random } = output as { now: number; random: number };
    assert.ok(Math.abs(now - Date.now()) < 5000);
    assert.ok(random >= 0 && random < 1);
  });

  describe('secrets', () => {
    it('returns a declared secret', async () => {
      const { output, diagnostics } = await run(['secret', 'API_KEY'], { secrets: { API_KEY: 'k-123' } });
      assert.deepEqual(output, { status: 5, value: 'k-123' });
      assert.deepEqual(diagnostics, []);
    });

    it('denies a secret that is not declared and says so in the diagnostics', async () => {
      const { output, diagnostics, stderr } = await run(['secret', 'OTHER'], { secrets: { API_KEY: 'k-123' } });
      assert.deepEqual(output, { status: HostCallStatus.DENIED, value: null });
      assert.deepEqual(diagnostics, [{ code: 'PERMISSION_DENIED', message: 'secret_get("OTHER"): the secret is not declared' }]);
      assert.match(stderr, /denied/);
    });

    it('reports PERMISSION_DENIED when the guest fails after a refusal', async () => {
      const err = await rejectsWith(run(['need-secret', 'TOKEN']), 'PERMISSION_DENIED');
      assert.match(err.message, /TOKEN/);
    });
  });

  describe('http_fetch', () => {
    let server: Server;
    let port: number;
    const seen: string[] = [];

    before(async () => {
      server = createServer((req: IncomingMessage, res) => {
        seen.push(`${req.method} ${req.url}`);
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ hello: 'guest' }));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as AddressInfo).port;
    });

    after(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('denies a host that is not declared', async () => {
      const { output, diagnostics } = await run(['fetch', 'https://undeclared.example/data'], { allowedHosts: ['api.example.com'] });
      assert.deepEqual(output, { status: HostCallStatus.DENIED, response: null });
      assert.equal(diagnostics[0]?.code, 'PERMISSION_DENIED');
      assert.match(diagnostics[0]!.message, /undeclared\.example/);
    });

    it('denies 127.0.0.1 unless it is declared', async () => {
      const { output, diagnostics } = await run(['fetch', `http://127.0.0.1:${port}/private`], { allowedHosts: ['api.example.com', '*.example.org'] });
      assert.deepEqual(output, { status: HostCallStatus.DENIED, response: null });
      assert.equal(diagnostics.length, 1);
      assert.ok(!seen.includes('GET /private'), 'the request reached the server');
    });

    it('denies everything when no host is declared', async () => {
      const { output } = await run(['fetch', `http://127.0.0.1:${port}/none`]);
      assert.deepEqual(output, { status: HostCallStatus.DENIED, response: null });
    });

    it('reaches a local server declared explicitly, synchronously from the guest', async () => {
      const { output, diagnostics } = await run(['fetch', `http://127.0.0.1:${port}/ok?x=1`], { allowedHosts: [`127.0.0.1:${port}`] });
      const { status, response } = output as { status: number; response: { status: number; headers: Record<string, string>; body: string } };
      assert.ok(status > 0);
      assert.equal(response.status, 200);
      assert.equal(response.headers['content-type'], 'application/json');
      assert.deepEqual(JSON.parse(response.body), { hello: 'guest' });
      assert.deepEqual(diagnostics, []);
      assert.ok(seen.includes('GET /ok?x=1'));
    });

    it('checks the port when the declaration names one', async () => {
      const { output } = await run(['fetch', `http://127.0.0.1:${port}/port`], { allowedHosts: [`127.0.0.1:${port + 1}`] });
      assert.deepEqual(output, { status: HostCallStatus.DENIED, response: null });
    });

    it('times out a guest blocked on a slow request and keeps serving', async () => {
      const slow = createServer(() => {}); // never answers
      await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
      const slowPort = (slow.address() as AddressInfo).port;
      try {
        await rejectsWith(
          run(['fetch', `http://127.0.0.1:${slowPort}/`], { allowedHosts: [`127.0.0.1:${slowPort}`], limits: { ...limits, timeoutMs: 300 } }),
          'TIMEOUT',
        );
        assert.equal((await run(['echo'], { input: 'ok' })).output, 'ok');
      } finally {
        slow.closeAllConnections();
        slow.close();
      }
    });
  });

  it('cancels a call through its AbortSignal', async () => {
    const controller = new AbortController();
    const pending = rejectsWith(run(['loop'], { signal: controller.signal, limits: { ...limits, timeoutMs: 10_000 } }), 'CANCELLED');
    setTimeout(() => controller.abort(), 50);
    await pending;
    assert.equal((await run(['echo'], { input: 'next' })).output, 'next');
  });

  it('fails calls with ENGINE_CLOSED once closed', async () => {
    const other = new WasmEngine({ workers: 1 });
    const { hash } = await other.compile(fixtures.probe);
    const running = rejectsWith(other.run({ hash, args: ['loop'], limits }), 'ENGINE_CLOSED');
    const queued = rejectsWith(other.run({ hash, args: ['echo'], limits }), 'ENGINE_CLOSED');
    await new Promise((resolve) => setTimeout(resolve, 50));
    await other.close();
    await running;
    await queued;
    await rejectsWith(other.run({ hash, args: ['echo'], limits }), 'ENGINE_CLOSED');
  });
});
