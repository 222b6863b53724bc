import pg from 'pg';
import { DataSource, Migration, MigrationExecutor, type MigrationInterface, type QueryRunner } from 'typeorm';
import { AionError, ErrorCodes } from '@aion/extension-api';
import { StorageErrorCodes, type Dialect, type MigrationStep, type SqlValue, type StatementResult } from '../api.js';
import { driverCodeOf, toStorageError, type ErrorScope } from './errors.js';
import type { CheckedSql, SqlGuard } from './sqlGuard.js';

export interface NamespaceScope extends ErrorScope {
  /** `aion_sessions__` */
  prefix: string;
  /** PostgreSQL with `role` confinement: the login role every statement of this namespace runs as. */
  role?: string;
}

/** Two kernels starting against one PostgreSQL database apply a namespace's migrations once. */
export async function withMigrationLock<T>(dataSource: DataSource, namespace: string, fn: (queryRunner?: QueryRunner) => Promise<T>): Promise<T> {
  if (dataSource.options.type !== 'postgres') return fn();
  const queryRunner = dataSource.createQueryRunner('master');
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

/**
 * One extension's statements and migrations. It trusts what it is given: the SQL guard runs before it.
 * On PostgreSQL with `role` confinement its data source logs in as the namespace's role, whose search
 * path is its own schema, so the database itself refuses whatever lies outside; otherwise it runs on
 * the kernel's connection and the guard is all there is.
 */
/** What a namespace needs of the kernel's database: its dialect, its single SQLite connection, and its migration gate. */
export interface SharedDatabase {
  readonly dialect: Dialect;
  readonly migrating: boolean;
  whenOpen(): Promise<void>;
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  runSqlite(statement: CheckedSql, params: SqlValue[]): StatementResult;
  sqliteTransaction<T>(fn: () => T): T;
}

export class NamespaceDatabase {
  constructor(
    private readonly db: SharedDatabase,
    readonly scope: NamespaceScope,
    private readonly dataSource: DataSource,
    /** Its own pool (a role of its own), closed with it; otherwise the kernel's, closed by the Database. */
    private readonly ownsDataSource: boolean,
    /** Prepared statement names, one map per pool: a name means one text on every connection of that pool. */
    private readonly pgStatementNames: Map<string, string>,
  ) {}

  private get pool(): pg.Pool {
    return (this.dataSource.driver as unknown as { master: pg.Pool }).master;
  }

  private fail(err: unknown, context: string): AionError {
    return toStorageError(err, context, { namespace: this.scope.namespace, schema: this.scope.schema });
  }

  /** One checked statement with its parameters. */
  async run(statement: CheckedSql, params: SqlValue[] = []): Promise<StatementResult> {
    checkParams(statement, params);
    if (this.db.dialect === 'sqlite') {
      if (this.db.migrating) await this.db.whenOpen();
      try {
        return this.db.runSqlite(statement, params);
      } catch (err) {
        throw this.fail(err, `${statement.kind} failed`);
      }
    }
    try {
      return pgResult(await this.pool.query(this.pgQuery(statement, params)));
    } catch (err) {
      throw this.fail(err, `${statement.kind} failed`);
    }
  }

  /** Checked statements in one transaction. */
  async batch(statements: Array<{ statement: CheckedSql; params: SqlValue[] }>): Promise<StatementResult[]> {
    for (const s of statements) checkParams(s.statement, s.params);
    if (this.db.dialect === 'sqlite') {
      if (this.db.migrating) await this.db.whenOpen();
      let index = 0;
      try {
        return this.db.sqliteTransaction(() => statements.map((s, i) => ((index = i), this.db.runSqlite(s.statement, s.params))));
      } catch (err) {
        throw this.fail(err, `statement ${index} (${statements[index]?.statement.kind}) of the transaction failed`);
      }
    }
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw this.fail(err, 'could not start the transaction');
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
      throw this.fail(err, index >= 0 ? `statement ${index} (${statements[index]?.statement.kind}) of the transaction failed` : 'the transaction failed');
    } finally {
      client.release();
    }
  }

  /** Applies an extension's pending steps as typeorm migrations recorded in `${prefix}typeorm_migrations`. */
  async migrate(steps: MigrationStep[], guard: SqlGuard): Promise<string[]> {
    const dialect = this.db.dialect;
    const { namespace, prefix } = this.scope;
    const pick = (list: MigrationStep['up'] | undefined): string[] => (list === undefined ? [] : Array.isArray(list) ? list : list[dialect]);
    const seen = new Set<string>();
    const migrations = steps.map((step, index) => {
      if (typeof step?.name !== 'string' || !/^[A-Za-z0-9_.-]{1,200}$/.test(step.name)) {
        throw new AionError(ErrorCodes.BAD_REQUEST, `migration ${index}: a name of letters, digits, _ . - is required`);
      }
      if (seen.has(step.name)) throw new AionError(ErrorCodes.BAD_REQUEST, `migration ${step.name} is listed twice`);
      seen.add(step.name);
      const up = pick(step.up);
      if (!Array.isArray(up) || up.some((s) => typeof s !== 'string'))
        throw new AionError(ErrorCodes.BAD_REQUEST, `migration ${step.name}: up must be a list of SQL statements (for ${dialect})`);
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
    return this.db.exclusive(() =>
      withMigrationLock(this.dataSource, namespace, async (lockedRunner) => {
        const queryRunner = lockedRunner ?? this.dataSource.createQueryRunner('master');
        try {
          const executor = new NamespaceMigrationExecutor(this.dataSource, queryRunner, migrations, `${prefix}typeorm_migrations`);
          executor.transaction = 'each';
          const applied = await executor.executePendingMigrations();
          if (applied.length > 0 && dialect === 'sqlite') await queryRunner.query('PRAGMA optimize');
          return applied.map((m) => m.name);
        } catch (err) {
          if (driverCodeOf(err) === '42501') throw this.fail(err, `a migration of ${namespace} failed`);
          const e = err as { message?: string; driverError?: { message?: string } };
          throw new AionError(StorageErrorCodes.MIGRATION_FAILED, `migrations of ${namespace} failed: ${e.driverError?.message ?? e.message ?? String(err)}`, {
            details: { namespace },
          });
        } finally {
          if (!lockedRunner) await queryRunner.release();
        }
      }),
    );
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

  async close(): Promise<void> {
    if (this.ownsDataSource && this.dataSource.isInitialized) await this.dataSource.destroy();
  }
}

function checkParams(statement: CheckedSql, params: SqlValue[]): void {
  if (!Array.isArray(params)) throw new AionError(ErrorCodes.BAD_REQUEST, 'params must be an array');
  if (params.length !== statement.paramCount) {
    throw new AionError(
      ErrorCodes.BAD_REQUEST,
      `the ${statement.kind} statement has ${statement.paramCount} ? placeholders but ${params.length} parameters were given`,
    );
  }
  for (const p of params) {
    if (p !== null && !['string', 'number', 'boolean'].includes(typeof p))
      throw new AionError(ErrorCodes.BAD_REQUEST, `parameters are strings, numbers, booleans or null (got ${typeof p})`);
  }
}

function pgResult(result: pg.QueryResult): StatementResult {
  const changes = result.command === 'SELECT' ? 0 : (result.rowCount ?? 0);
  return { rows: result.rows ?? [], changes };
}
