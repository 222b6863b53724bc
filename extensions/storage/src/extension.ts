import { join, resolve } from 'node:path';
import * as aion from '@aion/extension-api';
import type { Confinement, StorageApi } from './api.js';
import { Database } from './database/database.js';
import { FileSystemObjectStore } from './objects/objectStore.js';
import { StorageService } from './storageService.js';

interface StorageConfiguration {
  databaseUrl?: string;
  sqlite: { path?: string; busyTimeoutMs: number; checkpointIntervalMs: number };
  postgres: { poolSize: number; connectTimeoutMs: number; schema?: string; confinement: Confinement; namespacePoolSize: number };
  objects: { root?: string; maxBytes: number };
  stateMaxBytes: number;
}

export async function activate(ctx: aion.ExtensionContext): Promise<StorageApi> {
  const config = ctx.configuration.get<StorageConfiguration>();
  // ctx.storagePath is <data dir>/storage/<id>: the database and objects live in the data dir itself.
  const dataDir = resolve(ctx.storagePath, '..', '..');
  const url = config.databaseUrl || (await ctx.secrets.get('AION_DATABASE_URL')) || undefined;
  if (url && !/^postgres(ql)?:\/\//.test(url)) {
    throw new Error(`AION_DATABASE_URL must be a postgres:// URL (unset it to use SQLite in the data directory)`);
  }
  const db = await Database.open({
    url,
    sqlitePath: config.sqlite.path ? resolve(config.sqlite.path) : join(dataDir, 'aion.db'),
    busyTimeoutMs: config.sqlite.busyTimeoutMs,
    checkpointIntervalMs: config.sqlite.checkpointIntervalMs,
    poolSize: config.postgres.poolSize,
    connectTimeoutMs: config.postgres.connectTimeoutMs,
    schema: config.postgres.schema,
    confinement: config.postgres.confinement,
    namespacePoolSize: config.postgres.namespacePoolSize,
    log: ctx.logger,
  });
  ctx.subscriptions.push({ dispose: () => db.close() });
  const optimizer = setInterval(() => db.optimize(), 60 * 60 * 1000);
  optimizer.unref();
  ctx.subscriptions.push({ dispose: () => clearInterval(optimizer) });
  const applied = await db.migrateOwnTables();
  const objects = new FileSystemObjectStore(config.objects.root ? resolve(config.objects.root) : join(dataDir, 'objects'));
  const service = new StorageService(db, objects, { objectMaxBytes: config.objects.maxBytes, stateMaxBytes: config.stateMaxBytes });
  ctx.subscriptions.push(
    aion.hooks.tap('health.check', (payload: HealthPayload) => check(payload, 'database', `${db.dialect} (${db.description})`, () => db.ping())),
  );
  ctx.logger.info(
    `storage is ready on ${db.dialect} (${db.description}), namespaces confined by ${db.confinement === 'role' ? 'a database role each' : 'the SQL guard'}`,
    { migrationsApplied: applied },
  );
  return service.api();
}

export function deactivate() {}

type HealthPayload = { checks: Array<Record<string, unknown>> };

/** Adds one bounded check to the `health.check` answer. */
async function check(payload: HealthPayload, name: string, detail: string, probe: () => Promise<void>): Promise<HealthPayload> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([probe(), new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('no answer within 2000 ms')), 2_000)))]);
    payload.checks.push({ name, status: 'ok', detail, ms: Math.round(performance.now() - started) });
  } catch (err) {
    payload.checks.push({ name, status: 'failed', detail: `${detail}: ${(err as Error).message}`, ms: Math.round(performance.now() - started) });
  } finally {
    clearTimeout(timer);
  }
  return payload;
}
