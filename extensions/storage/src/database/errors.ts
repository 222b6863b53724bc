import { AionError, ErrorCodes } from '@aion/extension-api';
import { StorageErrorCodes } from '../api.js';

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
/** PostgreSQL's insufficient_privilege: the extension's role reached past its own schema. */
const INSUFFICIENT_PRIVILEGE = '42501';

export function driverCodeOf(err: unknown): string | undefined {
  const e = err as { code?: string; driverError?: { code?: string } };
  return e?.driverError?.code ?? e?.code;
}

/** Where the failing statement ran, so a privilege error can say what the extension may use. */
export interface ErrorScope {
  namespace: string;
  /** PostgreSQL: the one schema the extension's role may use. */
  schema?: string;
}

/**
 * Driver errors become values with a stable code; a constraint violation names its kind in
 * `details.constraint`; a privilege the database refused is PERMISSION_DENIED, without the server's text.
 */
export function toStorageError(err: unknown, context: string, scope?: ErrorScope): AionError {
  if (err instanceof AionError) return err;
  const e = err as { message?: string; driverError?: { message?: string } };
  const code = driverCodeOf(err);
  const message = e.driverError?.message ?? e.message ?? String(err);
  if ((code && UNAVAILABLE.has(code)) || /Connection terminated|timeout exceeded when trying to connect/i.test(message)) {
    return new AionError(StorageErrorCodes.DATABASE_UNAVAILABLE, `the database is unavailable: ${message}`, { status: 503, details: { driverCode: code } });
  }
  if (code === INSUFFICIENT_PRIVILEGE) {
    const where = scope ? `${scope.namespace} may use only the objects in its own schema${scope.schema ? ` (${scope.schema})` : ''}` : 'outside the namespace';
    return new AionError(ErrorCodes.PERMISSION_DENIED, `${context}: the database refused the privilege: ${where}`, {
      details: { driverCode: code, ...(scope ?? {}) },
    });
  }
  const constraint = code ? CONSTRAINTS[code] : undefined;
  return new AionError(StorageErrorCodes.SQL_FAILED, `${context}: ${message}`, {
    status: 500,
    details: constraint ? { driverCode: code, constraint } : { driverCode: code },
  });
}
