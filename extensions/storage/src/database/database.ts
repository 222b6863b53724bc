import 'reflect-metadata';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import type BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { DataSource, Migration, MigrationExecutor, type MigrationInterface, type QueryRunner } from 'typeorm';
import { AionError, ErrorCodes } from '@aion/extension-api';
import { StorageErrorCodes, type Dialect, type MigrationStep, type SqlValue, type StatementResult } from '../api.js';
import { NamespaceEntry, StateEntry } from './entities.js';
import { StorageInit1763769600000 } from './migrations/1763769600000-StorageInit.js';
import type { CheckedSql, SqlGuard } from './sqlGuard.js';

export interface DatabaseOptions {
  /** A postgres:// URL; SQLite when absent. */
  url?: string;
  sqlitePath: string;
  busyTimeoutMs: number;
  /** SQLite: how often the checkpointer thread moves the WAL into the database file. */
  checkpointIntervalMs: number;
  poolSize: number;
  connectTimeoutMs: number;
  schema?: string;
}

/** `postgres://aion:secret@db:5432/aion` → `postgres://aion:****@db:5432/aion`. */
export function maskUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '****';
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:****@');
  }
}

/** int8 (COUNT(*), BIGINT milliseconds) as numbers: every value an extension stores fits in 2^53. */
const pgTypes = {
  getTypeParser: (oid: number, format?: 'text' | 'binary') => {
    if (oid === 20 && format !== 'binary') return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format as 'text');
  },
};

function describeConnectError(err: unknown): string {
  const e = err as { message?: string; code?: string; errors?: Array<{ message?: string }> };
  const inner = e.errors?.map((x) => x.message).filter(Boolean).join('; ');
  return e.message || inner || e.code || String(err);
}

const CONSTRAINTS: Record<string, string> = {
  '23505': 'unique',
  '23503': 'foreign_key',
  '23502': 'not_null',
  '23514': 'check',
  SQLITE_CONSTRAINT_UNIQUE: 'unique',
  SQLITE_CONSTRAINT_PRIMARYKEY: 'unique',
  SQLITE_CONSTRAINT_FOREIGNKEY: 'foreign_key',
  SQLITE_CONSTRAINT_NOTNULL: 'not_null',
  SQLITE_CONSTRAINT_CHECK: 'check',
};
/** The database cannot serve now (connection lost, server shutting down, SQLite locked past the busy timeout): 503. */
const UNAVAILABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', '57P01', '57P02', '57P03', '08000', '08003', '08006', 'SQLITE_BUSY']);

/** Driver errors become values with a stable code; a constraint violation names its kind in `details.constraint`. */
export function toStorageError(err: unknown, context: string): AionError {
  if (err instanceof AionError) return err;
  const e = err as { message?: string; code?: string; driverError?: { code?: string; message?: string } };
  const code = e.driverError?.code ?? e.code;
  const message = e.driverError?.message ?? e.message ?? String(err);
  if ((code && UNAVAILABLE.has(code)) || /Connection terminated|timeout exceeded when trying to connect/i.test(message)) {
    return new AionError(StorageErrorCodes.DATABASE_UNAVAILABLE, `the database is unavailable: ${message}`, { status: 503, details: { driverCode: code } });
  }
  const constraint = code ? CONSTRAINTS[code] : undefined;
  return new AionError(StorageErrorCodes.SQL_FAILED, `${context}: ${message}`, { status: 500, details: constraint ? { driverCode: code, constraint } : { driverCode: code } });
}

/** typeorm's migration runner over a given list and bookkeeping table (one per namespace). */
class NamespaceMigrationExecutor extends MigrationExecutor {
  private readonly steps: Migration[];

  constructor(dataSource: DataSource, queryRunner: QueryRunner, steps: Migration[], tableName: string) {
    super(dataSource, queryRunner);
    this.steps = steps;
    const { schema } = dataSource.driver.options as { schema?: string };
    const self = this as unknown as { migrationsTableName: string; migrationsTable: string };
    self.migrationsTableName = tableName;
    self.migrationsTable = dataSource.driver.buildTableName(tableName, schema, dataSource.driver.database);
  }

  protected override getMigrations(): Migration[] {
    return this.steps;
  }
}

function bind(params: SqlValue[]): SqlValue[] {
  return params.map((p) => (typeof p === 'boolean' ? (p ? 1 : 0) : p));
}

/**
 * The one database of this kernel, on typeorm: SQLite (better-sqlite3, WAL) or PostgreSQL.
 * Storage's own tables and every namespace's migrations go through typeorm; extension statements
 * run on the driver typeorm opened (its prepared-statement cache, no ORM hydration on hot paths).
 */
export class Database {
  private gate?: Promise<void>;
  private checkpointer?: Worker;
  private readonly sqliteStatements = new Map<string, BetterSqlite3.Statement>();
  private readonly pgStatementNames = new Map<string, string>();

  private constructor(
    readonly dataSource: DataSource,
    readonly dialect: Dialect,
    /** Where the data is, safe to log: the masked URL or the SQLite file. */
    readonly description: string,
  ) {}

  static async open(options: DatabaseOptions): Promise<Database> {
    if (options.url) {
      const masked = maskUrl(options.url);
      const dataSource = new DataSource({
        type: 'postgres',
        url: options.url,
        schema: options.schema,
        poolSize: options.poolSize,
        connectTimeoutMS: options.connectTimeoutMs,
        applicationName: 'aion',
        entities: [NamespaceEntry, StateEntry],
        migrations: [StorageInit1763769600000],
        migrationsTableName: 'aion_storage__migrations',
        synchronize: false,
        logging: false,
        extra: { types: pgTypes, ...(options.schema ? { options: `-c search_path=${options.schema}` } : {}) },
      });
      try {
        if (options.schema) await ensureSchema(options.url, options.schema, options.connectTimeoutMs);
        await dataSource.initialize();
      } catch (err) {
        await dataSource.destroy().catch(() => undefined);
        throw new AionError(StorageErrorCodes.DATABASE_UNAVAILABLE, `could not connect to the database at ${masked}: ${describeConnectError(err)}`, { status: 503 });
      }
      return new Database(dataSource, 'postgres', masked);
    }
    const dataSource = new DataSource({
      type: 'better-sqlite3',
      database: options.sqlitePath,
      enableWAL: true,
      timeout: options.busyTimeoutMs,
      prepareDatabase: (db: BetterSqlite3.Database) => {
        // In WAL mode NORMAL is durable across application crashes and much faster than FULL.
        db.pragma('synchronous = NORMAL');
        // Checkpoints (and their fsync) happen on the checkpointer thread, not on commit.
        db.pragma('wal_autocheckpoint = 0');
      },
      entities: [NamespaceEntry, StateEntry],
      migrations: [StorageInit1763769600000],
      migrationsTableName: 'aion_storage__migrations',
      synchronize: false,
      logging: false,
    });
    try {
      await dataSource.initialize();
    } catch (err) {
      await dataSource.destroy().catch(() => undefined);
      throw new AionError(StorageErrorCodes.DATABASE_UNAVAILABLE, `could not open the SQLite database at ${options.sqlitePath}: ${describeConnectError(err)}`, { status: 503 });
    }
    const database = new Database(dataSource, 'sqlite', options.sqlitePath);
    database.checkpointer = new Worker(new URL('./checkpointer.js', import.meta.url), {
      workerData: { path: options.sqlitePath, intervalMs: options.checkpointIntervalMs, busyTimeoutMs: options.busyTimeoutMs },
    });
    database.checkpointer.unref();
    // Without the thread, the main connection checkpoints on commit again, as SQLite does by default.
    const fallBack = () => {
      if (dataSource.isInitialized && database.checkpointer) database.sqlite.pragma('wal_autocheckpoint = 1000');
    };
    database.checkpointer.once('error', fallBack);
    database.checkpointer.once('exit', fallBack);
    return database;
  }

  private get sqlite(): BetterSqlite3.Database {
    return (this.dataSource.driver as unknown as { databaseConnection: BetterSqlite3.Database }).databaseConnection;
  }

  private get pool(): pg.Pool {
    return (this.dataSource.driver as unknown as { master: pg.Pool }).master;
  }

  /** Storage's own migrations (typeorm classes). */
  async migrateOwnTables(): Promise<string[]> {
    return this.exclusive(async () => {
      const done = await this.withMigrationLock('aion_storage', async (lockedRunner) => {
        if (!lockedRunner) return this.dataSource.runMigrations({ transaction: 'each' });
        const executor = new MigrationExecutor(this.dataSource, lockedRunner);
        executor.transaction = 'each';
        return executor.executePendingMigrations();
      });
      return done.map((m) => m.name);
    });
  }

  /** SQLite has one connection: while typeorm runs a migration on it, nothing else may. */
  private async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.gate) await this.gate;
    let open!: () => void;
    this.gate = new Promise<void>((resolve) => (open = resolve));
    try {
      return await fn();
    } finally {
      this.gate = undefined;
      open();
    }
  }

  async whenOpen(): Promise<void> {
    while (this.gate) await this.gate;
  }

  /** Two kernels starting against one PostgreSQL database apply a namespace's migrations once. */
  private async withMigrationLock<T>(namespace: string, fn: (queryRunner?: QueryRunner) => Promise<T>): Promise<T> {
    if (this.dialect !== 'postgres') return fn();
    const queryRunner = this.dataSource.createQueryRunner('master');
    await queryRunner.connect();
    try {
      await queryRunner.query('SELECT pg_advisory_lock(7301, hashtext($1))', [namespace]);
      try {
        return await fn(queryRunner);
      } finally {
        await queryRunner.query('SELECT pg_advisory_unlock(7301, hashtext($1))', [namespace]).catch(() => undefined);
      }
    } finally {
      await queryRunner.release();
    }
  }

  /** Applies an extension's pending steps as typeorm migrations recorded in `${prefix}typeorm_migrations`. */
  async migrate(namespace: string, prefix: string, steps: MigrationStep[], guard: SqlGuard): Promise<string[]> {
    const pick = (list: MigrationStep['up'] | undefined): string[] => (list === undefined ? [] : Array.isArray(list) ? list : list[this.dialect]);
    const seen = new Set<string>();
    const migrations = steps.map((step, index) => {
      if (typeof step?.name !== 'string' || !/^[A-Za-z0-9_.-]{1,200}$/.test(step.name)) {
        throw new AionError(ErrorCodes.BAD_REQUEST, `migration ${index}: a name of letters, digits, _ . - is required`);
      }
      if (seen.has(step.name)) throw new AionError(ErrorCodes.BAD_REQUEST, `migration ${step.name} is listed twice`);
      seen.add(step.name);
      const up = pick(step.up);
      if (!Array.isArray(up) || up.some((s) => typeof s !== 'string')) throw new AionError(ErrorCodes.BAD_REQUEST, `migration ${step.name}: up must be a list of SQL statements (for ${this.dialect})`);
      const checkedUp = up.map((sql) => guard.check(sql));
      const checkedDown = pick(step.down).map((sql) => guard.check(sql));
      const run = async (queryRunner: QueryRunner, list: CheckedSql[]) => {
        for (const statement of list) await queryRunner.query(statement.text);
      };
      const instance: MigrationInterface = {
        name: step.name,
        up: (queryRunner) => run(queryRunner, checkedUp),
        down: (queryRunner) => run(queryRunner, checkedDown),
      };
      // The position is typeorm's timestamp: steps apply in array order.
      return new Migration(undefined, index + 1, step.name, instance);
    });
    return this.exclusive(() =>
      this.withMigrationLock(namespace, async (lockedRunner) => {
        const queryRunner = lockedRunner ?? this.dataSource.createQueryRunner('master');
        try {
          const executor = new NamespaceMigrationExecutor(this.dataSource, queryRunner, migrations, `${prefix}typeorm_migrations`);
          executor.transaction = 'each';
          const applied = await executor.executePendingMigrations();
          if (applied.length > 0 && this.dialect === 'sqlite') await queryRunner.query('PRAGMA optimize');
          return applied.map((m) => m.name);
        } catch (err) {
          const e = err as { message?: string; driverError?: { message?: string } };
          throw new AionError(StorageErrorCodes.MIGRATION_FAILED, `migrations of ${namespace} failed: ${e.driverError?.message ?? e.message ?? String(err)}`, { details: { namespace } });
        } finally {
          if (!lockedRunner) await queryRunner.release();
        }
      }),
    );
  }

  /** One checked statement with its parameters. */
  async run(statement: CheckedSql, params: SqlValue[] = []): Promise<StatementResult> {
    checkParams(statement, params);
    if (this.dialect === 'sqlite') {
      if (this.gate) await this.whenOpen();
      try {
        return this.runSqlite(statement, params);
      } catch (err) {
        throw toStorageError(err, `${statement.kind} failed`);
      }
    }
    try {
      return pgResult(await this.pool.query(this.pgQuery(statement, params)));
    } catch (err) {
      throw toStorageError(err, `${statement.kind} failed`);
    }
  }

  /** Checked statements in one transaction. */
  async batch(statements: Array<{ statement: CheckedSql; params: SqlValue[] }>): Promise<StatementResult[]> {
    for (const s of statements) checkParams(s.statement, s.params);
    if (this.dialect === 'sqlite') {
      if (this.gate) await this.whenOpen();
      let index = 0;
      try {
        // Synchronous from BEGIN to COMMIT: no other call can interleave on the one connection.
        return this.sqlite.transaction(() => statements.map((s, i) => ((index = i), this.runSqlite(s.statement, s.params))))();
      } catch (err) {
        throw toStorageError(err, `statement ${index} (${statements[index]?.statement.kind}) of the transaction failed`);
      }
    }
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw toStorageError(err, 'could not start the transaction');
    }
    let index = -1;
    // Under READ COMMITTED each statement takes its own snapshot inside a transaction too, so reads
    // alone skip the two extra round trips of BEGIN and COMMIT.
    const readOnly = statements.every((s) => s.statement.kind === 'SELECT');
    try {
      if (!readOnly) await client.query('BEGIN');
      const results: StatementResult[] = [];
      for (const s of statements) {
        index++;
        results.push(pgResult(await client.query(this.pgQuery(s.statement, s.params))));
      }
      if (!readOnly) await client.query('COMMIT');
      return results;
    } catch (err) {
      if (!readOnly) await client.query('ROLLBACK').catch(() => undefined);
      throw toStorageError(err, index >= 0 ? `statement ${index} (${statements[index]?.statement.kind}) of the transaction failed` : 'the transaction failed');
    } finally {
      client.release();
    }
  }

  private runSqlite(statement: CheckedSql, params: SqlValue[]): StatementResult {
    let prepared = this.sqliteStatements.get(statement.text);
    if (!prepared) {
      prepared = this.sqlite.prepare(statement.text);
      if (this.sqliteStatements.size >= 2_000) this.sqliteStatements.clear();
      this.sqliteStatements.set(statement.text, prepared);
    }
    if (prepared.reader) {
      const rows = prepared.all(...bind(params)) as StatementResult['rows'];
      return { rows, changes: statement.kind === 'SELECT' || statement.kind === 'VALUES' ? 0 : rows.length };
    }
    return { rows: [], changes: prepared.run(...bind(params)).changes };
  }

  /** Named statements are parsed once per pooled connection. */
  private pgQuery(statement: CheckedSql, params: SqlValue[]): pg.QueryConfig {
    let name = this.pgStatementNames.get(statement.text);
    if (!name && this.pgStatementNames.size < 5_000) {
      name = `aion_${this.pgStatementNames.size + 1}`;
      this.pgStatementNames.set(statement.text, name);
    }
    return name ? { name, text: statement.text, values: params } : { text: statement.text, values: params };
  }

  /** Storage's own rows through typeorm repositories (SQLite waits while a migration holds the connection). */
  async repository<T extends NamespaceEntry | StateEntry>(entity: new () => T) {
    if (this.gate) await this.whenOpen();
    return this.dataSource.getRepository(entity);
  }

  /** SQLite: refreshes the planner's statistics where they are stale (cheap; SQLite advises it regularly). */
  optimize(): void {
    if (this.dialect === 'sqlite' && !this.gate) this.sqlite.pragma('optimize');
  }

  async close(): Promise<void> {
    if (this.dataSource.isInitialized) this.optimize();
    const checkpointer = this.checkpointer;
    this.checkpointer = undefined;
    if (checkpointer) {
      checkpointer.postMessage('close');
      await Promise.race([once(checkpointer, 'message'), once(checkpointer, 'exit'), new Promise((r) => setTimeout(r, 2_000))]);
      await checkpointer.terminate();
    }
    this.sqliteStatements.clear();
    if (this.dataSource.isInitialized) await this.dataSource.destroy();
  }
}

function checkParams(statement: CheckedSql, params: SqlValue[]): void {
  if (!Array.isArray(params)) throw new AionError(ErrorCodes.BAD_REQUEST, 'params must be an array');
  if (params.length !== statement.paramCount) {
    throw new AionError(ErrorCodes.BAD_REQUEST, `the ${statement.kind} statement has ${statement.paramCount} ? placeholders but ${params.length} parameters were given`);
  }
  for (const p of params) {
    if (p !== null && !['string', 'number', 'boolean'].includes(typeof p)) throw new AionError(ErrorCodes.BAD_REQUEST, `parameters are strings, numbers, booleans or null (got ${typeof p})`);
  }
}

function pgResult(result: pg.QueryResult): StatementResult {
  const changes = result.command === 'SELECT' ? 0 : result.rowCount ?? 0;
  return { rows: result.rows ?? [], changes };
}

/** Creates the configured schema before the pool points its search_path at it. */
async function ensureSchema(url: string, schema: string, connectTimeoutMs: number): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: connectTimeoutMs });
  await client.connect();
  try {
    await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema.replace(/"/g, '')}"`);
  } finally {
    await client.end();
  }
}
