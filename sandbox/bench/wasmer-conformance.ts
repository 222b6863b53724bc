import { Wasmer } from '@wasmer/sdk/node';
import { WasmEngine } from '../src/index.js';
import { buildFixtures } from '../test/support/assemblyscript.js';

/**
 * Runs the sandbox's conformance checks against the WasmEngine and against @wasmer/sdk, with the
 * same plain-WASI guest: the timeout really stops the guest (CPU after the deadline), the host can
 * cap guest memory, the guest sees no host files, and it has no network. Prints one table.
 */

const CAP_MIB = 16;
let afterSandboxClose = NaN;
const TIMEOUT_MS = 300;

interface Runtime {
  name: string;
  run(args: string[], stdin: string, options: { timeoutMs: number }): Promise<{ ok: boolean; stdout: string; timedOut: boolean }>;
  close(): Promise<void>;
}

interface Report {
  runtime: string;
  initMs: number;
  rssGrowthMb: number;
  echo: string;
  warmP50: number;
  warmP99: number;
  timeoutReturnedMs: number;
  cpuAfterTimeout: number;
  callAfterTimeout: boolean;
  grownMiB: number;
  hostFile: string;
}

async function cpuShare(ms: number): Promise<number> {
  const start = process.cpuUsage();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000 / ms;
}

async function measure(runtime: Runtime, initMs: number, rssBefore: number): Promise<Report> {
  const echo = await runtime.run(['echo'], '{"hello":"conformance"}', { timeoutMs: 5000 });
  const samples: number[] = [];
  for (let i = 0; i < 50; i++) {
    const t = performance.now();
    await runtime.run(['echo'], '{"i":1}', { timeoutMs: 5000 });
    samples.push(performance.now() - t);
  }
  samples.sort((a, b) => a - b);
  const idle = await cpuShare(1000);
  const t = performance.now();
  const looping = await runtime.run(['loop'], '', { timeoutMs: TIMEOUT_MS });
  const timeoutReturnedMs = performance.now() - t;
  const after = await cpuShare(2000);
  const next = await runtime.run(['echo'], '"after"', { timeoutMs: 5000 });
  const grown = await runtime.run(['grow', '1024'], '', { timeoutMs: 20_000 });
  const file = await runtime.run(['readfile', '/etc/passwd'], '', { timeoutMs: 5000 });
  return {
    runtime: runtime.name,
    initMs,
    rssGrowthMb: (process.memoryUsage().rss - rssBefore) / 1e6,
    echo: echo.stdout,
    warmP50: samples[25]!,
    warmP99: samples[49]!,
    timeoutReturnedMs: looping.timedOut ? timeoutReturnedMs : NaN,
    cpuAfterTimeout: Math.max(0, after - idle),
    callAfterTimeout: next.ok && next.stdout === '"after"',
    grownMiB: grown.ok ? (JSON.parse(grown.stdout) as { grownMiB: number }).grownMiB : NaN,
    hostFile: file.ok ? ((JSON.parse(file.stdout) as { content: string | null }).content === null ? 'not reachable' : 'READ') : 'call failed',
  };
}

async function wasmEngineRuntime(bytes: Uint8Array): Promise<Runtime> {
  const engine = new WasmEngine();
  await engine.ready();
  const { hash } = await engine.compile(bytes);
  return {
    name: 'WasmEngine (V8, worker threads)',
    async run(args, stdin, { timeoutMs }) {
      try {
        const result = await engine.run({
          hash,
          args,
          input: stdin ? JSON.parse(stdin) : null,
          limits: { timeoutMs, memoryPages: CAP_MIB * 16, maxOutputBytes: 1 << 20 },
        });
        return { ok: true, stdout: JSON.stringify(result.output), timedOut: false };
      } catch (err) {
        return { ok: false, stdout: '', timedOut: (err as { code?: string }).code === 'TIMEOUT' };
      }
    },
    close: () => engine.close(),
  };
}

async function wasmerRuntime(bytes: Uint8Array): Promise<Runtime> {
  const wasmer = new Wasmer({ cache: false });
  await wasmer.ready();
  const pkg = await wasmer.packages.load(bytes);
  const sandbox = await wasmer.sandboxes.create({ packages: [pkg] });
  return {
    name: '@wasmer/sdk 0.16.0',
    async run(args, stdin, { timeoutMs }) {
      const output = await sandbox.command(pkg, args).run({ stdin, timeoutMs, check: false });
      return { ok: output.ok, stdout: output.stdout.text().trim(), timedOut: output.reason === 'timeout' };
    },
    async close() {
      await sandbox.close();
      afterSandboxClose = await cpuShare(2000);
      await wasmer.close();
    },
  };
}

async function main(): Promise<void> {
  const fixtures = await buildFixtures();
  const reports: Report[] = [];

  let rss = process.memoryUsage().rss;
  let t = performance.now();
  const ours = await wasmEngineRuntime(fixtures.wasiProbe);
  reports.push(await measure(ours, performance.now() - t, rss));
  await ours.close();

  // Last: a runaway guest thread would skew anything measured after it.
  rss = process.memoryUsage().rss;
  t = performance.now();
  const wasmer = await wasmerRuntime(fixtures.wasiProbeOwnMemory);
  reports.push(await measure(wasmer, performance.now() - t, rss));
  await wasmer.close();
  const afterClose = await cpuShare(2000);

  const f = (v: number, digits = 1) => (Number.isNaN(v) ? 'n/a' : v.toFixed(digits));
  const rows: Array<[string, (r: Report) => string]> = [
    ['init (ms)', (r) => f(r.initMs, 0)],
    ['process RSS growth, init + calls (MB)', (r) => f(r.rssGrowthMb, 0)],
    ['echo output', (r) => r.echo],
    ['warm call p50 / p99 (ms)', (r) => `${f(r.warmP50, 2)} / ${f(r.warmP99, 2)}`],
    [`endless loop, timeout ${TIMEOUT_MS} ms: call returned after (ms)`, (r) => f(r.timeoutReturnedMs, 0)],
    ['extra CPU in the 2 s after the timeout (cores)', (r) => f(r.cpuAfterTimeout, 2)],
    ['next call works', (r) => String(r.callAfterTimeout)],
    [`guest asked for 1024 MiB, host cap ${CAP_MIB} MiB: got (MiB)`, (r) => f(r.grownMiB, 0)],
    ['/etc/passwd from the guest', (r) => r.hostFile],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  console.log(`${''.padEnd(width)}  ${reports.map((r) => r.runtime.padEnd(32)).join('')}`);
  for (const [name, get] of rows) console.log(`${name.padEnd(width)}  ${reports.map((r) => get(r).padEnd(32)).join('')}`);
  console.log(`@wasmer/sdk: CPU in the 2 s after sandbox.close(): ${f(afterSandboxClose, 2)} cores; after wasmer.close(): ${f(afterClose, 2)} cores`);
  const verdict = (r: Report) => ({
    timeoutStopsGuest: r.cpuAfterTimeout < 0.1,
    memoryCapped: r.grownMiB <= CAP_MIB,
    noHostFiles: r.hostFile === 'not reachable',
  });
  console.log(JSON.stringify(reports.map((r) => ({ ...r, ...verdict(r) }))));
  // A guest thread that outlives its timeout also keeps this process alive.
  process.exit(0);
}

await main();
