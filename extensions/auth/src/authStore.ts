import { randomUUID } from 'node:crypto';
import { AionError, ErrorCodes, type Remote } from '@aion/extension-api';
import { NamespaceStore, openNamespace } from '@aion/ext-storage/kit';
import type { MigrationStep, SqlValue, StorageApi } from '@aion/ext-storage';
import type { SubjectType } from './tokens.js';

/** Auth's tables, in its own namespace of aion.storage. Every row carries a tenant. */
export function migrations(p: string): MigrationStep[] {
  return [
    {
      name: '001-users-devices-keys-tokens-audit',
      up: [
        `CREATE TABLE ${p}users (id VARCHAR(36) PRIMARY KEY, tenant_id VARCHAR(64) NOT NULL, username VARCHAR(128) NOT NULL,
          password_hash TEXT NOT NULL, scopes TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0, created_at BIGINT NOT NULL,
          updated_at BIGINT NOT NULL)`,
        `CREATE UNIQUE INDEX ${p}users_username ON ${p}users (tenant_id, username)`,
        `CREATE TABLE ${p}devices (id VARCHAR(36) PRIMARY KEY, tenant_id VARCHAR(64) NOT NULL, owner_id VARCHAR(36) NOT NULL,
          name VARCHAR(200) NOT NULL, scopes TEXT NOT NULL, created_at BIGINT NOT NULL, last_seen_at BIGINT, revoked_at BIGINT)`,
        `CREATE INDEX ${p}devices_owner ON ${p}devices (tenant_id, owner_id)`,
        `CREATE TABLE ${p}api_keys (id VARCHAR(36) PRIMARY KEY, tenant_id VARCHAR(64) NOT NULL, owner_id VARCHAR(36) NOT NULL,
          name VARCHAR(200) NOT NULL, prefix VARCHAR(32) NOT NULL, key_hash VARCHAR(64) NOT NULL, scopes TEXT NOT NULL,
          created_at BIGINT NOT NULL, expires_at BIGINT, last_used_at BIGINT, revoked_at BIGINT)`,
        `CREATE UNIQUE INDEX ${p}api_keys_prefix ON ${p}api_keys (prefix)`,
        `CREATE INDEX ${p}api_keys_owner ON ${p}api_keys (tenant_id, owner_id)`,
        `CREATE TABLE ${p}refresh_tokens (id VARCHAR(36) PRIMARY KEY, family_id VARCHAR(36) NOT NULL,
          tenant_id VARCHAR(64) NOT NULL, subject_type VARCHAR(16) NOT NULL, subject_id VARCHAR(36) NOT NULL,
          owner_id VARCHAR(36) NOT NULL, scopes TEXT NOT NULL, token_hash VARCHAR(64) NOT NULL, created_at BIGINT NOT NULL,
          expires_at BIGINT NOT NULL, used_at BIGINT, replaced_by VARCHAR(36), revoked_at BIGINT)`,
        `CREATE INDEX ${p}refresh_tokens_family ON ${p}refresh_tokens (family_id)`,
        `CREATE INDEX ${p}refresh_tokens_subject ON ${p}refresh_tokens (tenant_id, subject_type, subject_id)`,
        `CREATE INDEX ${p}refresh_tokens_expires ON ${p}refresh_tokens (expires_at)`,
        `CREATE TABLE ${p}audit_events (id VARCHAR(36) PRIMARY KEY, tenant_id VARCHAR(64) NOT NULL, at BIGINT NOT NULL,
          event VARCHAR(64) NOT NULL, actor VARCHAR(128), subject VARCHAR(128), ip VARCHAR(64), details TEXT)`,
        `CREATE INDEX ${p}audit_events_at ON ${p}audit_events (tenant_id, at)`,
        `CREATE TABLE ${p}settings (name VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL, created_at BIGINT NOT NULL)`,
      ],
    },
    {
      // Every start reads the revocations of the last access-token lifetime.
      name: '002-refresh-tokens-revoked-at',
      up: [`CREATE INDEX ${p}refresh_tokens_revoked ON ${p}refresh_tokens (revoked_at)`],
    },
  ];
}

export interface UserRow {
  id: string;
  tenant_id: string;
  username: string;
  password_hash: string;
  scopes: string[];
  disabled: boolean;
  created_at: number;
  updated_at: number;
}

export interface DeviceRow {
  id: string;
  tenant_id: string;
  owner_id: string;
  name: string;
  scopes: string[];
  created_at: number;
  last_seen_at: number | null;
  revoked_at: number | null;
}

export interface ApiKeyRow {
  id: string;
  tenant_id: string;
  owner_id: string;
  name: string;
  prefix: string;
  key_hash: string;
  scopes: string[];
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
  revoked_at: number | null;
}

export interface RefreshRow {
  id: string;
  family_id: string;
  tenant_id: string;
  subject_type: SubjectType;
  subject_id: string;
  owner_id: string;
  scopes: string[];
  token_hash: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  replaced_by: string | null;
  revoked_at: number | null;
}

export interface AuditEvent {
  tenant_id: string;
  event: string;
  actor?: string | null;
  subject?: string | null;
  ip?: string | null;
  details?: Record<string, unknown>;
}

type Raw = Record<string, SqlValue>;

const withScopes = <T>(row: Raw | undefined): T | undefined => (row ? ({ ...row, scopes: JSON.parse(String(row.scopes)) } as T) : undefined);

export function isUniqueViolation(err: unknown): boolean {
  return (err as { details?: { constraint?: string } })?.details?.constraint === 'unique';
}

/** Every query auth makes, through aion.storage. */
export class AuthStore extends NamespaceStore {
  static async open(db: Remote<StorageApi>): Promise<AuthStore> {
    return new AuthStore(db, await openNamespace(db, migrations));
  }

  private async one<T>(sql: string, params: SqlValue[]): Promise<T | undefined> {
    return withScopes<T>((await this.db.query<Raw>(sql, params))[0]);
  }

  /** A setting written once by whichever instance gets there first. */
  async settingOrCreate(name: string, create: () => string): Promise<string> {
    await this.db.execute(`INSERT INTO ${this.p}settings (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`, [
      name,
      create(),
      Date.now(),
    ]);
    const [row] = await this.db.query<{ value: string }>(`SELECT value FROM ${this.p}settings WHERE name = ?`, [name]);
    return row!.value;
  }

  // Users

  async countUsers(tenantId: string): Promise<number> {
    const [row] = await this.db.query<{ n: number }>(`SELECT COUNT(*) AS n FROM ${this.p}users WHERE tenant_id = ?`, [tenantId]);
    return Number(row?.n ?? 0);
  }

  /** How many users the tenant has, and how many of them are disabled: numbers, never names. */
  async userCounts(tenantId: string): Promise<{ users: number; disabled: number }> {
    const [row] = await this.db.query<{ n: number; d: number | null }>(`SELECT COUNT(*) AS n, SUM(disabled) AS d FROM ${this.p}users WHERE tenant_id = ?`, [
      tenantId,
    ]);
    return { users: Number(row?.n ?? 0), disabled: Number(row?.d ?? 0) };
  }

  async createUser(user: { tenant_id: string; username: string; password_hash: string; scopes: string[] }): Promise<UserRow> {
    const now = Date.now();
    const row = { id: randomUUID(), ...user, disabled: false, created_at: now, updated_at: now };
    try {
      await this.db.execute(
        `INSERT INTO ${this.p}users (id, tenant_id, username, password_hash, scopes, disabled, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?)`,
        [row.id, row.tenant_id, row.username, row.password_hash, JSON.stringify(row.scopes), now, now],
      );
    } catch (err) {
      if (isUniqueViolation(err)) throw new AionError(ErrorCodes.CONFLICT, `a user named ${user.username} already exists`);
      throw err;
    }
    return row;
  }

  private user(row: UserRow | undefined): UserRow | undefined {
    return row ? { ...row, disabled: Boolean(row.disabled) } : undefined;
  }

  async findUserByName(tenantId: string, username: string): Promise<UserRow | undefined> {
    return this.user(await this.one<UserRow>(`SELECT * FROM ${this.p}users WHERE tenant_id = ? AND username = ?`, [tenantId, username]));
  }

  async findUser(tenantId: string, id: string): Promise<UserRow | undefined> {
    return this.user(await this.one<UserRow>(`SELECT * FROM ${this.p}users WHERE tenant_id = ? AND id = ?`, [tenantId, id]));
  }

  async listUsers(tenantId: string): Promise<UserRow[]> {
    const rows = await this.db.query<Raw>(`SELECT * FROM ${this.p}users WHERE tenant_id = ? ORDER BY username`, [tenantId]);
    return rows.map((r) => this.user(withScopes<UserRow>(r))!);
  }

  async setPassword(tenantId: string, id: string, passwordHash: string): Promise<void> {
    await this.db.execute(`UPDATE ${this.p}users SET password_hash = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`, [
      passwordHash,
      Date.now(),
      tenantId,
      id,
    ]);
  }

  // Devices

  async createDevice(device: { tenant_id: string; owner_id: string; name: string; scopes: string[] }): Promise<DeviceRow> {
    const row: DeviceRow = { id: randomUUID(), ...device, created_at: Date.now(), last_seen_at: null, revoked_at: null };
    await this.db.execute(`INSERT INTO ${this.p}devices (id, tenant_id, owner_id, name, scopes, created_at) VALUES (?, ?, ?, ?, ?, ?)`, [
      row.id,
      row.tenant_id,
      row.owner_id,
      row.name,
      JSON.stringify(row.scopes),
      row.created_at,
    ]);
    return row;
  }

  async listDevices(tenantId: string, ownerId: string): Promise<DeviceRow[]> {
    const rows = await this.db.query<Raw>(
      `SELECT * FROM ${this.p}devices WHERE tenant_id = ? AND owner_id = ? AND revoked_at IS NULL ORDER BY created_at, id`,
      [tenantId, ownerId],
    );
    return rows.map((r) => withScopes<DeviceRow>(r)!);
  }

  async findDevice(tenantId: string, id: string): Promise<DeviceRow | undefined> {
    return this.one<DeviceRow>(`SELECT * FROM ${this.p}devices WHERE tenant_id = ? AND id = ?`, [tenantId, id]);
  }

  async renameDevice(tenantId: string, ownerId: string, id: string, name: string): Promise<boolean> {
    const { changes } = await this.db.execute(`UPDATE ${this.p}devices SET name = ? WHERE tenant_id = ? AND owner_id = ? AND id = ? AND revoked_at IS NULL`, [
      name,
      tenantId,
      ownerId,
      id,
    ]);
    return changes > 0;
  }

  /** Revokes the device and every refresh token it holds. */
  async revokeDevice(tenantId: string, ownerId: string, id: string): Promise<boolean> {
    const now = Date.now();
    const [device] = await this.db.transaction([
      {
        sql: `UPDATE ${this.p}devices SET revoked_at = ? WHERE tenant_id = ? AND owner_id = ? AND id = ? AND revoked_at IS NULL`,
        params: [now, tenantId, ownerId, id],
      },
      {
        sql: `UPDATE ${this.p}refresh_tokens SET revoked_at = ? WHERE tenant_id = ? AND subject_type = 'device' AND subject_id = ? AND owner_id = ? AND revoked_at IS NULL`,
        params: [now, tenantId, id, ownerId],
      },
    ]);
    return device!.changes > 0;
  }

  async touchDevice(id: string): Promise<void> {
    await this.db.execute(`UPDATE ${this.p}devices SET last_seen_at = ? WHERE id = ?`, [Date.now(), id]);
  }

  // API keys

  async createApiKey(key: {
    tenant_id: string;
    owner_id: string;
    name: string;
    prefix: string;
    key_hash: string;
    scopes: string[];
    expires_at: number | null;
  }): Promise<ApiKeyRow> {
    const row: ApiKeyRow = { id: randomUUID(), ...key, created_at: Date.now(), last_used_at: null, revoked_at: null };
    await this.db.execute(
      `INSERT INTO ${this.p}api_keys (id, tenant_id, owner_id, name, prefix, key_hash, scopes, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [row.id, row.tenant_id, row.owner_id, row.name, row.prefix, row.key_hash, JSON.stringify(row.scopes), row.created_at, row.expires_at],
    );
    return row;
  }

  async listApiKeys(tenantId: string, ownerId: string): Promise<ApiKeyRow[]> {
    const rows = await this.db.query<Raw>(
      `SELECT * FROM ${this.p}api_keys WHERE tenant_id = ? AND owner_id = ? AND revoked_at IS NULL ORDER BY created_at, id`,
      [tenantId, ownerId],
    );
    return rows.map((r) => withScopes<ApiKeyRow>(r)!);
  }

  /** The key with whether its owner is disabled (`owner_disabled`), in one query: this runs on every request. */
  async findApiKeyByPrefix(prefix: string): Promise<(ApiKeyRow & { owner_disabled: number }) | undefined> {
    return this.one<ApiKeyRow & { owner_disabled: number }>(
      `SELECT k.*, COALESCE(u.disabled, 1) AS owner_disabled FROM ${this.p}api_keys k LEFT JOIN ${this.p}users u ON u.id = k.owner_id AND u.tenant_id = k.tenant_id WHERE k.prefix = ?`,
      [prefix],
    );
  }

  async findApiKey(tenantId: string, id: string): Promise<(ApiKeyRow & { owner_disabled: number }) | undefined> {
    return this.one<ApiKeyRow & { owner_disabled: number }>(
      `SELECT k.*, COALESCE(u.disabled, 1) AS owner_disabled FROM ${this.p}api_keys k LEFT JOIN ${this.p}users u ON u.id = k.owner_id AND u.tenant_id = k.tenant_id WHERE k.tenant_id = ? AND k.id = ?`,
      [tenantId, id],
    );
  }

  async revokeApiKey(tenantId: string, ownerId: string, id: string): Promise<boolean> {
    const { changes } = await this.db.execute(
      `UPDATE ${this.p}api_keys SET revoked_at = ? WHERE tenant_id = ? AND owner_id = ? AND id = ? AND revoked_at IS NULL`,
      [Date.now(), tenantId, ownerId, id],
    );
    return changes > 0;
  }

  async touchApiKey(id: string): Promise<void> {
    await this.db.execute(`UPDATE ${this.p}api_keys SET last_used_at = ? WHERE id = ?`, [Date.now(), id]);
  }

  // Refresh tokens

  async insertRefresh(row: Omit<RefreshRow, 'used_at' | 'replaced_by' | 'revoked_at'>): Promise<void> {
    await this.db.execute(
      `INSERT INTO ${this.p}refresh_tokens (id, family_id, tenant_id, subject_type, subject_id, owner_id, scopes, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [
        row.id,
        row.family_id,
        row.tenant_id,
        row.subject_type,
        row.subject_id,
        row.owner_id,
        JSON.stringify(row.scopes),
        row.token_hash,
        row.created_at,
        row.expires_at,
      ],
    );
  }

  async findRefresh(id: string): Promise<RefreshRow | undefined> {
    return this.one<RefreshRow>(`SELECT * FROM ${this.p}refresh_tokens WHERE id = ?`, [id]);
  }

  /**
   * Marks `oldId` used and inserts its successor, in one transaction. The successor is written only
   * if this call was the one that marked the old token: false means someone used it first (reuse).
   */
  async rotateRefresh(oldId: string, next: Omit<RefreshRow, 'used_at' | 'replaced_by' | 'revoked_at'>): Promise<boolean> {
    const now = Date.now();
    const [marked] = await this.db.transaction([
      {
        sql: `UPDATE ${this.p}refresh_tokens SET used_at = ?, replaced_by = ? WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL`,
        params: [now, next.id, oldId],
      },
      {
        sql: `INSERT INTO ${this.p}refresh_tokens (id, family_id, tenant_id, subject_type, subject_id, owner_id, scopes, token_hash, created_at, expires_at)
              SELECT ?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS BIGINT), CAST(? AS BIGINT) WHERE EXISTS (SELECT 1 FROM ${this.p}refresh_tokens WHERE id = ? AND replaced_by = ?)`,
        params: [
          next.id,
          next.family_id,
          next.tenant_id,
          next.subject_type,
          next.subject_id,
          next.owner_id,
          JSON.stringify(next.scopes),
          next.token_hash,
          next.created_at,
          next.expires_at,
          oldId,
          next.id,
        ],
      },
    ]);
    return marked!.changes === 1;
  }

  async revokeFamily(familyId: string): Promise<number> {
    const { changes } = await this.db.execute(`UPDATE ${this.p}refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL`, [
      Date.now(),
      familyId,
    ]);
    return changes;
  }

  /** Revokes every live sign-in of a user but one; answers the families it ended. */
  async revokeOtherSignIns(tenantId: string, userId: string, keepFamily: string | undefined): Promise<string[]> {
    const rows = await this.db.query<{ family_id: string }>(
      `SELECT DISTINCT family_id FROM ${this.p}refresh_tokens WHERE tenant_id = ? AND subject_type = 'user' AND subject_id = ? AND revoked_at IS NULL AND family_id <> ?`,
      [tenantId, userId, keepFamily ?? ''],
    );
    const families = rows.map((r) => r.family_id);
    if (families.length === 0) return [];
    await this.db.execute(
      `UPDATE ${this.p}refresh_tokens SET revoked_at = ? WHERE family_id IN (${families.map(() => '?').join(', ')}) AND revoked_at IS NULL`,
      [Date.now(), ...families],
    );
    return families;
  }

  /** Sign-ins and devices revoked after `since`, with when. */
  async revokedSince(since: number): Promise<{ families: Array<{ id: string; revoked_at: number }>; devices: Array<{ id: string; revoked_at: number }> }> {
    const [families, devices] = await Promise.all([
      this.db.query<{ id: string; revoked_at: SqlValue }>(
        `SELECT family_id AS id, MAX(revoked_at) AS revoked_at FROM ${this.p}refresh_tokens WHERE revoked_at > ? GROUP BY family_id`,
        [since],
      ),
      this.db.query<{ id: string; revoked_at: SqlValue }>(`SELECT id, revoked_at FROM ${this.p}devices WHERE revoked_at > ?`, [since]),
    ]);
    const withTime = (rows: Array<{ id: string; revoked_at: SqlValue }>) => rows.map((r) => ({ id: r.id, revoked_at: Number(r.revoked_at) }));
    return { families: withTime(families), devices: withTime(devices) };
  }

  // Audit

  async audit(event: AuditEvent): Promise<void> {
    await this.db.execute(`INSERT INTO ${this.p}audit_events (id, tenant_id, at, event, actor, subject, ip, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, [
      randomUUID(),
      event.tenant_id,
      Date.now(),
      event.event,
      event.actor ?? null,
      event.subject ?? null,
      event.ip ?? null,
      event.details ? JSON.stringify(event.details) : null,
    ]);
  }

  async listAudit(tenantId: string, options: { before?: number; limit: number; event?: string }): Promise<Array<Record<string, unknown>>> {
    const byEvent = options.event ? ' AND event = ?' : '';
    const rows = await this.db.query<Raw>(
      `SELECT id, at, event, actor, subject, ip, details FROM ${this.p}audit_events WHERE tenant_id = ? AND at < ?${byEvent} ORDER BY at DESC, id DESC LIMIT ?`,
      [tenantId, options.before ?? Number.MAX_SAFE_INTEGER, ...(options.event ? [options.event] : []), options.limit],
    );
    return rows.map((r) => ({ ...r, details: r.details ? JSON.parse(String(r.details)) : null }));
  }

  /** Drops refresh tokens once no access token of theirs can be valid, and audit events past retention. */
  async purge(auditRetentionMs: number, accessTokenTtlMs: number): Promise<void> {
    const now = Date.now();
    await this.db.transaction([
      { sql: `DELETE FROM ${this.p}refresh_tokens WHERE expires_at < ?`, params: [now - accessTokenTtlMs] },
      { sql: `DELETE FROM ${this.p}audit_events WHERE at < ?`, params: [now - auditRetentionMs] },
    ]);
  }
}
