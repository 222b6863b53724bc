/**
 * For tests of extensions that use aion.storage: run a suite once on SQLite and once on PostgreSQL.
 *
 *   forEachDatabase('sessions', (db) => {
 *     before(async () => (kernel = await startTestKernel({ extensions, config: { extensions: { 'aion.storage': db.storageConfig() } } })));
 *     after(async () => kernel?.stop());
 *   });
 *
 * PostgreSQL is `AION_TEST_DATABASE_URL` or postgres://postgres@127.0.0.1:5432/test; each suite gets a
 * fresh base schema, dropped afterwards with the schema and role storage created for each extension.
 * When the server is unreachable the suite is skipped with a notice, unless CI=true, where it fails.
 */
import { randomBytes } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Sqlite from 'better-sqlite3';
import pg from 'pg';

/** The folder of this extension, for `startTestKernel({ extensions: [STORAGE_EXTENSION_DIR, …] })`. */
export const STORAGE_EXTENSION_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const POSTGRES_TEST_URL = process.env.AION_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export type DatabaseName = 'sqlite' | 'postgres';

export interface DatabaseTarget {
  readonly name: DatabaseName;
  /** The `aion.storage` configuration section for this suite (valid once the suite's first hook ran). */
  storageConfig(extra?: Record<string, unknown>): Record<string, unknown>;
  /** PostgreSQL: the schema of this suite. */
  readonly schema?: string;
  /**
   * PostgreSQL: a client (as the server's administrator) whose search path is this suite's schema and
   * then each extension's own, so raw assertions name tables as the extensions do.
   */
  connect(): Promise<pg.Client>;
}

/** Whether a TCP server answers, as a readable reason when it does not. */
export async function probePostgres(url = POSTGRES_TEST_URL): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (err) {
    const e = err as { message?: string; code?: string; errors?: Array<{ message: string }> };
    return e.message || e.errors?.map((x) => x.message).join('; ') || e.code || String(err);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A suite that needs an external server: skipped with a notice when it is missing, failed when CI=true. */
export function requireServer(context: Mocha.Context, what: string, problem: string | undefined): void {
  if (!problem) return;
  if (process.env.CI === 'true') throw new Error(`${what} is required when CI=true but is unreachable: ${problem}`);
  console.log(`      notice: skipping — ${what} is unreachable (${problem}); set CI=true to make this a failure`);
  context.skip();
}

export function forEachDatabase(title: string, suite: (db: DatabaseTarget) => void, options: { only?: DatabaseName[] } = {}): void {
  for (const name of options.only ?? (['sqlite', 'postgres'] as const)) {
    describe(`${title} [${name}]`, () => {
      let schema: string | undefined;
      const target: DatabaseTarget = {
        name,
        get schema() {
          return schema;
        },
        storageConfig: (extra = {}) => {
          if (name === 'sqlite') return { ...extra };
          if (!schema) throw new Error("the PostgreSQL schema is created in the suite's first before() hook");
          const postgres = { ...((extra.postgres as Record<string, unknown>) ?? {}), schema };
          return { databaseUrl: POSTGRES_TEST_URL, ...extra, postgres };
        },
        connect: () => connectToSchemas(POSTGRES_TEST_URL, schema),
      };
      if (name === 'postgres') {
        before(async function () {
          this.timeout(10_000);
          requireServer(this, `PostgreSQL at ${POSTGRES_TEST_URL}`, await probePostgres());
          schema = newSchemaName();
        });
      }
      suite(target);
      // Registered after the suite's own hooks, so its kernels stop before the schema goes.
      if (name === 'postgres') {
        after(async () => {
          if (schema) await dropSchema(schema);
        });
      }
    });
  }
}

/** A connection past the storage extension, for assertions and benchmark baselines. */
export interface RawConnection {
  /** Prepared once per SQL text; `?` parameters on both databases. */
  query(sql: string, params?: unknown[]): Promise<unknown[]>;
  close(): Promise<void>;
}

export async function openRawConnection(target: { sqlitePath: string } | { postgresUrl?: string; schema?: string }): Promise<RawConnection> {
  if ('sqlitePath' in target) {
    const db = new Sqlite(target.sqlitePath, { readonly: true });
    const statements = new Map<string, Sqlite.Statement>();
    return {
      query: async (sql, params = []) => {
        let statement = statements.get(sql);
        if (!statement) statements.set(sql, (statement = db.prepare(sql)));
        return statement.all(...params);
      },
      close: async () => void db.close(),
    };
  }
  const client = await connectToSchemas(target.postgresUrl ?? POSTGRES_TEST_URL, target.schema);
  const names = new Map<string, string>();
  return {
    query: async (sql, params = []) => {
      let n = 0;
      const text = sql.replace(/\?/g, () => `$${++n}`);
      let name = names.get(sql);
      if (!name) names.set(sql, (name = `raw_${names.size + 1}`));
      return (await client.query({ name, text, values: params })).rows;
    },
    close: () => client.end(),
  };
}

/** A fresh schema name for a PostgreSQL run; `dropSchema` removes it and everything in it. */
export function newSchemaName(): string {
  return `aion_test_${randomBytes(6).toString('hex')}`;
}

/** The schema and role storage created for each namespace of the installation whose base schema is `schema`. */
async function namespaceObjects(client: pg.Client, schema: string): Promise<Array<{ schema: string; role: string }>> {
  try {
    const { rows } = await client.query(
      `SELECT db_schema, db_role FROM ${pg.escapeIdentifier(schema)}.aion_storage__namespaces WHERE db_schema IS NOT NULL ORDER BY db_schema`,
    );
    return rows.map((r: { db_schema: string; db_role: string }) => ({ schema: r.db_schema, role: r.db_role }));
  } catch (err) {
    // No such schema, table or column yet: storage never ran there, or ran without roles.
    if (['3F000', '42P01', '42703'].includes((err as { code?: string }).code ?? '')) return [];
    throw err;
  }
}

async function connectToSchemas(url: string, schema: string | undefined): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  if (schema) {
    const path = [schema, ...(await namespaceObjects(client, schema)).map((o) => o.schema)];
    await client.query(`SET search_path TO ${path.map((s) => pg.escapeIdentifier(s)).join(', ')}`);
  }
  return client;
}

/** Drops the schema and everything in it, and the schema and role of each extension storage served from it. */
export async function dropSchema(schema: string, url = POSTGRES_TEST_URL): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const objects = await namespaceObjects(client, schema);
    for (const o of objects) await client.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(o.schema)} CASCADE`);
    await client.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`);
    for (const o of objects) await client.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(o.role)}`);
  } finally {
    await client.end();
  }
}
