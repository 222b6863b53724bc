import 'reflect-metadata';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import type BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { DataSource, IsNull, MigrationExecutor, Not } from 'typeorm';
import { AionError, maskUrlPassword } from '@aion/extension-api';
import { StorageErrorCodes, type Confinement, type Dialect, type SqlValue, type StatementResult } from '../api.js';
import { NamespaceEntry, StateEntry } from './entities.js';
import { driverCodeOf, toStorageError } from './errors.js';
import { StorageInit1763769600000 } from './migrations/1763769600000-StorageInit.js';
import { NamespaceRoles1796428800000 } from './migrations/1796428800000-NamespaceRoles.js';
import { NamespaceDatabase, withMigrationLock } from './namespaceDatabase.js';
import { NamespaceRoles, roleUrl, type ConfinementLog, type NamespaceGrant } from './namespaceRoles.js';
import type { CheckedSql } from './sqlGuard.js';

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
  /** PostgreSQL: a role and schema per namespace, or the SQL guard alone. SQLite always has the guard alone. */
  confinement: Confinement;
  /** PostgreSQL, `role`: connections in each namespace's own pool. */
  namespacePoolSize: number;
  log: ConfinementLog;
}

/** Storage's own tables carry this prefix and stay in the base schema. */
export const OWN_TABLE_PREFIX = 'aion_storage__';
const OWN_MIGRATIONS = [StorageInit1763769600000, NamespaceRoles1796428800000];
/** An idle connection of a namespace's pool closes after this long, so quiet extensions hold none. */
const NAMESPACE_IDLE_MS = 30_000;

/** int8 (COUNT(*), BIGINT milliseconds) as numbers: every value an extension stores fits in 2^53. */
const pgTypes = {
  getTypeParser: (oid: number, format?: 'text' | 'binary') => {
    if (oid === 20 && format !== 'binary') return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format as 'text');
  },
};

function describeConnectError(err: unknown): string {
  const e = err as { message?: string; code?: string; errors?: Array<{ message?: string }> };
  const inner = e.errors
    ?.map((x) => x.message)
    .filter(Boolean)
    .join('; ');
  return e.message || inner || e.code || String(err);
}

function bind(params: SqlValue[]): SqlValue[] {
  return params.map((p) => (typeof p === 'boolean' ? (p ? 1 : 0) : p));
}

/**
 * The one database of this kernel, on typeorm: SQLite (better-sqlite3, WAL) or PostgreSQL. It holds
 * storage's own tables and hands out a `NamespaceDatabase` per extension: on PostgreSQL with `role`
 * confinement that one logs in as the namespace's own role; otherwise it shares this connection.
 */
export class Database {
  private gate?: Promise<void>;
  private checkpointer?: Worker;
  private readonly sqliteStatements = new Map<string, BetterSqlite3.Statement>();
  private readonly namespaces = new Map<string, Promise<NamespaceDatabase>>();
  /** Statement names on the kernel's pool, which every namespace shares under `guard`. */
  private readonly pgStatementNames = new Map<string, string>();

  private constructor(
    readonly dataSource: DataSource,
    readonly dialect: Dialect,
    /** Where the data is, safe to log: the masked URL or the SQLite file. */
    readonly description: string,
    private readonly options: DatabaseOptions,
    /** PostgreSQL with `role` confinement only. */
    private readonly roles?: NamespaceRoles,
  ) {}

  /** How namespaces are kept apart here: SQLite has the guard alone, whatever was configured. */
  get confinement(): Confinement {
    return this.roles ? 'role' : 'guard';
  }

  /** PostgreSQL: the schema of storage's own tables (and of every namespace under `guard`). */
  get baseSchema(): string | undefined {
    return this.dialect === 'postgres' ? (this.dataSource.driver as unknown as { schema: string }).schema : undefined;
  }

  static async open(options: DatabaseOptions): Promise<Database> {
    if (options.url) {
      const masked = maskUrlPassword(options.url);
      const dataSource = new DataSource({
        type: 'postgres',
        url: options.url,
        schema: options.schema,
        poolSize: options.poolSize,
        connectTimeoutMS: options.connectTimeoutMs,
        applicationName: 'aion',
        entities: [NamespaceEntry, StateEntry],
        migrations: OWN_MIGRATIONS,
        migrationsTableName: `${OWN_TABLE_PREFIX}migrations`,
        synchronize: false,
        logging: false,
        extra: { types: pgTypes, ...(options.schema ? { options: `-c search_path=${options.schema}` } : {}) },
      });
      try {
        if (options.schema) await ensureSchema(options.url, options.schema, options.connectTimeoutMs);
        await dataSource.initialize();
      } catch (err) {
        await dataSource.destroy().catch(() => undefined);
        throw new AionError(StorageErrorCodes.DATABASE_UNAVAILABLE, `could not connect to the database at ${masked}: ${describeConnectError(err)}`, {
          status: 503,
        });
      }
      let roles: NamespaceRoles | undefined;
      if (options.confinement === 'role') {
        const driver = dataSource.driver as unknown as { master: pg.Pool; database: string; schema: string };
        roles = new NamespaceRoles(driver.master, driver.database, driver.schema, options.log);
        await roles.prepare().catch(async (err) => {
          await dataSource.destroy().catch(() => undefined);
          throw err;
        });
      } else {
        options.log.warn(
          'PostgreSQL namespaces are confined by the SQL guard alone (postgres.confinement is "guard"): every extension\'s SQL runs as the kernel\'s database user, so a statement the guard misses reaches every table',
        );
      }
      return new Database(dataSource, 'postgres', masked, options, roles);
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
      migrations: OWN_MIGRATIONS,
      migrationsTableName: `${OWN_TABLE_PREFIX}migrations`,
      synchronize: false,
      logging: false,
    });
    try {
      await dataSource.initialize();
    } catch (err) {
      await dataSource.destroy().catch(() => undefined);
      throw new AionError(StorageErrorCodes.DATABASE_UNAVAILABLE, `could not open the SQLite database at ${options.sqlitePath}: ${describeConnectError(err)}`, {
        status: 503,
      });
    }
    const database = new Database(dataSource, 'sqlite', options.sqlitePath, options);
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

  /** Storage's own migrations (typeorm classes), then, on PostgreSQL, the checks that depend on them. */
  async migrateOwnTables(): Promise<string[]> {
    const applied = await this.exclusive(async () => {
      const done = await withMigrationLock(this.dataSource, 'aion_storage', async (lockedRunner) => {
        if (!lockedRunner) return this.dataSource.runMigrations({ transaction: 'each' });
        const executor = new MigrationExecutor(this.dataSource, lockedRunner);
        executor.transaction = 'each';
        return executor.executePendingMigrations();
      });
      return done.map((m) => m.name);
    });
    if (this.roles) {
      await this.roles.secureOwnTables(OWN_TABLE_PREFIX);
    } else if (this.dialect === 'postgres') {
      const recorded = await (await this.repository(NamespaceEntry)).find({ where: { dbSchema: Not(IsNull()) }, order: { namespace: 'ASC' } });
      if (recorded.length > 0) {
        throw new AionError(
          StorageErrorCodes.CONFINEMENT_UNAVAILABLE,
          `postgres.confinement is "guard", but the tables of ${recorded.map((r) => r.namespace).join(', ')} already live in schemas of their own roles (${recorded.map((r) => r.dbSchema).join(', ')}), which the guard cannot serve: set postgres.confinement back to "role"`,
          { status: 503 },
        );
      }
    }
    return applied;
  }

  /** SQLite has one connection: while typeorm runs a migration on it, nothing else may. */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
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

  get migrating(): boolean {
    return this.gate !== undefined;
  }

  /**
   * Where an extension's statements and migrations run. The namespace must be registered in
   * `aion_storage__namespaces`. Opened once per namespace; closed with this database.
   */
  openNamespace(namespace: string, prefix: string): Promise<NamespaceDatabase> {
    let pending = this.namespaces.get(namespace);
    if (!pending) {
      pending = this.connectNamespace(namespace, prefix);
      pending.catch(() => this.namespaces.delete(namespace));
      this.namespaces.set(namespace, pending);
    }
    return pending;
  }

  private async connectNamespace(namespace: string, prefix: string): Promise<NamespaceDatabase> {
    const roles = this.roles;
    if (!roles) return new NamespaceDatabase(this, { namespace, prefix, schema: this.baseSchema }, this.dataSource, false, this.pgStatementNames);
    try {
      const grant = await roles.provision(namespace, prefix);
      let dataSource: DataSource;
      try {
        dataSource = await this.openRoleDataSource(grant);
      } catch (err) {
        // A restored backup or a role recreated by hand: the recorded password is the one to use.
        if (!['28P01', '28000'].includes(driverCodeOf(err) ?? '')) throw err;
        await roles.resetPassword(grant);
        dataSource = await this.openRoleDataSource(grant);
      }
      return new NamespaceDatabase(this, { namespace, prefix, schema: grant.schema, role: grant.role }, dataSource, true, new Map());
    } catch (err) {
      if (err instanceof AionError) throw err;
      const storageError = toStorageError(err, `could not open the namespace ${namespace}`);
      if (storageError.code === StorageErrorCodes.DATABASE_UNAVAILABLE) throw storageError;
      throw new AionError(
        StorageErrorCodes.CONFINEMENT_UNAVAILABLE,
        `could not give ${namespace} its database role and schema: ${(err as Error).message ?? String(err)}`,
        { status: 503 },
      );
    }
  }

  private async openRoleDataSource(grant: NamespaceGrant): Promise<DataSource> {
    const dataSource = new DataSource({
      type: 'postgres',
      url: roleUrl(this.options.url!, grant),
      schema: grant.schema,
      poolSize: this.options.namespacePoolSize,
      connectTimeoutMS: this.options.connectTimeoutMs,
      applicationName: 'aion',
      installExtensions: false,
      synchronize: false,
      logging: false,
      extra: { types: pgTypes, options: `-c search_path=${grant.schema}`, idleTimeoutMillis: NAMESPACE_IDLE_MS },
    });
    try {
      await dataSource.initialize();
      return dataSource;
    } catch (err) {
      await dataSource.destroy().catch(() => undefined);
      throw err;
    }
  }

  /** SQLite: one statement on the shared connection, prepared once per text. */
  runSqlite(statement: CheckedSql, params: SqlValue[]): StatementResult {
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

  /** SQLite: `fn` inside one transaction; synchronous from BEGIN to COMMIT, so no other call interleaves. */
  sqliteTransaction<T>(fn: () => T): T {
    return this.sqlite.transaction(fn)();
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

  /** Round-trips `SELECT 1`; for health checks. */
  async ping(): Promise<void> {
    await this.dataSource.query('SELECT 1');
  }

  async close(): Promise<void> {
    const namespaces = [...this.namespaces.values()];
    this.namespaces.clear();
    await Promise.all(namespaces.map((pending) => pending.then((n) => n.close()).catch(() => undefined)));
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

/** Creates the configured schema before the pool points its search_path at it. */
async function ensureSchema(url: string, schema: string, connectTimeoutMs: number): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: connectTimeoutMs });
  await client.connect();
  try {
    // Looked up first: CREATE SCHEMA IF NOT EXISTS needs the right to create schemas even when it exists.
    const { rowCount } = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
    if (!rowCount) await client.query(`CREATE SCHEMA IF NOT EXISTS ${pg.escapeIdentifier(schema)}`);
  } finally {
    await client.end();
  }
}
