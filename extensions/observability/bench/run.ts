/**
 * What metrics and tracing cost on the hot path: `/v1/chat/completions` through Aion against the fake
 * upstream of the router benchmark, with observability off, metrics on, and metrics plus tracing at
 * 100% and 1% of requests (exported over OTLP/HTTP to a sink in this process). All four kernels run
 * at once and take turns, so the machine's noise falls on each alike; figures are closed-loop
 * throughput and latency, and each mode's throughput relative to `off` measured in the same run.
 *
 *   node dist/bench/run.js [--seconds 3] [--rounds 3] [--concurrency 32] [--json out.json]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '');
const SECONDS = Number(args.get('seconds') ?? 3);
const ROUNDS = Number(args.get('rounds') ?? 3);
const CONCURRENCY = Number(args.get('concurrency') ?? 32);
const MODES = ['off', 'metrics', 'trace-1', 'trace-100'] as const;

const require = createRequire(import.meta.url);
const upstreamScript = join(dirname(require.resolve('@aion/ext-router/package.json')), 'dist', 'bench', 'upstream.js');
const kernelScript = fileURLToPath(new URL('./kernel.js', import.meta.url));
const agent = new Agent({ keepAlive: true, maxSockets: 256 });
const payload = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say something about foxes.' }], max_tokens: 32 });

function start(script: string, argv: string[]): Promise<{ child: ChildProcess; url: string }> {
  const child = fork(script, argv, {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    env: { ...process.env, LOG_LEVEL: 'silent', AION_TEST_LOG_LEVEL: 'silent' },
  });
  return new Promise((resolve, reject) => {
    child.once('message', (m: { url: string }) => resolve({ child, url: m.url }));
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
  });
}

function send(url: URL): Promise<{ ms: number; ok: boolean }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        headers: { authorization: 'Bearer bench-token', 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ ms: performance.now() - started, ok: res.statusCode === 200 }));
      },
    );
    req.on('error', () => resolve({ ms: performance.now() - started, ok: false }));
    req.end(payload);
  });
}

async function closedLoop(base: string, seconds: number): Promise<{ ok: number; failed: number; latencies: number[] }> {
  const url = new URL('/v1/chat/completions', base);
  const deadline = performance.now() + seconds * 1000;
  const latencies: number[] = [];
  let failed = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < deadline) {
        const r = await send(url);
        if (r.ok) latencies.push(r.ms);
        else failed++;
      }
    }),
  );
  return { ok: latencies.length, failed, latencies };
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

let spansReceived = 0;
const sink = createServer((req, res) => {
  let bytes = 0;
  req.on('data', (c: Buffer) => (bytes += c.length));
  req.on('end', () => {
    spansReceived += bytes > 0 ? 1 : 0;
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});
await new Promise<void>((r) => sink.listen(0, '127.0.0.1', () => r()));
const sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/v1/traces`;

const upstream = await start(upstreamScript, []);
const kernels = new Map<string, { child: ChildProcess; url: string }>();
try {
  for (const mode of MODES) kernels.set(mode, await start(kernelScript, [upstream.url, mode, sinkUrl]));
  for (const mode of MODES) await closedLoop(kernels.get(mode)!.url, 1);
  const results = new Map<string, { ok: number; failed: number; latencies: number[]; seconds: number }>(
    MODES.map((m) => [m, { ok: 0, failed: 0, latencies: [], seconds: 0 }]),
  );
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of round % 2 === 0 ? MODES : [...MODES].reverse()) {
      const r = await closedLoop(kernels.get(mode)!.url, SECONDS);
      const acc = results.get(mode)!;
      acc.ok += r.ok;
      acc.failed += r.failed;
      acc.latencies.push(...r.latencies);
      acc.seconds += SECONDS;
    }
  }
  const baseline = results.get('off')!.ok / results.get('off')!.seconds;
  const rows = MODES.map((mode) => {
    const r = results.get(mode)!;
    const sorted = r.latencies.sort((a, b) => a - b);
    const rps = r.ok / r.seconds;
    return {
      mode,
      rps: Math.round(rps),
      p50_ms: Number(pct(sorted, 50).toFixed(2)),
      p99_ms: Number(pct(sorted, 99).toFixed(2)),
      failed: r.failed,
      vs_off: Number((rps / baseline).toFixed(3)),
    };
  });
  process.stdout.write(
    `\n/v1/chat/completions, closed loop, ${CONCURRENCY} connections, ${ROUNDS} rounds of ${SECONDS} s per mode, interleaved (baseline: off, same run)\n\n`,
  );
  process.stdout.write(
    `${'mode'.padEnd(11)}${'req/s'.padStart(8)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}${'failed'.padStart(8)}${'vs off'.padStart(9)}\n`,
  );
  for (const r of rows)
    process.stdout.write(
      `${r.mode.padEnd(11)}${String(r.rps).padStart(8)}${String(r.p50_ms).padStart(9)}${String(r.p99_ms).padStart(9)}${String(r.failed).padStart(8)}${r.vs_off.toFixed(3).padStart(9)}\n`,
    );
  process.stdout.write(`\nOTLP export requests received by the sink: ${spansReceived}. Targets: metrics ≥ 0.97 of off, tracing at 100% ≥ 0.90.\n`);
  if (args.get('json')) writeFileSync(args.get('json')!, JSON.stringify({ concurrency: CONCURRENCY, seconds: SECONDS, rounds: ROUNDS, rows }, null, 2));
} finally {
  for (const k of kernels.values()) k.child.disconnect();
  upstream.child.disconnect();
  sink.close();
  agent.destroy();
}
