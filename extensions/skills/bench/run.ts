/**
 * Skills benchmark, one run: a warm WASM skill called in-process through the gatekeeper and over
 * HTTP, the first call after installing a pack, and a `process` skill for comparison, each beside a
 * baseline measured in the same run (the sandbox engine called directly; the kernel's /healthz).
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startTestKernel } from '@aion/core';
import { WasmEngine } from '@aion/sandbox';
import { resolveConfig } from '../src/config.js';
import { generateSigningKey, signPack } from '../src/packs/signing.js';
import { SkillsService } from '../src/service.js';
import { LOCAL_PRINCIPAL } from '../src/types.js';

const skillsRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const sampleRoot = resolve(skillsRoot, '../../samples/skill-pack-text');
const N = Number(process.env.BENCH_CALLS ?? 3000);
const ARGS = { text: 'Crème Brûlée — the best dessert of the benchmark', maxLength: 40 };
const pointSchema = JSON.parse(await readFile(join(skillsRoot, 'package.json'), 'utf8')).contributes.contributionPoints.skills.schema;
const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

interface Stats {
  p50: number;
  p99: number;
  perSecond: number;
  n: number;
}

function stats(samples: number[], wallMs: number): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { p50: at(0.5), p99: at(0.99), perSecond: (samples.length / wallMs) * 1000, n: samples.length };
}

async function measure(n: number, fn: () => Promise<unknown>, warmup = Math.min(500, Math.ceil(n / 5))): Promise<Stats> {
  for (let i = 0; i < warmup; i++) await fn();
  const samples: number[] = [];
  const started = performance.now();
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    samples.push(performance.now() - t);
  }
  return stats(samples, performance.now() - started);
}

async function throughput(n: number, concurrency: number, fn: () => Promise<unknown>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < n) await fn();
    }),
  );
  return (n / (performance.now() - started)) * 1000;
}

const ms = (v: number) => (v < 1 ? `${(v * 1000).toFixed(0)} µs` : `${v.toFixed(2)} ms`);

/** The sample text pack plus two process skills, signed with a fresh key, in a temporary folder. */
async function benchPack(
  dir: string,
  name: string,
  key = generateSigningKey(),
): Promise<{ dir: string; publicKey: string; key: ReturnType<typeof generateSigningKey> }> {
  const { buildSkills } = (await import(pathToFileURL(join(sampleRoot, 'build.mjs')).href)) as { buildSkills(o: { onlyStale: boolean }): Promise<string[]> };
  await buildSkills({ onlyStale: true });
  for (const part of ['pack.json', 'README.md', 'schemas', 'dist/skills'])
    await cp(join(sampleRoot, part), join(dir, part), { recursive: true, filter: (s) => !s.endsWith('.stamp') });
  await cp(join(skillsRoot, 'test/fixtures/process/echo-skill.mjs'), join(dir, 'bin/echo-skill.mjs'));
  const manifest = JSON.parse(await readFile(join(dir, 'pack.json'), 'utf8'));
  manifest.name = name;
  for (const s of manifest.skills) s.id = s.id.replace(/^text\./, `${name}.`);
  const native = {
    title: 'Native echo',
    description: 'A process skill, for comparison.',
    runtime: 'process',
    entry: 'bin/echo-skill.mjs',
    inputSchema: { type: 'object' },
  };
  manifest.skills.push({ ...native, id: `${name}.native` }, { ...native, id: `${name}.native-warm`, keepAlive: true });
  await writeFile(join(dir, 'pack.json'), JSON.stringify(manifest, null, 2));
  await signPack(dir, key.privateKeyPem);
  return { dir, publicKey: key.publicKeyLine, key };
}

async function service(dataDir: string, publicKey: string, extra: Record<string, unknown> = {}): Promise<SkillsService> {
  const storagePath = join(dataDir, 'storage', 'aion.skills');
  return SkillsService.start({
    logger: quiet,
    config: resolveConfig({ trustedKeys: [publicKey], watch: false, rateLimit: { capacity: 1e9, refillPerSecond: 1e9 }, ...extra }, storagePath),
    pointSchema,
    version: 'bench',
    secret: async () => undefined,
    storagePath,
  });
}

const work = await mkdtemp(join(tmpdir(), 'aion-skills-bench-'));
const results: Record<string, unknown> = {};
try {
  const pack = await benchPack(join(work, 'src'), 'bench');
  const wasmFile = join(pack.dir, 'dist/skills/slugify.wasm');

  // Baseline: the sandbox engine alone, module compiled once, a fresh instance per call.
  const engine = new WasmEngine();
  await engine.ready();
  const { hash } = await engine.compile(new Uint8Array(await readFile(wasmFile)));
  const limits = { timeoutMs: 2000, memoryPages: 256, maxOutputBytes: 1 << 20 };
  const direct = await measure(N, () => engine.run({ hash, input: ARGS, limits }));
  await engine.close();

  // In-process: the gatekeeper (rate limit, scopes, ajv on both sides, usage) around the same engine.
  const hub = await service(join(work, 'inproc'), pack.publicKey);
  await hub.wasm.wasm.ready();
  await hub.installPack(pack.dir);
  const call = { principal: LOCAL_PRINCIPAL, via: 'api' as const };
  const inProcess = await measure(N, () => hub.execute('bench.slugify', ARGS, call));
  const inProcessThroughput = await throughput(N, 8, () => hub.execute('bench.slugify', ARGS, call));
  const native = await measure(20, () => hub.execute('bench.native', { text: 'x' }, call), 2);
  const nativeWarm = await measure(500, () => hub.execute('bench.native-warm', { text: 'x' }, call), 20);
  await hub.dispose();

  // First call after install: a fresh hub (threads started) installs the pack, then calls a skill at once.
  const firsts: number[] = [];
  const installs: number[] = [];
  for (let i = 0; i < 5; i++) {
    const fresh = await service(join(work, `first-${i}`), pack.publicKey);
    await fresh.wasm.wasm.ready();
    const t0 = performance.now();
    await fresh.installPack(pack.dir);
    const t1 = performance.now();
    await fresh.execute('bench.slugify', ARGS, call);
    firsts.push(performance.now() - t1);
    installs.push(t1 - t0);
    await fresh.dispose();
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

  // Over HTTP: a real kernel, the skills extension in a shared host, fixed-token auth in the kernel host.
  const packsDir = join(work, 'http-packs');
  const installer = await service(join(work, 'http-setup'), pack.publicKey, { packsDir });
  await installer.installPack(pack.dir);
  await installer.dispose();
  const kernel = await startTestKernel({
    extensions: [skillsRoot, join(skillsRoot, 'test/fixtures/test-auth')],
    config: { extensions: { 'aion.skills': { trustedKeys: [pack.publicKey], packsDir, rateLimit: { capacity: 1e9, refillPerSecond: 1e9 } } } },
  });
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  const { port } = new URL(kernel.url);
  const body = JSON.stringify({ args: ARGS });
  const http = (method: string, path: string, payload?: string) =>
    new Promise<number>((resolvePromise, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          method,
          path,
          agent,
          headers: { authorization: 'Bearer runner', 'content-type': 'application/json', ...(payload ? { 'content-length': Buffer.byteLength(payload) } : {}) },
        },
        (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolvePromise(200) : reject(new Error(`${path}: ${res.statusCode}`))));
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  const healthz = await measure(N, () => http('GET', '/healthz'));
  const describe = await measure(N, () => http('GET', '/v1/skills/bench.slugify'));
  const overHttp = await measure(N, () => http('POST', '/v1/skills/bench.slugify/execute', body));
  const httpThroughput = await throughput(N, 16, () => http('POST', '/v1/skills/bench.slugify/execute', body));
  // A pack installed by another process (as `aion skills install` does): until the server answers its first call.
  const late = await benchPack(join(work, 'late-src'), 'late', pack.key);
  const lateInstaller = await service(join(work, 'late-setup'), pack.publicKey, { packsDir });
  await lateInstaller.packs.install(late.dir);
  const installedAt = performance.now();
  await lateInstaller.dispose();
  let visibleAfter = -1;
  for (let i = 0; i < 400 && visibleAfter < 0; i++) {
    try {
      await http('POST', '/v1/skills/late.slugify/execute', body);
      visibleAfter = performance.now() - installedAt;
    } catch {
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  agent.destroy();
  await kernel.stop();

  const rows: Array<[string, Stats | null, string, string]> = [
    ['sandbox engine direct (baseline)', direct, '', ''],
    ['in-process gatekeeper, warm WASM', inProcess, `${(inProcess.p50 / direct.p50).toFixed(2)}× baseline p50`, 'p50 ≤ 0.3 ms, p99 ≤ 2 ms'],
    ['kernel GET /healthz (HTTP baseline)', healthz, '', ''],
    ['HTTP GET /v1/skills/{id} (a route in the shared host, no skill run)', describe, `+${ms(describe.p50 - healthz.p50)} over /healthz p50`, ''],
    ['HTTP POST /v1/skills/{id}/execute', overHttp, `+${ms(overHttp.p50 - healthz.p50)} over /healthz p50`, 'p50 ≤ 1 ms'],
    ['process skill, a process per call', native, `${(native.p50 / inProcess.p50).toFixed(0)}× WASM p50`, ''],
    ['process skill, kept alive', nativeWarm, `${(nativeWarm.p50 / inProcess.p50).toFixed(1)}× WASM p50`, ''],
  ];
  console.log(`\nskills benchmark — ${cpus()[0]?.model ?? 'cpu'} × ${availableParallelism()}, node ${process.version}, ${N} calls per measure\n`);
  console.log('| measure | p50 | p99 | calls/s (sequential) | vs baseline | target |');
  console.log('|---|---|---|---|---|---|');
  for (const [name, s, ratio, target] of rows)
    if (s) console.log(`| ${name} | ${ms(s.p50)} | ${ms(s.p99)} | ${Math.round(s.perSecond)} | ${ratio} | ${target} |`);
  console.log(`\nthroughput, calls in flight: in-process ×8 ${Math.round(inProcessThroughput)}/s; HTTP ×16 ${Math.round(httpThroughput)}/s`);
  console.log(`first call after install (in-process, median of 5): ${ms(median(firsts))} (install itself ${ms(median(installs))}) — target ≤ 30 ms`);
  console.log(
    `pack installed by another process → first successful HTTP call: ${visibleAfter < 0 ? 'not seen' : ms(visibleAfter)} (includes the 150 ms watch debounce)`,
  );
  Object.assign(results, {
    direct,
    inProcess,
    inProcessThroughput,
    healthz,
    describe,
    overHttp,
    httpThroughput,
    native,
    nativeWarm,
    firstCallMs: median(firsts),
    installMs: median(installs),
    visibleAfterMs: visibleAfter,
  });
  if (process.env.BENCH_JSON) await writeFile(process.env.BENCH_JSON, JSON.stringify(results, null, 2));
} finally {
  await rm(work, { recursive: true, force: true });
}
process.exit(0);
