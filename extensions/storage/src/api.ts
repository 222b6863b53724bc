/**
 * The public API of `aion.storage`, for `import type` by other extensions:
 *
 *   const storage = await aion.extensions.getApi<StorageApi>('aion.storage');
 *
 * Every call is confined to the calling extension (as verified by the kernel): its own tables, its
 * own state, its own objects. Only JSON crosses, so the API works from any host kind.
 */

export type Dialect = 'sqlite' | 'postgres';

/**
 * How the database keeps namespaces apart: `role` (PostgreSQL) runs every statement as the
 * namespace's own role, owner of its own schema; `guard` (SQLite, or PostgreSQL by choice) is the SQL
 * guard alone.
 */
export type Confinement = 'role' | 'guard';

/** A bound parameter. Booleans are stored as 0/1; binary data travels as base64 text. */
export type SqlValue = string | number | boolean | null;

/** One SQL text for both databases, or one per dialect. Parameters are written `?` on both. */
export type Sql = string | { sqlite: string; postgres: string };

export interface Statement {
  sql: Sql;
  params?: SqlValue[];
}

export type Row = Record<string, SqlValue>;

export interface StatementResult<R = Row> {
  /** Rows of a SELECT or of a statement with RETURNING; empty otherwise. */
  rows: R[];
  /** Rows inserted, updated or deleted. */
  changes: number;
}

export interface MigrationStep {
  /** Unique within the extension; applied steps are recorded by name. */
  name: string;
  /** One statement per entry; the same list for both databases or one list per dialect. */
  up: string[] | { sqlite: string[]; postgres: string[] };
  down?: string[] | { sqlite: string[]; postgres: string[] };
}

export interface NamespaceInfo {
  extensionId: string;
  /** `aion.sessions` → `aion_sessions`. */
  namespace: string;
  /** Every table, index, view and trigger of the extension is named with this prefix: `aion_sessions__`. */
  prefix: string;
  dialect: Dialect;
  confinement: Confinement;
  /** PostgreSQL: the schema the namespace's tables live in (its own under `role`). */
  schema?: string;
}

export interface ObjectInfo {
  key: string;
  size: number;
  /** Milliseconds since the epoch. */
  modifiedAt: number;
}

export interface StoredObject extends ObjectInfo {
  data: string;
  encoding: 'base64' | 'utf8';
}

export interface StorageApi {
  /** The caller's namespace; table names are `${prefix}name`. */
  namespace(): Promise<NamespaceInfo>;
  /**
   * Applies the steps not yet applied, in array order, each in its own transaction, as typeorm
   * migrations recorded in `${prefix}migrations`. Append new steps; never edit or reorder applied ones.
   */
  migrate(steps: MigrationStep[]): Promise<{ applied: string[] }>;
  /** One statement; its rows. */
  query<R = Row>(sql: Sql, params?: SqlValue[]): Promise<R[]>;
  /** One statement; rows changed (and rows, when it has RETURNING). */
  execute<R = Row>(sql: Sql, params?: SqlValue[]): Promise<StatementResult<R>>;
  /** Statements run in one transaction, in order; all or nothing. */
  transaction(statements: Statement[]): Promise<StatementResult[]>;

  /** `ctx.state` of the caller. `undefined` is answered as `null` over RPC. */
  stateGet(key: string): Promise<unknown>;
  /** Stores a JSON value; `undefined` or `null` removes the key. */
  stateUpdate(key: string, value: unknown): Promise<void>;
  stateKeys(): Promise<string[]>;

  /** Writes atomically; `data` is base64 unless `encoding` is `utf8`. */
  putObject(key: string, data: string, options?: { encoding?: 'base64' | 'utf8' }): Promise<ObjectInfo>;
  /** `null` when there is no such object. */
  getObject(key: string, options?: { encoding?: 'base64' | 'utf8' }): Promise<StoredObject | null>;
  /** `true` when an object was removed. */
  deleteObject(key: string): Promise<boolean>;
  /** Objects whose key starts with `prefix`, sorted by key. */
  listObjects(prefix?: string): Promise<ObjectInfo[]>;
}

/** Error codes this extension adds to the common ones. */
export const StorageErrorCodes = {
  DATABASE_UNAVAILABLE: 'DATABASE_UNAVAILABLE',
  SQL_REJECTED: 'SQL_REJECTED',
  SQL_FAILED: 'SQL_FAILED',
  MIGRATION_FAILED: 'MIGRATION_FAILED',
  NAMESPACE_CONFLICT: 'NAMESPACE_CONFLICT',
  INVALID_OBJECT_KEY: 'INVALID_OBJECT_KEY',
  /** PostgreSQL cannot give a namespace a role of its own (the kernel's user may not create roles, a role holds more rights). */
  CONFINEMENT_UNAVAILABLE: 'CONFINEMENT_UNAVAILABLE',
} as const;
