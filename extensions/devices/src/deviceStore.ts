import { randomBytes, randomUUID } from 'node:crypto';
import type { Remote } from '@aion/extension-api';
import { NamespaceStore, openNamespace } from '@aion/ext-storage/kit';
import type { MigrationStep, StorageApi } from '@aion/ext-storage';

/** The device registry's tables, in the extension's own namespace of aion.storage. */
function migrations(p: string): MigrationStep[] {
  return [
    {
      name: '001-devices',
      up: [
        `CREATE TABLE ${p}devices (id VARCHAR(36) PRIMARY KEY, tenant_id VARCHAR(64) NOT NULL, user_id VARCHAR(128) NOT NULL,
          name VARCHAR(63) NOT NULL, display_name VARCHAR(200) NOT NULL, scopes TEXT NOT NULL, token_id VARCHAR(36) NOT NULL,
          created_at BIGINT NOT NULL, revoked_at BIGINT, last_seen_at BIGINT, protocol_version INTEGER, address VARCHAR(128),
          skills_count INTEGER NOT NULL DEFAULT 0)`,
        `CREATE INDEX ${p}devices_name ON ${p}devices (tenant_id, name)`,
        `CREATE INDEX ${p}devices_revoked ON ${p}devices (revoked_at)`,
        `CREATE TABLE ${p}settings (name VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL, created_at BIGINT NOT NULL)`,
      ],
    },
  ];
}

export interface DeviceRow {
  id: string;
  tenant_id: string;
  user_id: string;
  name: string;
  display_name: string;
  scopes: string[];
  token_id: string;
  created_at: number;
  revoked_at: number | null;
  last_seen_at: number | null;
  protocol_version: number | null;
  address: string | null;
  skills_count: number;
}

type Raw = Record<string, unknown>;

function toRow(r: Raw): DeviceRow {
  const n = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  return {
    id: String(r.id),
    tenant_id: String(r.tenant_id),
    user_id: String(r.user_id),
    name: String(r.name),
    display_name: String(r.display_name),
    scopes: JSON.parse(String(r.scopes)) as string[],
    token_id: String(r.token_id),
    created_at: Number(r.created_at),
    revoked_at: n(r.revoked_at),
    last_seen_at: n(r.last_seen_at),
    protocol_version: n(r.protocol_version),
    address: r.address === null || r.address === undefined ? null : String(r.address),
    skills_count: Number(r.skills_count ?? 0),
  };
}

/** Devices as the database knows them: who owns each, its scopes, its token, when it was last seen. */
export class DeviceStore extends NamespaceStore {
  static async open(db: Remote<StorageApi>): Promise<DeviceStore> {
    return new DeviceStore(db, await openNamespace(db, migrations));
  }

  /** The token signing key: created once, shared by every hub on the same database. */
  async signingSecret(): Promise<string> {
    await this.db.execute(`INSERT INTO ${this.p}settings (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`, [
      'token_secret',
      randomBytes(32).toString('base64url'),
      Date.now(),
    ]);
    const [row] = await this.db.query<{ value: string }>(`SELECT value FROM ${this.p}settings WHERE name = ?`, ['token_secret']);
    return row!.value;
  }

  async liveNames(tenantId: string): Promise<Set<string>> {
    const rows = await this.db.query<{ name: string }>(`SELECT name FROM ${this.p}devices WHERE tenant_id = ? AND revoked_at IS NULL`, [tenantId]);
    return new Set(rows.map((r) => r.name));
  }

  async create(device: { tenant_id: string; user_id: string; name: string; display_name: string; scopes: string[] }): Promise<DeviceRow> {
    const row: DeviceRow = {
      id: randomUUID(),
      token_id: randomUUID(),
      ...device,
      created_at: Date.now(),
      revoked_at: null,
      last_seen_at: null,
      protocol_version: null,
      address: null,
      skills_count: 0,
    };
    await this.db.execute(
      `INSERT INTO ${this.p}devices (id, tenant_id, user_id, name, display_name, scopes, token_id, created_at, skills_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)`,
      [row.id, row.tenant_id, row.user_id, row.name, row.display_name, JSON.stringify(row.scopes), row.token_id, row.created_at],
    );
    return row;
  }

  async list(tenantId: string, userId?: string): Promise<DeviceRow[]> {
    const rows = userId
      ? await this.db.query<Raw>(`SELECT * FROM ${this.p}devices WHERE tenant_id = ? AND user_id = ? AND revoked_at IS NULL ORDER BY name`, [tenantId, userId])
      : await this.db.query<Raw>(`SELECT * FROM ${this.p}devices WHERE tenant_id = ? AND revoked_at IS NULL ORDER BY name`, [tenantId]);
    return rows.map(toRow);
  }

  async findLive(tenantId: string, name: string): Promise<DeviceRow | undefined> {
    const [row] = await this.db.query<Raw>(`SELECT * FROM ${this.p}devices WHERE tenant_id = ? AND name = ? AND revoked_at IS NULL`, [tenantId, name]);
    return row ? toRow(row) : undefined;
  }

  async findById(id: string): Promise<DeviceRow | undefined> {
    const [row] = await this.db.query<Raw>(`SELECT * FROM ${this.p}devices WHERE id = ?`, [id]);
    return row ? toRow(row) : undefined;
  }

  async revoke(id: string): Promise<boolean> {
    const { changes } = (await this.db.execute(`UPDATE ${this.p}devices SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, [Date.now(), id])) as {
      changes?: number;
    };
    return (changes ?? 0) > 0;
  }

  /** Ids of devices revoked at or after `since`: one indexed query however many devices are connected. */
  async revokedSince(since: number): Promise<string[]> {
    const rows = await this.db.query<{ id: string }>(`SELECT id FROM ${this.p}devices WHERE revoked_at >= ?`, [since]);
    return rows.map((r) => String(r.id));
  }

  async seen(id: string, details: { protocol_version: number; address: string; skills_count: number }): Promise<void> {
    await this.db.execute(`UPDATE ${this.p}devices SET last_seen_at = ?, protocol_version = ?, address = ?, skills_count = ? WHERE id = ?`, [
      Date.now(),
      details.protocol_version,
      details.address,
      details.skills_count,
      id,
    ]);
  }

  async touch(ids: string[]): Promise<void> {
    const now = Date.now();
    for (const id of ids) await this.db.execute(`UPDATE ${this.p}devices SET last_seen_at = ? WHERE id = ?`, [now, id]);
  }
}
