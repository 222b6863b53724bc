/**
 * Router benchmark: a fake OpenAI-compatible upstream (own process), a kernel with the router and
 * the OpenAI-compatible provider (own process, plus its extension host), and this process as an
 * open-loop load generator on 127.0.0.1. In the same run, the same requests go to the upstream
 * directly and through Aion's `/v1/chat/completions`, at fixed rates, streaming and not; then a
 * closed loop finds the maximum throughput of each. Figures are what Aion adds to the direct call.
 *
 * The Portkey gateway (installed on demand into a cache, see portkey.ts) runs beside them against the
 * same upstream, interleaved with the other two, unless `--portkey off`.
 *
 *   node dist/bench/run.js [--placements kernel/kernel,kernel/shared] [--seconds 10] [--rates 200,500] [--portkey on|off] [--json out.json]
 *   node dist/bench/run.js --soak-minutes 10 [--soak-rate 500]
 *
 * `--soak-minutes` runs only the soak: non-streaming requests at a fixed rate through Aion (router and
 * provider in the kernel host) for that long, printing each minute's latency, the kernel's RSS and its
 * CPU time per request, to show whether memory stays flat.
 *
 * A placement is `<router host>/<provider host>`; `kernel/kernel` is what the manifests ask for. A provider
 * asked into `shared` runs in a host process of its own (its network is restricted), as an operator's
 * `placement: dedicated` would place it.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { withKernelFlags } from '@aion/core';
import { installPortkey, portkeyHeaders, PORTKEY_VERSION, startPortkey } from './portkey.js';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '');
const SECONDS = Number(args.get('seconds') ?? 10);
const RATES = (args.get('rates') ?? '200,500').split(',').map(Number);
const PLACEMENTS = (args.get('placements') ?? 'kernel/kernel,kernel/shared').split(',').map((p) => p.split('/') as ['kernel' | 'shared', 'kernel' | 'shared']);
const THROUGHPUT_SECONDS = Number(args.get('throughput-seconds') ?? 5);
const CONCURRENCY = Number(args.get('concurrency') ?? 64);
const WITH_PORTKEY = args.get('portkey') !== 'off';
/** Hard bound on any one phase, whatever happens. */
const PHASE_LIMIT_MS = (SECONDS + 30) * 1000;

const body = (stream: boolean, model: string) =>
  JSON.stringify({
    model,
    stream,
    messages: [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Say something about foxes.' },
    ],
    max_tokens: 32,
  });

interface Target {
  label: string;
  url: URL;
  headers: Record<string, string>;
  body: (stream: boolean) => string;
}

interface Sample {
  /** From the scheduled send time to the last byte. */
  total: number;
  /** From the scheduled send time to the first body byte. */
  firstByte: number;
  ok: boolean;
  /** HTTP status, or 0 when the connection failed. */
  status: number;
}

const agent = new Agent({ keepAlive: true, maxSockets: 1024, keepAliveMsecs: 10_000 });

function send(target: Target, stream: boolean, scheduledAt: number): Promise<Sample> {
  return new Promise((resolve) => {
    const payload = target.body(stream);
    const req = request(
      target.url,
      { method: 'POST', agent, headers: { ...target.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } },
      (res) => {
        let firstByte = -1;
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          if (firstByte < 0) firstByte = performance.now() - scheduledAt;
          bytes += chunk.length;
        });
        res.on('end', () =>
          resolve({ total: performance.now() - scheduledAt, firstByte, ok: res.statusCode === 200 && bytes > 0, status: res.statusCode ?? 0 }),
        );
        res.on('error', () => resolve({ total: performance.now() - scheduledAt, firstByte, ok: false, status: res.statusCode ?? 0 }));
      },
    );
    req.on('error', () => resolve({ total: performance.now() - scheduledAt, firstByte: -1, ok: false, status: 0 }));
    req.end(payload);
  });
}

/** Sends `rate` requests a second for `seconds`, on schedule whatever the answers do (open loop). */
async function openLoop(target: Target, stream: boolean, rate: number, seconds: number, limitMs = PHASE_LIMIT_MS): Promise<Sample[]> {
  const count = Math.round(rate * seconds);
  const interval = 1000 / rate;
  const start = performance.now() + 5;
  const pending: Array<Promise<Sample>> = [];
  let sent = 0;
  await new Promise<void>((done) => {
    const tick = () => {
      const now = performance.now();
      while (sent < count && start + sent * interval <= now) pending.push(send(target, stream, start + sent++ * interval));
      if (sent >= count || now - start > limitMs) return done();
      setTimeout(tick, Math.max(0, start + sent * interval - performance.now()));
    };
    tick();
  });
  return Promise.race([Promise.all(pending), new Promise<Sample[]>((r) => setTimeout(() => r([]), limitMs))]);
}

/** Requests completed per second with `concurrency` always in flight (closed loop). */
async function closedLoop(target: Target, stream: boolean, seconds: number, concurrency: number): Promise<{ perSecond: number; errors: number }> {
  const end = performance.now() + seconds * 1000;
  let done = 0;
  let errors = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const s = await send(target, stream, performance.now());
        if (s.ok) done++;
        else errors++;
      }
    }),
  );
  return { perSecond: done / seconds, errors };
}

const pct = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : NaN);

function summarise(samples: Sample[]) {
  const ok = samples.filter((s) => s.ok);
  const total = ok.map((s) => s.total).sort((a, b) => a - b);
  const first = ok.map((s) => s.firstByte).sort((a, b) => a - b);
  const statuses: Record<string, number> = {};
  for (const s of samples) if (!s.ok) statuses[s.status] = (statuses[s.status] ?? 0) + 1;
  return {
    n: samples.length,
    errors: samples.length - ok.length,
    statuses,
    p50: pct(total, 50),
    p99: pct(total, 99),
    firstP50: pct(first, 50),
    firstP99: pct(first, 99),
  };
}

function start(script: string, argv: string[]): Promise<{ child: ChildProcess; url: string }> {
  // AION_BENCH_PROFILE=<dir> writes a CPU profile of the Aion kernel process there, to see where its time goes.
  const profile = script === './kernel.js' && process.env.AION_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.AION_BENCH_PROFILE}`] : [];
  const child = fork(fileURLToPath(new URL(script, import.meta.url)), argv, {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    // The kernel runs with the Node flags `aion serve` gives it.
    execArgv: script === './kernel.js' ? withKernelFlags([...process.execArgv, ...profile]) : process.execArgv,
  });
  return new Promise((resolve, reject) => {
    child.once('message', (m: { url: string }) => resolve({ child, url: m.url }));
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
  });
}

const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(2).padStart(7) : '    n/a');
const sleep = (t: number) => new Promise((r) => setTimeout(r, t));

async function main(): Promise<void> {
  const upstream = await start('./upstream.js', []);
  const portkeyEntry = WITH_PORTKEY ? installPortkey() : undefined;
  const portkey = portkeyEntry ? await startPortkey(portkeyEntry) : undefined;
  const results: Record<string, unknown>[] = [];
  const lines: string[] = [];
  const print = (line: string) => {
    lines.push(line);
    console.log(line);
  };
  if (portkey) console.log(`peer: the Portkey gateway ${PORTKEY_VERSION} at ${portkey.url}`);
  print(
    `router benchmark: ${SECONDS} s per phase at ${RATES.join(' and ')} req/s, open loop; max throughput with ${CONCURRENCY} in flight for ${THROUGHPUT_SECONDS} s`,
  );
  try {
    for (const [routerHost, providerHost] of PLACEMENTS) {
      const host = `${routerHost}/${providerHost}`;
      const aion = await start('./kernel.js', [upstream.url, routerHost, providerHost]);
      try {
        const direct: Target = { label: 'direct', url: new URL(`${upstream.url}/chat/completions`), headers: {}, body: (s) => body(s, 'gpt-4o-mini') };
        const through: Target = {
          label: 'aion',
          url: new URL(`${aion.url}/v1/chat/completions`),
          headers: { authorization: 'Bearer bench-token' },
          body: (s) => body(s, 'openai/gpt-4o-mini'),
        };
        const peer: Target | undefined = portkey && {
          label: 'portkey',
          url: new URL(`${portkey.url}/v1/chat/completions`),
          headers: portkeyHeaders(upstream.url),
          body: (s) => body(s, 'gpt-4o-mini'),
        };
        // Warm every path: connections, JIT, the router's activation and the provider's.
        for (const t of [direct, through, ...(peer ? [peer] : [])]) for (const s of [false, true]) await openLoop(t, s, 100, 2);
        print(`\nrouter in the ${routerHost} host, provider in the ${providerHost} host`);
        print('mode       rate   path     p50 ms  p99 ms  first-byte p50  p99   errors   added p50  added p99  added first-byte p50');
        for (const stream of [false, true]) {
          for (const rate of RATES) {
            const d = summarise(await openLoop(direct, stream, rate, SECONDS));
            await sleep(500);
            const a = summarise(await openLoop(through, stream, rate, SECONDS));
            await sleep(500);
            const p = peer ? summarise(await openLoop(peer, stream, rate, SECONDS)) : undefined;
            if (peer) await sleep(500);
            const mode = stream ? 'stream' : 'json';
            print(
              `${mode.padEnd(8)} ${String(rate).padStart(6)}   direct  ${ms(d.p50)} ${ms(d.p99)}  ${ms(d.firstP50)}  ${ms(d.firstP99)}  ${String(d.errors).padStart(5)}`,
            );
            if (p)
              print(
                `${mode.padEnd(8)} ${String(rate).padStart(6)}   portkey ${ms(p.p50)} ${ms(p.p99)}  ${ms(p.firstP50)}  ${ms(p.firstP99)}  ${String(p.errors).padStart(5)}   ${ms(p.p50 - d.p50)}    ${ms(p.p99 - d.p99)}    ${ms(p.firstP50 - d.firstP50)}${p.errors ? `   failed: ${JSON.stringify(p.statuses)}` : ''}`,
              );
            print(
              `${mode.padEnd(8)} ${String(rate).padStart(6)}   aion    ${ms(a.p50)} ${ms(a.p99)}  ${ms(a.firstP50)}  ${ms(a.firstP99)}  ${String(a.errors).padStart(5)}   ${ms(a.p50 - d.p50)}    ${ms(a.p99 - d.p99)}    ${ms(a.firstP50 - d.firstP50)}${a.errors ? `   failed: ${JSON.stringify(a.statuses)}` : ''}`,
            );
            results.push({
              host,
              stream,
              rate,
              direct: d,
              aion: a,
              portkey: p,
              added: { p50: a.p50 - d.p50, p99: a.p99 - d.p99, firstByteP50: a.firstP50 - d.firstP50, firstByteP99: a.firstP99 - d.firstP99 },
            });
          }
        }
        for (const stream of [false, true]) {
          const d = await closedLoop(direct, stream, THROUGHPUT_SECONDS, CONCURRENCY);
          await sleep(500);
          const a = await closedLoop(through, stream, THROUGHPUT_SECONDS, CONCURRENCY);
          await sleep(500);
          const p = peer ? await closedLoop(peer, stream, THROUGHPUT_SECONDS, CONCURRENCY) : undefined;
          if (peer) await sleep(500);
          const ratio = a.perSecond / d.perSecond;
          const versus = p ? `; portkey ${Math.round(p.perSecond)}/s (errors ${p.errors}): aion = ${(a.perSecond / p.perSecond).toFixed(2)}× portkey` : '';
          print(
            `max throughput (${stream ? 'stream' : 'json'}): direct ${Math.round(d.perSecond)}/s, aion ${Math.round(a.perSecond)}/s = ${(ratio * 100).toFixed(1)}% of direct (errors ${d.errors}/${a.errors})${versus}`,
          );
          results.push({
            host,
            stream,
            throughput: {
              direct: d.perSecond,
              aion: a.perSecond,
              portkey: p?.perSecond,
              ratio,
              versusPortkey: p ? a.perSecond / p.perSecond : undefined,
              errors: { direct: d.errors, aion: a.errors, portkey: p?.errors },
            },
          });
        }
      } finally {
        aion.child.disconnect();
        await new Promise((r) => aion.child.once('exit', r).once('error', r));
      }
    }
  } finally {
    upstream.child.kill();
    portkey?.child.kill();
    agent.destroy();
  }
  const out = args.get('json');
  if (out) writeFileSync(out, JSON.stringify({ seconds: SECONDS, rates: RATES, concurrency: CONCURRENCY, results }, null, 2));
}

/** The kernel process's resident memory (MB) and CPU time (ms, user + system), from /proc. */
function processUsage(pid: number): { rssMb: number; cpuMs: number } {
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  // Fields 14 and 15 of /proc/<pid>/stat, after the parenthesised command name, in clock ticks (100 a second).
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { rssMb: Number(rss) / 1024, cpuMs: (Number(fields[11]) + Number(fields[12])) * 10 };
}

async function soak(minutes: number, rate: number): Promise<void> {
  const upstream = await start('./upstream.js', []);
  const aion = await start('./kernel.js', [upstream.url, 'kernel', 'kernel']);
  const target: Target = {
    label: 'aion',
    url: new URL(`${aion.url}/v1/chat/completions`),
    headers: { authorization: 'Bearer bench-token' },
    body: (s) => body(s, 'openai/gpt-4o-mini'),
  };
  const pid = aion.child.pid!;
  try {
    await openLoop(target, false, 100, 5);
    console.log(`soak: ${rate} req/s of non-streaming requests through Aion (router and provider in the kernel host) for ${minutes} min`);
    console.log('minute  requests  errors   p50 ms   p99 ms   kernel RSS MB   kernel CPU ms/request');
    const rss: number[] = [];
    for (let minute = 1; minute <= minutes; minute++) {
      const before = processUsage(pid);
      const samples = summarise(await openLoop(target, false, rate, 60, 90_000));
      const after = processUsage(pid);
      rss.push(after.rssMb);
      const cpu = (after.cpuMs - before.cpuMs) / Math.max(1, samples.n);
      console.log(
        `${String(minute).padStart(6)}  ${String(samples.n).padStart(8)}  ${String(samples.errors).padStart(6)}  ${ms(samples.p50)}  ${ms(samples.p99)}   ${after.rssMb.toFixed(1).padStart(13)}   ${cpu.toFixed(3).padStart(21)}`,
      );
    }
    const first = rss[0]!;
    const last = rss[rss.length - 1]!;
    // The first minute holds warm-up garbage a later collection returns; the rest shows any growth.
    const settled = rss.slice(1);
    console.log(
      `RSS after the first minute ${first.toFixed(1)} MB, after the last ${last.toFixed(1)} MB; from minute 2 on between ${Math.min(...settled).toFixed(1)} and ${Math.max(...settled).toFixed(1)} MB`,
    );
  } finally {
    aion.child.disconnect();
    await new Promise((r) => aion.child.once('exit', r).once('error', r));
    upstream.child.kill();
    agent.destroy();
  }
}

if (args.has('soak-minutes')) await soak(Number(args.get('soak-minutes')), Number(args.get('soak-rate') ?? 500));
else await main();
