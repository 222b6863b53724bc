import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  DEFAULT_MODULE_LIMITS,
  isSandboxError,
  validateModule,
  WasmEngine,
  type SandboxErrorCode,
  type WasmEngineStats,
  type WasmLimits,
} from '../src/index.js';
import type { CallOutcome } from './support/hostile-host.js';
import { jsonGuest, loopGuest, recursionGuest, tableGrowGuest } from './support/hostile-guests.js';
import { wasmModule } from './support/wasm-builder.js';
import { rejectsWith } from './support/assertions.js';

const limits: WasmLimits = { timeoutMs: 5000, memoryPages: 64, maxOutputBytes: 64 * 1024 };

/** CPU this process spent over `ms` of wall-clock time, in cores (1 = one core busy throughout). */
async function coresBusy(ms: number): Promise<number> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const used = process.cpuUsage(cpu);
  return (used.user + used.system) / 1000 / (performance.now() - started);
}

function assertWhole(stats: WasmEngineStats, threads: number): void {
  assert.equal(stats.threads, threads, `threads: ${JSON.stringify(stats)}`);
  assert.equal(stats.terminating, 0, `a terminated thread had not exited when the call answered: ${JSON.stringify(stats)}`);
  assert.equal(stats.busy, 0);
}

describe('WasmEngine against hostile guests', function () {
  this.timeout(60_000);
  const json = jsonGuest('{"ok":true}');

  describe('a guest that does not stop', () => {
    let engine: WasmEngine;
    before(async () => {
      engine = new WasmEngine({ workers: 1, spareWorkers: 1 });
      await engine.ready();
    });
    after(() => engine.close());

    it('is terminated and replaced before the call answers; the next call runs at once on a fresh thread', async () => {
      const first = await engine.run({ bytes: json, limits });
      const looping = first.threadId;
      assert.ok(engine.stats().threadIds.includes(looping));

      const err = await rejectsWith(engine.run({ bytes: loopGuest(), limits: { ...limits, timeoutMs: 200 } }), 'TIMEOUT');
      assert.equal(err.fatal, true);
      const stats = engine.stats();
      assert.ok(!stats.threadIds.includes(looping), `the looping thread ${looping} is still in the pool: ${JSON.stringify(stats)}`);
      assertWhole(stats, 2);
      assert.equal(stats.replaced, 1);

      const next = await engine.run({ bytes: json, limits });
      assert.deepEqual(next.output, { ok: true });
      assert.notEqual(next.threadId, looping);
      assert.ok(stats.threadIds.includes(next.threadId));

      await engine.ready(); // the new spare's start-up is not what this measures
      const busy = await coresBusy(500);
      assert.ok(busy < 0.2, `the process kept ${busy.toFixed(2)} cores busy after the timeout`);
    });

    it('starts a fresh thread when there is no spare', async () => {
      const lean = new WasmEngine({ workers: 1, spareWorkers: 0 });
      try {
        const { threadId } = await lean.run({ bytes: json, limits });
        await rejectsWith(lean.run({ bytes: loopGuest(), limits: { ...limits, timeoutMs: 100 } }), 'TIMEOUT');
        assert.ok(!lean.stats().threadIds.includes(threadId));
        assertWhole(lean.stats(), 1);
        const next = await lean.run({ bytes: json, limits });
        assert.notEqual(next.threadId, threadId);
      } finally {
        await lean.close();
      }
    });

    it('terminates the worker of a cancelled call too, but does not count the cancellation as fatal', async () => {
      const controller = new AbortController();
      const pending = rejectsWith(engine.run({ bytes: loopGuest(), limits: { ...limits, timeoutMs: 10_000 }, signal: controller.signal }), 'CANCELLED');
      setTimeout(() => controller.abort(), 50);
      const err = await pending;
      assert.equal(err.fatal, false);
      assertWhole(engine.stats(), 2);
      assert.deepEqual((await engine.run({ bytes: json, limits })).output, { ok: true });
    });
  });

  describe('stack', () => {
    let engine: WasmEngine;
    before(() => (engine = new WasmEngine({ workers: 1, spareWorkers: 1, workerStackMb: 2 })));
    after(() => engine.close());

    it('ends deep recursion with STACK_OVERFLOW, small frames or huge ones, and the worker keeps serving', async () => {
      const { threadId } = await engine.run({ bytes: json, limits });
      for (const frameLocals of [0, 50_000]) {
        const err = await rejectsWith(engine.run({ bytes: recursionGuest(frameLocals), limits }), 'STACK_OVERFLOW');
        assert.match(err.message, /stack \(2 MiB\)/);
        assert.equal(err.fatal, false);
      }
      const next = await engine.run({ bytes: json, limits });
      assert.equal(next.threadId, threadId, 'a stack overflow unwinds; the thread is not replaced');
      assert.equal(engine.stats().replaced, 0);
    });
  });

  describe('module inspection', () => {
    let engine: WasmEngine;
    before(() => (engine = new WasmEngine({ workers: 1, spareWorkers: 0 })));
    after(() => engine.close());

    const refused = async (bytes: Uint8Array, code: SandboxErrorCode, message: RegExp, options: Parameters<typeof validateModule>[1] = {}) => {
      assert.throws(
        () => validateModule(bytes, options),
        (err) => isSandboxError(err, code) && message.test(err.message),
      );
      if (!options.moduleLimits && options.memoryPages === undefined) assert.match((await rejectsWith(engine.compile(bytes), code)).message, message);
    };

    it('refuses tables without a maximum or over the cap, at install and at compile; table.grow stops at the maximum', async () => {
      await refused(tableGrowGuest({ min: 1 }), 'MODULE_TABLE_UNBOUNDED', /without a maximum/);
      await refused(
        tableGrowGuest({ min: 1, max: DEFAULT_MODULE_LIMITS.maxTableElements + 1 }),
        'MODULE_TABLE_UNBOUNDED',
        /may grow to 65537 elements; the limit is 65536/,
      );
      const twoTables = wasmModule({
        importedMemory: { min: 1 },
        tables: [
          { min: 0, max: 40_000 },
          { min: 0, max: 40_000 },
        ],
      });
      await refused(twoTables, 'MODULE_TABLE_UNBOUNDED', /80000 elements/);
      assert.deepEqual(validateModule(tableGrowGuest({ min: 1, max: 100 })).tables, [{ source: 'defined', minimumElements: 1, maximumElements: 100 }]);
      // Within the cap, table.grow past the declared maximum fails (−1) and the guest goes on.
      const err = await rejectsWith(engine.run({ bytes: tableGrowGuest({ min: 1, max: 3001 }), limits }), 'SKILL_FAILED');
      assert.match(err.message, /exited with code 3001\b/);
    });

    it('refuses modules over the structure caps before compiling them', async () => {
      const over = DEFAULT_MODULE_LIMITS;
      await refused(
        wasmModule({ importedMemory: { min: 1 }, functions: Array.from({ length: over.maxFunctions + 1 }, () => ({ body: [] })) }),
        'MODULE_TOO_LARGE',
        /100001 functions \(limit 100000\)/,
      );
      await refused(wasmModule({ importedMemory: { min: 1 }, globals: over.maxGlobals + 1 }), 'MODULE_TOO_LARGE', /10001 globals/);
      await refused(wasmModule({ importedMemory: { min: 1 }, dataSegments: over.maxDataSegments + 1 }), 'MODULE_TOO_LARGE', /10001 data segments/);
      await refused(
        wasmModule({ importedMemory: { min: 1 }, tables: [{ min: 1, max: 1 }], elementSegments: over.maxElementSegments + 1 }),
        'MODULE_TOO_LARGE',
        /10001 element segments/,
      );
      const imports = Array.from({ length: over.maxImports + 1 }, (_, i): [string, string] => ['wasi_snapshot_preview1', `made_up_${i}`]);
      await refused(wasmModule({ importedMemory: { min: 1 }, functionImports: imports }), 'MODULE_TOO_LARGE', /1002 imports \(limit 1000\)/);
      await refused(json, 'MODULE_TOO_LARGE', /is \d+ bytes; the limit is 100/, { moduleLimits: { maxModuleBytes: 100 } });
      await refused(wasmModule({ importedMemory: { min: 1 }, globals: 3 }), 'MODULE_TOO_LARGE', /3 globals \(limit 2\)/, { moduleLimits: { maxGlobals: 2 } });
      const small = new WasmEngine({ workers: 1, spareWorkers: 0, moduleLimits: { maxFunctions: 1 } });
      try {
        await rejectsWith(small.compile(wasmModule({ importedMemory: { min: 1 }, functions: [{ body: [] }, { body: [] }] })), 'MODULE_TOO_LARGE');
      } finally {
        await small.close();
      }
    });

    it('refuses a declared initial memory over the cap and WebAssembly GC types', async () => {
      await refused(wasmModule({ importedMemory: { min: 65 } }), 'MEMORY_LIMIT', /needs 65 pages of memory to start; the limit is 64/, { memoryPages: 64 });
      await refused(wasmModule({ importedMemory: { min: 1 }, rawTypes: [[0x5f, 0x00]] }), 'MODULE_INVALID', /GC types/);
    });

    it('refuses engine settings outside what keeps an out-of-memory inside the worker', () => {
      for (const options of [
        { workerHeapMb: 8 },
        { workerStackMb: 0 },
        { workerStackMb: 65 },
        { moduleLimits: { maxTableElements: 2_000_000 } },
        { spareWorkers: -1 },
      ]) {
        assert.throws(
          () => new WasmEngine(options),
          (err) => isSandboxError(err, 'INVALID_REQUEST'),
          JSON.stringify(options),
        );
      }
    });

    it('refuses a stderr cap the worker could not hold', async () => {
      await rejectsWith(engine.run({ bytes: json, limits: { ...limits, maxStderrBytes: 2 * 1024 * 1024 } }), 'INVALID_REQUEST');
    });
  });

  describe('in a host process of their own', function () {
    this.timeout(180_000);
    const harness = fileURLToPath(new URL('./support/hostile-host.js', import.meta.url));

    /** Runs a scenario in a child process; the process must end normally, however the guests behave. */
    const inHost = <T>(scenario: string) =>
      new Promise<T>((resolve, reject) => {
        execFile(process.execPath, [harness, scenario], { timeout: 150_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
          if (err)
            return reject(new Error(`the host process did not survive ${scenario} (${err.signal ?? `exit ${String(err.code)}`}): ${stderr.slice(-1500)}`));
          resolve(JSON.parse(stdout) as T);
        });
      });

    it('survives guests that take memory and worker heap to their caps, round after round, with RSS bounded', async () => {
      const { rounds, after } = await inHost<{
        rounds: Array<{ memory: CallOutcome; heap: CallOutcome; rssMb: number; stats: WasmEngineStats }>;
        after: CallOutcome;
      }>('allocate-until-cap');
      rounds.forEach(({ memory, heap, stats }, i) => {
        assert.equal(memory.code, 'MEMORY_LIMIT', `round ${i}: ${memory.message}`);
        assert.equal(memory.fatal, false, 'linear memory at its cap is a trap, not a kill');
        assert.equal(heap.code, 'MEMORY_LIMIT', `round ${i}: ${heap.message}`);
        assert.equal(heap.fatal, true);
        assert.match(heap.message!, /run out of heap memory \(limit 16 MiB\); the worker was replaced/);
        assert.equal(stats.replaced, i + 1, 'each worker that ran out of heap was replaced');
        assertWhole(stats, 3);
      });
      const rss = rounds.map((r) => r.rssMb);
      // Two guests of 64 MiB at a time: the process must not keep what each round took.
      assert.ok(Math.max(...rss.slice(2)) <= rss[1]! + 96, `RSS grew round after round: ${rss.join(', ')} MiB`);
      assert.equal(after.code, 'OK');
    });

    it('gives a guest no host call that makes the worker allocate without bound', async () => {
      const { before, results, after, stats } = await inHost<{
        before: CallOutcome;
        results: Record<string, CallOutcome>;
        after: CallOutcome;
        stats: WasmEngineStats;
      }>('host-call-flood');
      for (const flood of ['secret-names', 'log-lines', 'fetch-requests', 'iovecs']) {
        assert.equal(results[flood]!.code, 'OK', `${flood}: ${results[flood]!.message}`);
        assert.equal(results[flood]!.threadId, before.threadId, `${flood} ran on another thread`);
      }
      assert.equal(results['stdout-bytes']!.code, 'OUTPUT_TOO_LARGE');
      assert.equal(after.threadId, before.threadId, 'the same worker served every call');
      assert.equal(stats.replaced, 0);
    });

    it('refuses unbounded tables and stops table.grow at the maximum, in a host that stays up', async () => {
      const result = await inHost<Record<'unbounded' | 'overCap' | 'grown' | 'after', CallOutcome> & { stats: WasmEngineStats }>('table-growth');
      assert.equal(result.unbounded.code, 'MODULE_TABLE_UNBOUNDED');
      assert.equal(result.overCap.code, 'MODULE_TABLE_UNBOUNDED');
      assert.equal(result.grown.code, 'SKILL_FAILED');
      assert.match(result.grown.message!, /exited with code 60001\b/);
      assert.equal(result.after.code, 'OK');
      assert.equal(result.stats.replaced, 0);
    });
  });
});
