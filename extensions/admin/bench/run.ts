/**
 * What the console costs a server: the same anonymous route (`GET /healthz`) on a kernel without the
 * admin extension (baseline) and on one with it (it listens to the kernel's telemetry, which makes the
 * edge record every request), and what serving the console costs: its 55 KB script, and the page
 * revalidated with an ETag (304). Both kernels run in this process and take turns, so the machine's
 * noise falls on each alike; sequential requests over keep-alive.
 *
 *   node dist/bench/run.js [--requests 1000] [--rounds 3]
 */
import { Agent, request } from 'node:http';
import { startTestKernel, type TestKernel } from '@aion/core';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '');
const REQUESTS = Number(args.get('requests') ?? 1000);
const ROUNDS = Number(args.get('rounds') ?? 3);
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function get(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

async function measure(url: string, headers: Record<string, string>, expected: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    const started = performance.now();
    const status = await get(url, headers);
    times.push(performance.now() - started);
    if (status !== expected) throw new Error(`${url} answered ${status}, expected ${expected}`);
  }
  return times;
}

const pct = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

async function main(): Promise<void> {
  const baseline = await startTestKernel({ builtins: ['aion.storage', 'aion.auth'] });
  const withAdmin = await startTestKernel({ builtins: ['aion.storage', 'aion.auth', 'aion.admin'] });
  const kernels: TestKernel[] = [baseline, withAdmin];
  try {
    const page = await fetch(`${withAdmin.url}/admin`);
    if (page.status !== 200) throw new Error(`/admin answered ${page.status}: run "npm run build" first`);
    const etag = page.headers.get('etag')!;
    const cases: Array<{ name: string; url: string; headers: Record<string, string>; status: number }> = [
      { name: 'GET /healthz, no admin extension (baseline)', url: `${baseline.url}/healthz`, headers: {}, status: 200 },
      { name: 'GET /healthz, admin extension loaded', url: `${withAdmin.url}/healthz`, headers: {}, status: 200 },
      { name: 'GET /admin/app.js (55 KB)', url: `${withAdmin.url}/admin/app.js`, headers: {}, status: 200 },
      { name: 'GET /admin revalidated (304)', url: `${withAdmin.url}/admin`, headers: { 'if-none-match': etag }, status: 304 },
    ];
    const samples = new Map<string, number[]>(cases.map((c) => [c.name, []]));
    for (const c of cases) await measure(c.url, c.headers, c.status); // warm-up
    for (let round = 0; round < ROUNDS; round++) for (const c of cases) samples.get(c.name)!.push(...(await measure(c.url, c.headers, c.status)));
    const base = samples.get(cases[0]!.name)!.sort((a, b) => a - b);
    console.log(`${REQUESTS} sequential requests × ${ROUNDS} rounds each, keep-alive, both kernels in this process\n`);
    console.log(`${'case'.padEnd(48)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'req/s'.padStart(8)} ${'p50 vs baseline'.padStart(16)}`);
    for (const c of cases) {
      const s = samples.get(c.name)!.sort((a, b) => a - b);
      const mean = s.reduce((a, b) => a + b, 0) / s.length;
      console.log(
        `${c.name.padEnd(48)} ${pct(s, 0.5).toFixed(3).padStart(8)} ${pct(s, 0.99).toFixed(3).padStart(8)} ${Math.round(1000 / mean)
          .toString()
          .padStart(8)} ${(pct(s, 0.5) / pct(base, 0.5)).toFixed(2).padStart(15)}×`,
      );
    }
  } finally {
    agent.destroy();
    await Promise.all(kernels.map((k) => k.stop()));
  }
}

await main();
