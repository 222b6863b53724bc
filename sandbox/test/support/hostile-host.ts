/**
 * A host process for hostile guests: runs one scenario on a real WasmEngine and prints what
 * happened as one JSON line. The tests start it as a child process, so that a guest able to
 * abort a process aborts this one, and the test sees the signal instead of dying with it.
 */
import { isSandboxError, WasmEngine, type WasmEngineOptions, type WasmEngineStats, type WasmLimits } from '../../src/index.js';
import { hogGuest, hostCallFloodGuest, jsonGuest, tableGrowGuest, type HostCallFlood } from './hostile-guests.js';

export interface CallOutcome {
  code: string;
  fatal?: boolean;
  message?: string;
  threadId?: number;
}

const limits: WasmLimits = { timeoutMs: 30_000, memoryPages: 1024, maxOutputBytes: 4 * 1024 * 1024 };
const rssMb = () => Math.round(process.memoryUsage().rss / 2 ** 20);

async function outcome(call: Promise<{ threadId: number }>): Promise<CallOutcome> {
  try {
    return { code: 'OK', threadId: (await call).threadId };
  } catch (err) {
    if (!isSandboxError(err)) throw err;
    return { code: err.code, fatal: err.fatal, message: err.message };
  }
}

async function withEngine<T>(options: WasmEngineOptions, work: (engine: WasmEngine, json: string) => Promise<T>): Promise<T> {
  const engine = new WasmEngine(options);
  try {
    await engine.ready();
    const { hash } = await engine.compile(jsonGuest('{"ok":true}'));
    return await work(engine, hash);
  } finally {
    await engine.close();
  }
}

const scenarios: Record<string, () => Promise<unknown>> = {
  /**
   * Eight rounds of two calls at once: one guest takes its linear memory to the cap and its table
   * to its maximum; the other grows a table until a 16 MiB worker heap runs out.
   */
  'allocate-until-cap': () =>
    withEngine({ workers: 2, spareWorkers: 1, workerHeapMb: 16, moduleLimits: { maxTableElements: 1_000_000 } }, async (engine, json) => {
      const hog = (await engine.compile(hogGuest(65_536))).hash;
      const heapHog = (await engine.compile(tableGrowGuest({ min: 1, max: 1_000_000 }))).hash;
      const rounds: Array<{ memory: CallOutcome; heap: CallOutcome; rssMb: number; stats: WasmEngineStats }> = [];
      for (let round = 0; round < 8; round++) {
        const [memory, heap] = await Promise.all([outcome(engine.run({ hash: hog, limits })), outcome(engine.run({ hash: heapHog, limits }))]);
        rounds.push({ memory, heap, rssMb: rssMb(), stats: engine.stats() });
      }
      return { rounds, after: await outcome(engine.run({ hash: json, limits })) };
    }),

  /** Host calls asked to allocate without bound, one kind after another, on one worker. */
  'host-call-flood': () =>
    withEngine({ workers: 1, spareWorkers: 1 }, async (engine, json) => {
      const before = await outcome(engine.run({ hash: json, limits }));
      const floods: HostCallFlood[] = ['secret-names', 'log-lines', 'fetch-requests', 'iovecs', 'stdout-bytes'];
      const results: Record<string, CallOutcome> = {};
      // A declared host, so that http_fetch reads the request; nothing is listening there.
      for (const flood of floods) results[flood] = await outcome(engine.run({ bytes: hostCallFloodGuest(flood), allowedHosts: ['127.0.0.1:9'], limits }));
      return { before, results, after: await outcome(engine.run({ hash: json, limits })), stats: engine.stats() };
    }),

  /** Tables: unbounded, over the cap, and grown to their maximum at run time. */
  'table-growth': () =>
    withEngine({ workers: 1, spareWorkers: 1 }, async (engine, json) => {
      const unbounded = await outcome(engine.run({ bytes: hogGuest(), limits }));
      const overCap = await outcome(engine.run({ bytes: tableGrowGuest({ min: 1, max: 10_000_000 }), limits }));
      const grown = await outcome(engine.run({ bytes: tableGrowGuest({ min: 1, max: 60_001 }), limits }));
      return { unbounded, overCap, grown, stats: engine.stats(), after: await outcome(engine.run({ hash: json, limits })) };
    }),
};

const scenario = scenarios[process.argv[2] ?? ''];
if (!scenario) {
  process.stderr.write(`unknown scenario ${process.argv[2]}; one of ${Object.keys(scenarios).join(', ')}\n`);
  process.exit(2);
}
process.stdout.write(`${JSON.stringify(await scenario())}\n`);
