import * as aion from '@aion/extension-api';
import { AionError, ErrorCodes, type CancellationToken } from '@aion/extension-api';
import {
  StorageErrorCodes,
  type MigrationStep,
  type NamespaceInfo,
  type ObjectInfo,
  type Sql,
  type SqlValue,
  type StatementResult,
  type StorageApi,
  type StoredObject,
  type Statement,
} from './api.js';
import { OWN_TABLE_PREFIX, type Database } from './database/database.js';
import { NamespaceEntry, StateEntry } from './database/entities.js';
import type { NamespaceDatabase } from './database/namespaceDatabase.js';
import { namespaceOf, SqlGuard } from './database/sqlGuard.js';
import type { ObjectStore } from './objects/objectStore.js';

export interface StorageLimits {
  objectMaxBytes: number;
  stateMaxBytes: number;
}

const MAX_IDENTIFIER = 63;
/** Storage's own tables are `aion_storage__*`: no extension may hold that prefix (`aion.storage-` would map to it). */
const RESERVED_NAMESPACE = OWN_TABLE_PREFIX.slice(0, -2);

interface Namespace {
  info: NamespaceInfo;
  guard: SqlGuard;
  /** Opened on the first SQL call: on PostgreSQL that creates the namespace's role and schema, which objects alone never need. */
  database(): Promise<NamespaceDatabase>;
}

/** Serves the StorageApi, confining every call to the namespace of the extension that made it. */
export class StorageService {
  private readonly namespaces = new Map<string, Promise<Namespace>>();

  constructor(
    private readonly db: Database,
    private readonly objects: ObjectStore,
    private readonly limits: StorageLimits,
  ) {}

  /** The verified caller; the kernel itself (an HTTP route, a command) has no namespace here. */
  private caller(): string {
    const id = aion.extensions.caller();
    if (!id) throw new AionError(ErrorCodes.PERMISSION_DENIED, 'aion.storage serves extensions: call it through aion.extensions.getApi from an extension');
    return id;
  }

  /** Registers the caller's namespace on first use; a name already held by another extension is refused. */
  namespaceOf(extensionId: string): Promise<Namespace> {
    let pending = this.namespaces.get(extensionId);
    if (!pending) {
      pending = this.register(extensionId);
      pending.catch(() => this.namespaces.delete(extensionId));
      this.namespaces.set(extensionId, pending);
    }
    return pending;
  }

  private async register(extensionId: string): Promise<Namespace> {
    const namespace = namespaceOf(extensionId);
    const prefix = `${namespace}__`;
    if (!namespace || prefix.length > MAX_IDENTIFIER - 8) {
      throw new AionError(
        StorageErrorCodes.NAMESPACE_CONFLICT,
        `the extension id ${extensionId} gives no usable namespace (${namespace || 'empty'}; at most ${MAX_IDENTIFIER - 10} characters)`,
      );
    }
    if (namespace === RESERVED_NAMESPACE) {
      throw new AionError(
        StorageErrorCodes.NAMESPACE_CONFLICT,
        `the namespace ${namespace} holds aion.storage's own tables; ${extensionId} cannot use it: rename the extension`,
      );
    }
    const repo = await this.db.repository(NamespaceEntry);
    let owner = await repo.findOneBy({ namespace });
    if (!owner) {
      try {
        await repo.insert({ namespace, extensionId, createdAt: Date.now() });
        owner = { namespace, extensionId, createdAt: Date.now() };
      } catch {
        // Another kernel registered it at the same moment; read who won.
        owner = await repo.findOneBy({ namespace });
      }
    }
    if (!owner || owner.extensionId !== extensionId) {
      throw new AionError(
        StorageErrorCodes.NAMESPACE_CONFLICT,
        `the namespace ${namespace} belongs to ${owner?.extensionId ?? 'another extension'}; ${extensionId} cannot use it`,
      );
    }
    return {
      info: { extensionId, namespace, prefix, dialect: this.db.dialect, confinement: this.db.confinement },
      guard: new SqlGuard(this.db.dialect, prefix),
      database: () => this.db.openNamespace(namespace, prefix),
    };
  }

  private pick(sql: Sql): string {
    if (typeof sql === 'string') return sql;
    const text = sql?.[this.db.dialect];
    if (typeof text !== 'string') throw new AionError(ErrorCodes.BAD_REQUEST, `no SQL for ${this.db.dialect} was given`);
    return text;
  }

  private statement(namespace: Namespace, sql: Sql) {
    return namespace.guard.check(this.pick(sql));
  }

  private async callerNamespace(): Promise<Namespace> {
    return this.namespaceOf(this.caller());
  }

  /**
   * The object every extension reaches with getApi('aion.storage'). Each method declares the trailing
   * cancellation token the host appends, so optional arguments keep their places.
   */
  api(): StorageApi {
    const self = this;
    return {
      async namespace(_token?: CancellationToken) {
        const namespace = await self.callerNamespace();
        const { schema } = (await namespace.database()).scope;
        return schema ? { ...namespace.info, schema } : namespace.info;
      },
      async migrate(steps: MigrationStep[], _token?: CancellationToken) {
        const namespace = await self.callerNamespace();
        if (!Array.isArray(steps)) throw new AionError(ErrorCodes.BAD_REQUEST, 'migrate takes a list of { name, up, down? }');
        return { applied: await (await namespace.database()).migrate(steps, namespace.guard) };
      },
      async query(sql: Sql, params?: SqlValue[], _token?: CancellationToken) {
        const namespace = await self.callerNamespace();
        const statement = self.statement(namespace, sql);
        return (await (await namespace.database()).run(statement, params ?? [])).rows as never;
      },
      async execute(sql: Sql, params?: SqlValue[], _token?: CancellationToken) {
        const namespace = await self.callerNamespace();
        const statement = self.statement(namespace, sql);
        return (await (await namespace.database()).run(statement, params ?? [])) as StatementResult<never>;
      },
      async transaction(statements: Statement[], _token?: CancellationToken) {
        const namespace = await self.callerNamespace();
        if (!Array.isArray(statements) || statements.length === 0)
          throw new AionError(ErrorCodes.BAD_REQUEST, 'transaction takes a non-empty list of { sql, params }');
        const checked = statements.map((s) => ({ statement: self.statement(namespace, s?.sql), params: s?.params ?? [] }));
        return (await namespace.database()).batch(checked);
      },

      async stateGet(key: string, _token?: CancellationToken) {
        const extensionId = self.caller();
        const row = await (await self.db.repository(StateEntry)).findOneBy({ extensionId, key: checkStateKey(key) });
        return row ? JSON.parse(row.value) : null;
      },
      async stateUpdate(key: string, value: unknown, _token?: CancellationToken) {
        const extensionId = self.caller();
        checkStateKey(key);
        const repo = await self.db.repository(StateEntry);
        if (value === undefined || value === null) {
          await repo.delete({ extensionId, key });
          return;
        }
        const json = JSON.stringify(value);
        if (Buffer.byteLength(json) > self.limits.stateMaxBytes)
          throw new AionError(ErrorCodes.PAYLOAD_TOO_LARGE, `state values are limited to ${self.limits.stateMaxBytes} bytes of JSON`);
        await repo.upsert({ extensionId, key, value: json, updatedAt: Date.now() }, ['extensionId', 'key']);
      },
      async stateKeys(_token?: CancellationToken) {
        const extensionId = self.caller();
        const rows = await (await self.db.repository(StateEntry)).find({ where: { extensionId }, select: { key: true }, order: { key: 'ASC' } });
        return rows.map((r) => r.key);
      },

      async putObject(key: string, data: string, options?: { encoding?: 'base64' | 'utf8' }, _token?: CancellationToken): Promise<ObjectInfo> {
        const { namespace } = (await self.callerNamespace()).info;
        if (typeof data !== 'string') throw new AionError(ErrorCodes.BAD_REQUEST, 'object data is a base64 (or, with encoding utf8, a text) string');
        const bytes = Buffer.from(data, options?.encoding === 'utf8' ? 'utf8' : 'base64');
        if (bytes.length > self.limits.objectMaxBytes)
          throw new AionError(ErrorCodes.PAYLOAD_TOO_LARGE, `objects are limited to ${self.limits.objectMaxBytes} bytes`);
        return self.objects.put(namespace, key, bytes);
      },
      async getObject(key: string, options?: { encoding?: 'base64' | 'utf8' }, _token?: CancellationToken): Promise<StoredObject | null> {
        const { namespace } = (await self.callerNamespace()).info;
        const found = await self.objects.get(namespace, key);
        if (!found) return null;
        const encoding = options?.encoding === 'utf8' ? 'utf8' : 'base64';
        return { ...found.info, data: found.data.toString(encoding), encoding };
      },
      async deleteObject(key: string, _token?: CancellationToken) {
        const { namespace } = (await self.callerNamespace()).info;
        return self.objects.delete(namespace, key);
      },
      async listObjects(prefix?: string, _token?: CancellationToken) {
        const { namespace } = (await self.callerNamespace()).info;
        if (prefix !== undefined && prefix !== null && typeof prefix !== 'string') throw new AionError(ErrorCodes.BAD_REQUEST, 'prefix is a string');
        return self.objects.list(namespace, prefix ?? '');
      },
    };
  }
}

function checkStateKey(key: unknown): string {
  if (typeof key !== 'string' || key.length === 0 || key.length > 512)
    throw new AionError(ErrorCodes.BAD_REQUEST, 'state keys are strings of 1 to 512 characters');
  return key;
}
