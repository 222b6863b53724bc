import { readFile } from 'node:fs/promises';
import { availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ProcessEngine, WasmEngine, type WasmLimits } from '../src/index.js';
import { createWasiImports, GuestExit, type WasiCall } from '../src/wasm/wasi.js';
import { buildFixtures } from '../test/support/assemblyscript.js';

/**
 * One run, one machine: a direct in-thread instantiate-and-run baseline, the engine's warm calls,
 * its first call after compile, and a native process skill for comparison.
 */

const sandboxRoot = join(new URL('.', import.meta.url).pathname, '../..');
const packRoot = join(sandboxRoot, '../samples/skill-pack-text');
const CALLS = Number(process.env.BENCH_CALLS ?? 1000);
const limits: WasmLimits = { timeoutMs: 5000, memoryPages: 256, maxOutputBytes: 1024 * 1024 };
const input = { text: 'The sandbox runs untrusted code with hard limits. It knows nothing about extensions; a skills extension calls it. '.repeat(2), top: 3 };

interface Stats {
  p50: number;
  p99: number;
  mean: number;
  perSecond: number;
}

function stats(samples: number[], wallMs: number): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { p50: at(0.5), p99: at(0.99), mean: samples.reduce((a, b) => a + b, 0) / samples.length, perSecond: (samples.length / wallMs) * 1000 };
}

const ms = (v: number) => `${v.toFixed(3)} ms`;

/** The same guest, instantiated and run on the main thread with the same WASI code: the floor the engine adds to. */
function baseline(module: WebAssembly.Module, stdin: Uint8Array, calls: number): Stats {
  let call: WasiCall;
  const wasi = createWasiImports(() => call);
  const samples: number[] = [];
  const started = performance.now();
  for (let i = 0; i < calls; i++) {
    const t = performance.now();
    const memory = new WebAssembly.Memory({ initial: 1, maximum: limits.memoryPages });
    const out: Uint8Array[] = [];
    call = { memory, stdin, stdinOffset: 0, args: ['bench'], env: [], writeStdout: (b) => void out.push(b.slice()), writeStderr: () => {} };
    const instance = new WebAssembly.Instance(module, { env: { memory }, wasi_snapshot_preview1: wasi as WebAssembly.ModuleImports });
    try {
      (instance.exports._start as () => void)();
    } catch (err) {
      if (!(err instanceof GuestExit) || err.code !== 0) throw err;
    }
    JSON.parse(Buffer.concat(out).toString('utf8'));
    samples.push(performance.now() - t);
  }
  return stats(samples, performance.now() - started);
}

async function sequential(engine: WasmEngine, hash: string, calls: number, args?: string[]): Promise<Stats> {
  const samples: number[] = [];
  const started = performance.now();
  for (let i = 0; i < calls; i++) {
    const t = performance.now();
    await engine.run({ hash, input, limits, args });
    samples.push(performance.now() - t);
  }
  return stats(samples, performance.now() - started);
}

async function concurrent(engine: WasmEngine, hash: string, calls: number, inFlight: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next++ < calls) await engine.run({ hash, input, limits });
    }),
  );
  return (calls / (performance.now() - started)) * 1000;
}

async function main(): Promise<void> {
  const build = (await import(pathToFileURL(join(packRoot, 'build.mjs')).href)) as {
    buildSkills(o: { onlyStale: boolean }): Promise<string[]>;
    skillNames(): string[];
    skillsDir: string;
  };
  await build.buildSkills({ onlyStale: true });
  const modules = new Map<string, Uint8Array>();
  for (const name of build.skillNames()) modules.set(name, new Uint8Array(await readFile(join(build.skillsDir, `${name}.wasm`))));
  const guest = modules.get('text-stats')!;
  const stdin = new TextEncoder().encode(JSON.stringify(input));

  console.log(
    `node ${process.version}, ${availableParallelism()} cores (${cpus()[0]?.model ?? 'unknown'}), ${CALLS} calls, guest text-stats.wasm ${guest.length} bytes`,
  );

  const module = await WebAssembly.compile(guest as Uint8Array<ArrayBuffer>);
  baseline(module, stdin, 200); // warm-up: V8 tiers the guest and the shim
  const base = baseline(module, stdin, CALLS);

  const engine = new WasmEngine();
  await engine.ready();
  // First call after compile: each module is new to the engine, its workers are warm.
  const firstCalls: number[] = [];
  for (const [name, bytes] of modules) {
    const { hash } = await engine.compile(bytes);
    const t = performance.now();
    await engine.run({
      hash,
      input:
        name === 'text-stats'
          ? input
          : name === 'json-query'
            ? { data: input, path: 'top' }
            : name === 'line-diff'
              ? { before: 'a', after: 'b' }
              : { text: input.text },
      limits,
    });
    firstCalls.push(performance.now() - t);
  }
  const { hash } = await engine.compile(guest);
  await sequential(engine, hash, 200); // warm-up of every worker
  const warm = await sequential(engine, hash, CALLS);
  const throughput = await concurrent(engine, hash, CALLS, engine.workers * 4);
  // A smaller guest that only echoes stdin: closer to the cost of the engine itself.
  const echoBytes = (await buildFixtures()).probe;
  const echo = await engine.compile(echoBytes);
  await sequential(engine, echo.hash, 200, ['echo']);
  const echoWarm = await sequential(engine, echo.hash, CALLS, ['echo']);
  await engine.close();

  const processes = new ProcessEngine({ idleTimeoutMs: 60_000 });
  const skill = { id: 'bench', command: process.execPath, args: [join(sandboxRoot, 'test/fixtures/process/mcp-skill.mjs')] };
  const processLimits = { timeoutMs: 10_000, maxOutputBytes: 1024 * 1024 };
  const coldSamples: number[] = [];
  const coldStarted = performance.now();
  for (let i = 0; i < 20; i++) {
    const t = performance.now();
    await processes.call({ skill, name: 'echo', arguments: input, limits: processLimits });
    coldSamples.push(performance.now() - t);
  }
  const cold = stats(coldSamples, performance.now() - coldStarted);
  const warmSkill = { ...skill, id: 'bench-warm', keepAlive: true };
  await processes.call({ skill: warmSkill, name: 'echo', arguments: input, limits: processLimits });
  const keptSamples: number[] = [];
  const keptStarted = performance.now();
  for (let i = 0; i < 200; i++) {
    const t = performance.now();
    await processes.call({ skill: warmSkill, name: 'echo', arguments: input, limits: processLimits });
    keptSamples.push(performance.now() - t);
  }
  const kept = stats(keptSamples, performance.now() - keptStarted);
  await processes.close();

  const firstSorted = [...firstCalls].sort((a, b) => a - b);
  const rows: Array<[string, string, string, string, string]> = [
    ['baseline: instantiate + run on the main thread', ms(base.p50), ms(base.p99), base.perSecond.toFixed(0), '1.0×'],
    [
      `WasmEngine warm call (${engine.workers} workers, sequential)`,
      ms(warm.p50),
      ms(warm.p99),
      warm.perSecond.toFixed(0),
      `${(warm.p50 / base.p50).toFixed(1)}×`,
    ],
    [`WasmEngine throughput, ${engine.workers * 4} in flight`, '', '', throughput.toFixed(0), ''],
    [`WasmEngine warm call, echo guest (${echoBytes.length} bytes)`, ms(echoWarm.p50), ms(echoWarm.p99), echoWarm.perSecond.toFixed(0), ''],
    [
      `WasmEngine first call after compile (${firstCalls.length} modules)`,
      ms(firstSorted[Math.floor(firstSorted.length / 2)]!),
      `max ${ms(firstSorted[firstSorted.length - 1]!)}`,
      '',
      `${(firstSorted[Math.floor(firstSorted.length / 2)]! / base.p50).toFixed(0)}×`,
    ],
    ['ProcessEngine, one process per call (node skill)', ms(cold.p50), ms(cold.p99), cold.perSecond.toFixed(0), `${(cold.p50 / base.p50).toFixed(0)}×`],
    ['ProcessEngine, keepAlive (node skill)', ms(kept.p50), ms(kept.p99), kept.perSecond.toFixed(0), `${(kept.p50 / base.p50).toFixed(0)}×`],
  ];
  const width = Math.max(...rows.map((r) => r[0].length));
  console.log(`${'case'.padEnd(width)}  ${'p50'.padStart(10)}  ${'p99'.padStart(14)}  ${'calls/s'.padStart(8)}  vs baseline p50`);
  for (const [name, p50, p99, rate, ratio] of rows)
    console.log(`${name.padEnd(width)}  ${p50.padStart(10)}  ${p99.padStart(14)}  ${rate.padStart(8)}  ${ratio}`);
  const targets = { warmP50: warm.p50 <= 0.3, warmP99: warm.p99 <= 2, firstCall: firstSorted[firstSorted.length - 1]! <= 30 };
  console.log(
    `targets: warm p50 ≤ 0.3 ms ${targets.warmP50 ? 'met' : 'MISSED'}; warm p99 ≤ 2 ms ${targets.warmP99 ? 'met' : 'MISSED'}; first call ≤ 30 ms ${targets.firstCall ? 'met' : 'MISSED'}`,
  );
  console.log(JSON.stringify({ baseline: base, warm, throughput, echoWarm, firstCalls, processPerCall: cold, processKeepAlive: kept, targets }));
}

await main();
