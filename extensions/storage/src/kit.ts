/**
 * Runtime helpers for extensions that keep tables in `aion.storage` (`@aion/ext-storage/kit`):
 *
 *   export class NotesStore extends NamespaceStore {
 *     static async open(db: Remote<StorageApi>): Promise<NotesStore> {
 *       return new NotesStore(db, await openNamespace(db, migrations));
 *     }
 *     list(owner: string) {
 *       return this.db.query(`SELECT * FROM ${this.p}notes WHERE owner_id = ?`, [owner]);
 *     }
 *   }
 */
import type { Remote } from '@aion/extension-api';
import type { MigrationStep, StorageApi } from './api.js';

/** Applies the extension's migrations in its own namespace (they get its table prefix) and answers the prefix. */
export async function openNamespace(db: Remote<StorageApi>, migrations: (prefix: string) => MigrationStep[]): Promise<string> {
  const { prefix } = await db.namespace();
  await db.migrate(migrations(prefix));
  return prefix;
}

/** A store over the extension's namespace: `db` to query, `p` the prefix of every table name. */
export abstract class NamespaceStore {
  constructor(
    protected readonly db: Remote<StorageApi>,
    protected readonly p: string,
  ) {}
}
