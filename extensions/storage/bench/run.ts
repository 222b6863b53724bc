/**
 * What namespace confinement costs, measured in one run on three paths: SQLite (the guard), PostgreSQL
 * with the guard alone (the previous path: every extension on the kernel's pool, in one schema) and
 * PostgreSQL with a role per namespace (the extension's own pool, logged in as its role, in its own
 * schema). An extension in the kernel host times each aion.storage call, so no IPC is in the figures.
 * Rounds alternate the paths, each with a fresh kernel on the same database, so the machine's noise
 * falls on all of them alike and every round after the first measures a restart.
 *
 *   npm run bench -w @aion/ext-storage          BENCH_N=6000 (calls per operation and path), BENCH_ROUNDS=3
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestKernel } from '@aion/core';
import { dropSchema, newSchemaName, openRawConnection, POSTGRES_TEST_URL, probePostgres, STORAGE_EXTENSION_DIR } from '../src/testing.js';

const N = Number(process.env.BENCH_N ?? 6000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WARM_UP = 300;
const FIXTURE = fileURLToPath(new URL('../../bench/fixture', import.meta.url));
const OPERATIONS = { read: 'read one row by key', write: 'UPDATE one row', transaction: 'transaction: upsert + read' } as const;
type Operation = keyof typeof OPERATIONS;

interface Path {
  title: string;
  storage: Record<string, unknown>;
  raw: Parameters<typeof openRawConnection>[0];
  schema?: string;
  samples: Record<Operation | 'baseline', number[]>;
  namespaceMs: number[];
}

function quantile(samples: number[], q: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

async function time(n: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    await fn(i);
    samples.push(performance.now() - started);
  }
  return samples;
}

const dir = mkdtempSync(join(tmpdir(), 'aion-storage-bench-'));
const newPath = (title: string, storage: Record<string, unknown>, raw: Path['raw'], schema?: string): Path => ({
  title,
  storage,
  raw,
  schema,
  samples: { read: [], write: [], transaction: [], baseline: [] },
  namespaceMs: [],
});
const sqlitePath = join(dir, 'aion.db');
const paths: Path[] = [newPath('SQLite, guard', { sqlite: { path: sqlitePath } }, { sqlitePath })];
const problem = await probePostgres();
if (problem) console.log(`PostgreSQL: skipped — ${POSTGRES_TEST_URL} is unreachable (${problem})`);
else {
  for (const confinement of ['guard', 'role'] as const) {
    const schema = newSchemaName();
    const title = confinement === 'guard' ? 'PostgreSQL, guard' : 'PostgreSQL, role';
    paths.push(newPath(title, { databaseUrl: POSTGRES_TEST_URL, postgres: { schema, confinement } }, { postgresUrl: POSTGRES_TEST_URL, schema }, schema));
  }
}

try {
  const perRound = Math.ceil(N / ROUNDS);
  for (let round = 0; round < ROUNDS; round++) {
    for (const path of paths) {
      const kernel = await startTestKernel({ extensions: [STORAGE_EXTENSION_DIR, FIXTURE], config: { extensions: { 'aion.storage': path.storage } } });
      try {
        const setup = await kernel.executeCommand<{ namespaceMs: number }>('storageBench.setup');
        path.namespaceMs.push(setup.namespaceMs);
        for (const operation of Object.keys(OPERATIONS) as Operation[]) {
          path.samples[operation].push(...(await kernel.executeCommand<number[]>('storageBench.run', operation, perRound, WARM_UP)));
        }
        const raw = await openRawConnection(path.raw);
        try {
          const sql = 'SELECT id, body, n FROM bench_storage_bench__items WHERE id = ?';
          for (let i = 0; i < WARM_UP; i++) await raw.query(sql, [`item-${i % 100}`]);
          path.samples.baseline.push(...(await time(perRound, (i) => raw.query(sql, [`item-${i % 100}`]))));
        } finally {
          await raw.close();
        }
      } finally {
        await kernel.stop();
      }
    }
  }
} finally {
  for (const path of paths) if (path.schema) await dropSchema(path.schema);
  rmSync(dir, { recursive: true, force: true });
}

const f = (ms: number) => ms.toFixed(3);
const cells = (samples: number[]) => `${f(quantile(samples, 0.5))} | ${f(quantile(samples, 0.99))}`;
console.log(
  `\naion.storage calls from an extension in the kernel host: ${N} per operation and path, ${ROUNDS} rounds, ms; load average ${loadavg()[0]!.toFixed(2)}\n`,
);
console.log(`| operation | ${paths.map((p) => `${p.title} p50 | p99`).join(' | ')} |`);
console.log(`|---|${paths.map(() => '---|---').join('|')}|`);
for (const [key, title] of Object.entries(OPERATIONS) as Array<[Operation, string]>)
  console.log(`| ${title} | ${paths.map((p) => cells(p.samples[key])).join(' | ')} |`);
console.log(`| baseline: the same read on a direct connection | ${paths.map((p) => cells(p.samples.baseline)).join(' | ')} |`);
console.log(`| first namespace() on a new database | ${paths.map((p) => `${f(p.namespaceMs[0]!)} |`).join(' | ')} |`);
console.log(`| first namespace() after a restart (median) | ${paths.map((p) => `${f(quantile(p.namespaceMs.slice(1), 0.5))} |`).join(' | ')} |`);
const guard = paths.find((p) => p.title === 'PostgreSQL, guard');
const role = paths.find((p) => p.title === 'PostgreSQL, role');
if (guard && role) {
  console.log('');
  for (const [key, title] of Object.entries(OPERATIONS) as Array<[Operation, string]>) {
    const [r, g] = [quantile(role.samples[key], 0.5), quantile(guard.samples[key], 0.5)];
    console.log(`role vs guard, ${title}: ${((r - g) * 1000).toFixed(0)} µs at p50 (${((r / g) * 100).toFixed(0)} %)`);
  }
}
