/**
 * Sessions over HTTP with a real access token, on SQLite and on PostgreSQL: create, get, append, and a
 * list page when the user has 10,000 sessions. Baselines from the same run: the kernel's /healthz
 * (HTTP alone) and a direct SQL read of the same row (the database alone).
 *
 *   npm run bench -w @aion/ext-sessions          BENCH_N=2000 (requests per operation)
 *
 * The kernel runs in a child process (bench/server.ts); this process is the HTTP client.
 */
import { spawn } from 'node:child_process';
import { Agent, request as httpRequest } from 'node:http';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { AUTH_EXTENSION_DIR, createUser, signInAdmin } from '@aion/ext-auth/testing';
import {
  dropSchema,
  newSchemaName,
  openRawConnection,
  POSTGRES_TEST_URL,
  probePostgres,
  STORAGE_EXTENSION_DIR,
  type RawConnection,
} from '@aion/ext-storage/testing';
import { SESSIONS_EXTENSION_DIR } from '../test/helpers.js';

const N = Number(process.env.BENCH_N ?? 2000);
const LIST_SESSIONS = 10_000;
const TARGETS_MS: Record<string, number> = { 'create session': 5, 'get session': 2, 'append message': 5, 'list page (10k sessions)': 10 };

interface Stats {
  name: string;
  n: number;
  p50: number;
  p99: number;
  mean: number;
}

function stats(name: string, samples: number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  return { name, n: samples.length, p50: at(0.5), p99: at(0.99), mean: samples.reduce((a, b) => a + b, 0) / samples.length };
}

async function time(n: number, fn: (i: number) => Promise<void>): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    await fn(i);
    samples.push(performance.now() - started);
  }
  return samples;
}

interface Kernel {
  url: string;
  dataDir: string;
  request(path: string, init?: RequestInit): Promise<Response>;
}

/** The kernel process's event-loop delay and GC pauses over a phase (ms), from bench/server.ts. */
interface ServerStats {
  loopDelayP99: number;
  loopDelayMax: number;
  gcCount: number;
  gcTotal: number;
  gcMax: number;
}

/** A kernel in a child process; stopping it closes its stdin. */
async function startKernel(options: Record<string, unknown>): Promise<Kernel & { stats(): Promise<ServerStats>; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./server.js', import.meta.url)), JSON.stringify(options)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const { url, dataDir } = JSON.parse((await lines.next()).value as string) as { url: string; dataDir: string };
  return {
    url,
    dataDir,
    request: (path, init) => fetch(url + path, init),
    stats: async () => {
      child.stdin!.write('stats\n');
      return JSON.parse((await lines.next()).value as string) as ServerStats;
    },
    stop: async () => {
      child.stdin!.end();
      if (child.exitCode === null) await once(child, 'exit');
    },
  };
}

/** One operation's figures beside what else happened meanwhile, to tell where its tail comes from. */
interface Phase {
  op: Stats;
  /** The same requests as the kernel timed them (Server-Timing): without the network, the client and the HTTP parsing. */
  kernel: Stats;
  /** `GET /healthz` sent right after each request of the operation: the machine and HTTP under the same conditions. */
  healthz: Stats;
  server: ServerStats;
  /** This (client) process's longest GC pause during the phase, ms. */
  clientGcMax: number;
}

async function phase(kernel: Kernel & { stats(): Promise<ServerStats> }, name: string, n: number, fn: (i: number) => Promise<void>): Promise<Phase> {
  await kernel.stats();
  let clientGcMax = 0;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) clientGcMax = Math.max(clientGcMax, entry.duration);
  });
  observer.observe({ entryTypes: ['gc'] });
  const samples: number[] = [];
  const healthzTimes: number[] = [];
  kernelTimes = [];
  for (let i = 0; i < n; i++) {
    let started = performance.now();
    await fn(i);
    samples.push(performance.now() - started);
    started = performance.now();
    await healthz(kernel);
    healthzTimes.push(performance.now() - started);
  }
  observer.disconnect();
  return { op: stats(name, samples), kernel: stats(name, kernelTimes), healthz: stats('healthz', healthzTimes), server: await kernel.stats(), clientGcMax };
}

/** The kernel's own time of each request (its Server-Timing header), for the phase being measured. */
let kernelTimes: number[] = [];

/**
 * The measured requests go through node:http with one keep-alive socket rather than `fetch`: its web
 * streams allocate enough that this process's own GC pauses (up to ~10 ms here) showed up in the p99.
 */
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function call(url: string, method: string, headers: Record<string, string>, body?: string): Promise<{ status: number; text: string; serverTiming?: string }> {
  return new Promise((resolvePromise, reject) => {
    const req = httpRequest(
      url,
      { method, headers: body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) }, agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolvePromise({
            status: res.statusCode!,
            text: Buffer.concat(chunks).toString('utf8'),
            serverTiming: res.headers['server-timing'] as string | undefined,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function request(kernel: Kernel, method: string, path: string, token: string, body?: unknown, expect = 200): Promise<any> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await call(kernel.url + path, method, headers, body === undefined ? undefined : JSON.stringify(body));
  const kernelTime = /app;dur=([\d.]+)/.exec(res.serverTiming ?? '');
  if (kernelTime) kernelTimes.push(Number(kernelTime[1]));
  if (res.status !== expect) throw new Error(`${method} ${path}: ${res.status} ${res.text}`);
  return res.text ? JSON.parse(res.text) : undefined;
}

const healthz = async (kernel: Kernel) => void (await call(`${kernel.url}/healthz`, 'GET', {}));

async function run(database: 'sqlite' | 'postgres'): Promise<{ results: Stats[]; phases: Phase[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'aion-bench-'));
  const sqlitePath = join(dir, 'aion.db');
  const schema = database === 'postgres' ? newSchemaName() : undefined;
  const storage = database === 'sqlite' ? { sqlite: { path: sqlitePath } } : { databaseUrl: POSTGRES_TEST_URL, postgres: { schema } };
  const kernel = await startKernel({
    extensions: [STORAGE_EXTENSION_DIR, AUTH_EXTENSION_DIR, SESSIONS_EXTENSION_DIR],
    config: { extensions: { 'aion.storage': storage, 'aion.auth': { scryptCost: 1024, rateLimits: { enabled: false } } } },
  });
  let raw: RawConnection | undefined;
  try {
    const admin = await signInAdmin(kernel);
    const user = await createUser(kernel, admin.access_token, 'bench');
    const lister = await createUser(kernel, admin.access_token, 'lister');
    const token = user.access_token;
    const results: Stats[] = [];
    const phases: Phase[] = [];
    const measure = async (name: string, fn: (i: number) => Promise<void>) => {
      const p = await phase(kernel, name, N, fn);
      phases.push(p);
      results.push(p.op);
    };

    // Warm-up: JIT, prepared statements, keep-alive connections.
    for (let i = 0; i < 300; i++) {
      const s = await request(kernel, 'POST', '/v1/sessions', token, {}, 201);
      await request(kernel, 'POST', `/v1/sessions/${s.id}/messages`, token, { role: 'user', content: 'warm' }, 201);
      await request(kernel, 'GET', `/v1/sessions/${s.id}`, token);
      await healthz(kernel);
    }

    const created: string[] = [];
    await measure('create session', async () => void created.push((await request(kernel, 'POST', '/v1/sessions', token, { title: 'bench' }, 201)).id));

    const target = created[0]!;
    for (let i = 0; i < 20; i++)
      await request(kernel, 'POST', `/v1/sessions/${target}/messages`, token, { role: i % 2 ? 'assistant' : 'user', content: `message ${i}` }, 201);
    await measure('get session', () => request(kernel, 'GET', `/v1/sessions/${target}?limit=20`, token));
    await measure('append message', (i) =>
      request(kernel, 'POST', `/v1/sessions/${created[i % created.length]}/messages`, token, { role: 'user', content: `appended ${i}` }, 201),
    );

    // 10,000 sessions for one user, pushed through sync 500 at a time.
    for (let i = 0; i < LIST_SESSIONS; i += 500) {
      const sessions = Array.from({ length: 500 }, (_, j) => ({
        id: `s-${i + j}`,
        title: `session ${i + j}`,
        created_at: Date.now() - (LIST_SESSIONS - i - j) * 1000,
      }));
      await request(kernel, 'POST', '/v1/sessions/sync', lister.access_token, { sessions, limit: 1 });
    }
    const first = await request(kernel, 'GET', '/v1/sessions?limit=50', lister.access_token);
    if (first.sessions.length !== 50) throw new Error('the list page is short');
    const cursors: Array<string | null> = [null];
    let cursor: string | null = first.next_cursor;
    for (let page = 0; page < 100 && cursor; page++) {
      cursors.push(cursor);
      cursor = (await request(kernel, 'GET', `/v1/sessions?limit=50&cursor=${cursor}`, lister.access_token)).next_cursor;
    }
    await measure('list page (10k sessions)', (i) =>
      request(kernel, 'GET', `/v1/sessions?limit=50${cursors[i % cursors.length] ? `&cursor=${cursors[i % cursors.length]}` : ''}`, lister.access_token),
    );

    // Baselines.
    results.push(stats('baseline: GET /healthz', await time(N, () => healthz(kernel))));
    raw = await openRawConnection(database === 'sqlite' ? { sqlitePath } : { postgresUrl: POSTGRES_TEST_URL, schema });
    const sql = 'SELECT * FROM aion_sessions__sessions WHERE id = ?';
    for (let i = 0; i < 200; i++) await raw.query(sql, [target]);
    results.push(stats('baseline: SQL read of the session row', await time(N, async () => void (await raw!.query(sql, [target])))));
    return { results, phases };
  } finally {
    await raw?.close();
    await kernel.stop();
    if (schema) await dropSchema(schema);
    rmSync(dir, { recursive: true, force: true });
  }
}

function print(database: string, { results, phases }: { results: Stats[]; phases: Phase[] }): void {
  const f = (ms: number) => ms.toFixed(2).padStart(8);
  console.log(`\n${database} — ${N} requests per operation (ms); load average ${loadavg()[0]!.toFixed(2)} on this machine`);
  console.log(`${'operation'.padEnd(40)}${'p50'.padStart(8)}${'p99'.padStart(8)}${'mean'.padStart(8)}  target p99`);
  for (const r of results) {
    const target = TARGETS_MS[r.name];
    const verdict = target === undefined ? '' : `  ≤ ${target} ${database === 'SQLite' ? (r.p99 <= target ? 'met' : 'MISSED') : ''}`;
    console.log(`${r.name.padEnd(40)}${f(r.p50)}${f(r.p99)}${f(r.mean)}${verdict}`);
  }
  const get = results.find((r) => r.name === 'get session')!;
  const http = results.find((r) => r.name.startsWith('baseline: GET'))!;
  const sql = results.find((r) => r.name.startsWith('baseline: SQL'))!;
  console.log('\nwhere the tail comes from: each request beside a /healthz sent right after it, and the kernel process meanwhile (ms)');
  console.log(
    `${'operation'.padEnd(28)}${'p99'.padStart(8)}${'in kernel p50/p99'.padStart(19)}${'healthz p99'.padStart(13)}${'loop delay p99/max'.padStart(20)}${'GC n / total / max'.padStart(22)}${'client GC max'.padStart(15)}`,
  );
  for (const p of phases) {
    const s = p.server;
    console.log(
      `${p.op.name.padEnd(28)}${f(p.op.p99)}${`${p.kernel.p50.toFixed(2)} / ${p.kernel.p99.toFixed(2)}`.padStart(19)}${f(p.healthz.p99).padStart(13)}${`${s.loopDelayP99.toFixed(1)} / ${s.loopDelayMax.toFixed(1)}`.padStart(20)}${`${s.gcCount} / ${s.gcTotal.toFixed(0)} / ${s.gcMax.toFixed(1)}`.padStart(22)}${p.clientGcMax.toFixed(1).padStart(15)}`,
    );
  }
  console.log(
    `get session p50 is ${(get.p50 / http.p50).toFixed(1)}× the bare HTTP round trip and ${(get.p50 / sql.p50).toFixed(0)}× a direct SQL read of the row`,
  );
}

const sqlite = await run('sqlite');
print('SQLite', sqlite);
const problem = await probePostgres();
if (problem) console.log(`\nPostgreSQL: skipped — ${POSTGRES_TEST_URL} is unreachable (${problem})`);
else print('PostgreSQL', await run('postgres'));
