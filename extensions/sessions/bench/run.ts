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
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { AUTH_EXTENSION_DIR, createUser, signInAdmin } from '@aion/ext-auth/testing';
import { dropSchema, newSchemaName, openRawConnection, POSTGRES_TEST_URL, probePostgres, STORAGE_EXTENSION_DIR, type RawConnection } from '@aion/ext-storage/testing';
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

/** A kernel in a child process; stopping it closes its stdin. */
async function startKernel(options: Record<string, unknown>): Promise<Kernel & { stop(): Promise<void> }> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./server.js', import.meta.url)), JSON.stringify(options)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
  const { url, dataDir } = JSON.parse(line) as { url: string; dataDir: string };
  return {
    url,
    dataDir,
    request: (path, init) => fetch(url + path, init),
    stop: async () => {
      child.stdin!.end();
      if (child.exitCode === null) await once(child, 'exit');
    },
  };
}

async function request(kernel: Kernel, method: string, path: string, token: string, body?: unknown, expect = 200): Promise<any> {
  const res = await kernel.request(path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status !== expect) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

async function run(database: 'sqlite' | 'postgres'): Promise<Stats[]> {
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

    // Warm-up: JIT, prepared statements, keep-alive connections.
    for (let i = 0; i < 300; i++) {
      const s = await request(kernel, 'POST', '/v1/sessions', token, {}, 201);
      await request(kernel, 'POST', `/v1/sessions/${s.id}/messages`, token, { role: 'user', content: 'warm' }, 201);
      await request(kernel, 'GET', `/v1/sessions/${s.id}`, token);
      await (await kernel.request('/healthz')).text();
    }

    const created: string[] = [];
    results.push(stats('create session', await time(N, async () => void created.push((await request(kernel, 'POST', '/v1/sessions', token, { title: 'bench' }, 201)).id))));

    const target = created[0]!;
    for (let i = 0; i < 20; i++) await request(kernel, 'POST', `/v1/sessions/${target}/messages`, token, { role: i % 2 ? 'assistant' : 'user', content: `message ${i}` }, 201);
    results.push(stats('get session', await time(N, () => request(kernel, 'GET', `/v1/sessions/${target}?limit=20`, token))));
    results.push(
      stats(
        'append message',
        await time(N, (i) => request(kernel, 'POST', `/v1/sessions/${created[i % created.length]}/messages`, token, { role: 'user', content: `appended ${i}` }, 201)),
      ),
    );

    // 10,000 sessions for one user, pushed through sync 500 at a time.
    for (let i = 0; i < LIST_SESSIONS; i += 500) {
      const sessions = Array.from({ length: 500 }, (_, j) => ({ id: `s-${i + j}`, title: `session ${i + j}`, created_at: Date.now() - (LIST_SESSIONS - i - j) * 1000 }));
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
    results.push(stats('list page (10k sessions)', await time(N, (i) => request(kernel, 'GET', `/v1/sessions?limit=50${cursors[i % cursors.length] ? `&cursor=${cursors[i % cursors.length]}` : ''}`, lister.access_token))));

    // Baselines.
    results.push(stats('baseline: GET /healthz', await time(N, async () => void (await (await kernel.request('/healthz')).text()))));
    raw = await openRawConnection(database === 'sqlite' ? { sqlitePath } : { postgresUrl: POSTGRES_TEST_URL, schema });
    const sql = 'SELECT * FROM aion_sessions__sessions WHERE id = ?';
    for (let i = 0; i < 200; i++) await raw.query(sql, [target]);
    results.push(stats('baseline: SQL read of the session row', await time(N, async () => void (await raw!.query(sql, [target])))));
    return results;
  } finally {
    await raw?.close();
    await kernel.stop();
    if (schema) await dropSchema(schema);
    rmSync(dir, { recursive: true, force: true });
  }
}

function print(database: string, results: Stats[]): void {
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
  console.log(`get session p50 is ${(get.p50 / http.p50).toFixed(1)}× the bare HTTP round trip and ${(get.p50 / sql.p50).toFixed(0)}× a direct SQL read of the row`);
}

const sqlite = await run('sqlite');
print('SQLite', sqlite);
const problem = await probePostgres();
if (problem) console.log(`\nPostgreSQL: skipped — ${POSTGRES_TEST_URL} is unreachable (${problem})`);
else print('PostgreSQL', await run('postgres'));
