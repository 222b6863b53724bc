import type { Remote } from '@aion/extension-api';
import { openNamespace } from '@aion/ext-storage/kit';
import type { MigrationStep, SqlValue, Statement, StorageApi } from '@aion/ext-storage';

/** Sessions' tables in their own namespace of aion.storage. */
export function migrations(p: string): MigrationStep[] {
  return [
    {
      name: '001-sessions-messages-counters',
      up: [
        `CREATE TABLE ${p}sessions (id VARCHAR(64) PRIMARY KEY, tenant_id VARCHAR(64) NOT NULL, owner_id VARCHAR(64) NOT NULL,
          title TEXT, title_updated_at BIGINT NOT NULL DEFAULT 0, message_count INTEGER NOT NULL DEFAULT 0, metadata TEXT,
          created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, last_activity_at BIGINT NOT NULL, expires_at BIGINT NOT NULL,
          deleted_at BIGINT, seq BIGINT NOT NULL)`,
        // Listing reads only live sessions, newest first.
        `CREATE INDEX ${p}sessions_list ON ${p}sessions (tenant_id, owner_id, created_at, id) WHERE deleted_at IS NULL`,
        `CREATE INDEX ${p}sessions_changes ON ${p}sessions (tenant_id, owner_id, seq)`,
        `CREATE INDEX ${p}sessions_expiry ON ${p}sessions (expires_at) WHERE deleted_at IS NULL`,
        `CREATE INDEX ${p}sessions_deleted ON ${p}sessions (deleted_at)`,
        `CREATE TABLE ${p}messages (id VARCHAR(64) PRIMARY KEY, session_id VARCHAR(64) NOT NULL, tenant_id VARCHAR(64) NOT NULL,
          owner_id VARCHAR(64) NOT NULL, role VARCHAR(16) NOT NULL, content TEXT NOT NULL, metadata TEXT,
          created_at BIGINT NOT NULL, seq BIGINT NOT NULL)`,
        `CREATE INDEX ${p}messages_session ON ${p}messages (session_id, seq)`,
        `CREATE INDEX ${p}messages_changes ON ${p}messages (tenant_id, owner_id, seq)`,
        // One change sequence per owner: every write takes the next numbers under this row's lock, so
        // a sync cursor (the last number a device saw) never skips a change that commits later.
        `CREATE TABLE ${p}change_counters (tenant_id VARCHAR(64) NOT NULL, owner_id VARCHAR(64) NOT NULL, seq BIGINT NOT NULL,
          PRIMARY KEY (tenant_id, owner_id))`,
      ],
    },
  ];
}

/** Who the rows belong to: the user a principal acts for, in its tenant. */
export interface Owner {
  tenant: string;
  id: string;
}

export interface SessionRow {
  id: string;
  tenant_id: string;
  owner_id: string;
  title: string | null;
  title_updated_at: number;
  message_count: number;
  metadata: string | null;
  created_at: number;
  updated_at: number;
  last_activity_at: number;
  expires_at: number;
  deleted_at: number | null;
  seq: number;
}

export interface MessageRow {
  id: string;
  session_id: string;
  tenant_id: string;
  owner_id: string;
  role: string;
  content: string;
  metadata: string | null;
  created_at: number;
  seq: number;
}

export interface NewMessage {
  id: string;
  role: string;
  content: string;
  metadata: string | null;
  created_at: number;
}

export type AppendOutcome = { kind: 'created' | 'duplicate'; message: MessageRow } | { kind: 'not_found' } | { kind: 'conflict' };

/** Every query of the sessions extension, through aion.storage. */
export class SessionStore {
  /** The owner's latest change number, as a sub-select (parameters: tenant, owner). */
  readonly top: string;

  constructor(
    readonly db: Remote<StorageApi>,
    readonly p: string,
    private readonly ttlMs: number,
  ) {
    this.top = `(SELECT seq FROM ${p}change_counters WHERE tenant_id = ? AND owner_id = ?)`;
  }

  static async open(db: Remote<StorageApi>, ttlMs: number): Promise<SessionStore> {
    return new SessionStore(db, await openNamespace(db, migrations), ttlMs);
  }

  /** Takes the owner's next `count` change numbers; statements after it in the batch read them from `top`. */
  bump(owner: Owner, count: number, returning = false): Statement {
    return {
      sql: `INSERT INTO ${this.p}change_counters (tenant_id, owner_id, seq) VALUES (?, ?, ?) ON CONFLICT (tenant_id, owner_id) DO UPDATE SET seq = ${this.p}change_counters.seq + excluded.seq${returning ? ' RETURNING seq' : ''}`,
      params: [owner.tenant, owner.id, count],
    };
  }

  expiresAt(now: number): number {
    return now + this.ttlMs;
  }

  async create(
    owner: Owner,
    input: { id: string; title: string | null; metadata: string | null },
    now: number,
  ): Promise<{ session: SessionRow; created: boolean }> {
    const results = await this.db.transaction([
      this.bump(owner, 1),
      {
        sql: `INSERT INTO ${this.p}sessions (id, tenant_id, owner_id, title, title_updated_at, message_count, metadata, created_at, updated_at, last_activity_at, expires_at, seq)
              VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ${this.top}) ON CONFLICT (id) DO NOTHING`,
        params: [
          input.id,
          owner.tenant,
          owner.id,
          input.title,
          input.title === null ? 0 : now,
          input.metadata,
          now,
          now,
          now,
          this.expiresAt(now),
          owner.tenant,
          owner.id,
        ],
      },
      { sql: `SELECT * FROM ${this.p}sessions WHERE id = ?`, params: [input.id] },
    ]);
    return { session: results[2]!.rows[0] as unknown as SessionRow, created: results[1]!.changes === 1 };
  }

  /** How many live sessions and messages the tenant holds, and how many users own them: numbers, never content. */
  async counts(tenant: string, now: number): Promise<{ sessions: number; messages: number; users_with_sessions: number }> {
    const [row] = await this.db.query(
      `SELECT COUNT(*) AS sessions, COALESCE(SUM(message_count), 0) AS messages, COUNT(DISTINCT owner_id) AS users FROM ${this.p}sessions WHERE tenant_id = ? AND deleted_at IS NULL AND expires_at > ?`,
      [tenant, now],
    );
    return { sessions: Number(row?.sessions ?? 0), messages: Number(row?.messages ?? 0), users_with_sessions: Number(row?.users ?? 0) };
  }

  private alive(): string {
    return `tenant_id = ? AND owner_id = ? AND deleted_at IS NULL AND expires_at > ?`;
  }

  /** Newest first; `after` is the (created_at, id) of the last session of the previous page. */
  async list(owner: Owner, limit: number, after: [number, string] | undefined, now: number): Promise<SessionRow[]> {
    const params: SqlValue[] = [owner.tenant, owner.id, now];
    let page = '';
    if (after) {
      // A row value, so both databases seek the (created_at, id) index instead of scanning from the top.
      page = ' AND (created_at, id) < (?, ?)';
      params.push(after[0], after[1]);
    }
    params.push(limit);
    return (await this.db.query(
      `SELECT * FROM ${this.p}sessions WHERE ${this.alive()}${page} ORDER BY created_at DESC, id DESC LIMIT ?`,
      params,
    )) as unknown as SessionRow[];
  }

  /** A live session with one page of its messages, in one round trip. */
  async get(
    owner: Owner,
    id: string,
    page: { after?: number; before?: number; limit: number },
    now: number,
  ): Promise<{ session: SessionRow; messages: MessageRow[] } | undefined> {
    const columns = 'id, session_id, tenant_id, owner_id, role, content, metadata, created_at, seq';
    // By session alone, so the (session_id, seq) index serves it; the session row above proves ownership.
    const messages: Statement =
      page.before !== undefined
        ? { sql: `SELECT ${columns} FROM ${this.p}messages WHERE session_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?`, params: [id, page.before, page.limit] }
        : { sql: `SELECT ${columns} FROM ${this.p}messages WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?`, params: [id, page.after ?? 0, page.limit] };
    const [session, rows] = await this.db.transaction([
      { sql: `SELECT * FROM ${this.p}sessions WHERE id = ? AND ${this.alive()}`, params: [id, owner.tenant, owner.id, now] },
      messages,
    ]);
    if (!session!.rows[0]) return undefined;
    const list = rows!.rows as unknown as MessageRow[];
    return { session: session!.rows[0] as unknown as SessionRow, messages: page.before !== undefined ? list.reverse() : list };
  }

  async isLive(owner: Owner, id: string, now: number): Promise<boolean> {
    return (await this.db.query(`SELECT 1 AS live FROM ${this.p}sessions WHERE id = ? AND ${this.alive()}`, [id, owner.tenant, owner.id, now])).length > 0;
  }

  async rename(owner: Owner, id: string, title: string | null, now: number): Promise<SessionRow | undefined> {
    const results = await this.db.transaction([
      this.bump(owner, 1),
      {
        sql: `UPDATE ${this.p}sessions SET title = ?, title_updated_at = ?, updated_at = ?, last_activity_at = ?, expires_at = ?, seq = ${this.top} WHERE id = ? AND ${this.alive()}`,
        params: [title, now, now, now, this.expiresAt(now), owner.tenant, owner.id, id, owner.tenant, owner.id, now],
      },
      { sql: `SELECT * FROM ${this.p}sessions WHERE id = ? AND ${this.alive()}`, params: [id, owner.tenant, owner.id, now] },
    ]);
    return results[1]!.changes === 1 ? (results[2]!.rows[0] as unknown as SessionRow) : undefined;
  }

  /** Soft delete: the row stays as a tombstone that sync hands to devices. */
  async remove(owner: Owner, id: string, now: number): Promise<boolean> {
    const results = await this.db.transaction([
      this.bump(owner, 1),
      {
        sql: `UPDATE ${this.p}sessions SET deleted_at = ?, updated_at = ?, seq = ${this.top} WHERE id = ? AND ${this.alive()}`,
        params: [now, now, owner.tenant, owner.id, id, owner.tenant, owner.id, now],
      },
    ]);
    return results[1]!.changes === 1;
  }

  /**
   * Appends a message and keeps the session's count, title and activity in step, in one transaction.
   * A message id seen before answers the stored message (a retried request creates nothing).
   */
  async append(owner: Owner, sessionId: string, message: NewMessage, derivedTitle: string | null, now: number): Promise<AppendOutcome> {
    const { p, top } = this;
    const results = await this.db.transaction([
      this.bump(owner, 1),
      {
        sql: `INSERT INTO ${p}messages (id, session_id, tenant_id, owner_id, role, content, metadata, created_at, seq)
              SELECT ?, s.id, s.tenant_id, s.owner_id, ?, ?, ?, CAST(? AS BIGINT), ${top}
              FROM ${p}sessions s WHERE s.id = ? AND s.tenant_id = ? AND s.owner_id = ? AND s.deleted_at IS NULL AND s.expires_at > ?
              ON CONFLICT (id) DO NOTHING`,
        params: [
          message.id,
          message.role,
          message.content,
          message.metadata,
          message.created_at,
          owner.tenant,
          owner.id,
          sessionId,
          owner.tenant,
          owner.id,
          now,
        ],
      },
      {
        // Counted only when the insert above happened: its row carries the number just taken.
        sql: `UPDATE ${p}sessions SET message_count = message_count + 1, title = COALESCE(title, ?), updated_at = ?, last_activity_at = ?, expires_at = ?, seq = ${top}
              WHERE id = ? AND EXISTS (SELECT 1 FROM ${p}messages m WHERE m.id = ? AND m.seq = ${top})`,
        params: [derivedTitle, now, now, this.expiresAt(now), owner.tenant, owner.id, sessionId, message.id, owner.tenant, owner.id],
      },
      {
        sql: `SELECT m.id, m.session_id, m.tenant_id, m.owner_id, m.role, m.content, m.metadata, m.created_at, m.seq, s.deleted_at AS session_deleted_at, s.expires_at AS session_expires_at
              FROM ${p}messages m LEFT JOIN ${p}sessions s ON s.id = m.session_id WHERE m.id = ?`,
        params: [message.id],
      },
    ]);
    const row = results[3]!.rows[0] as unknown as (MessageRow & { session_deleted_at: number | null; session_expires_at: number | null }) | undefined;
    if (!row) return { kind: 'not_found' };
    if (row.session_id !== sessionId || row.owner_id !== owner.id || row.tenant_id !== owner.tenant) return { kind: 'conflict' };
    const { session_deleted_at, session_expires_at, ...stored } = row;
    if (results[1]!.changes === 1) return { kind: 'created', message: stored };
    if (session_deleted_at !== null || (session_expires_at ?? 0) <= now) return { kind: 'not_found' };
    return { kind: 'duplicate', message: stored };
  }

  /** Turns sessions idle past their expiry into tombstones (so devices learn of it), a few hundred at a time. */
  async expire(now: number, batch = 500): Promise<Array<{ owner: Owner; ids: string[] }>> {
    const rows = (await this.db.query(
      `SELECT tenant_id, owner_id, id FROM ${this.p}sessions WHERE deleted_at IS NULL AND expires_at <= ? ORDER BY expires_at LIMIT ?`,
      [now, batch],
    )) as Array<{
      tenant_id: string;
      owner_id: string;
      id: string;
    }>;
    const byOwner = new Map<string, { owner: Owner; ids: string[] }>();
    for (const r of rows) {
      const key = `${r.tenant_id}\u0000${r.owner_id}`;
      if (!byOwner.has(key)) byOwner.set(key, { owner: { tenant: r.tenant_id, id: r.owner_id }, ids: [] });
      byOwner.get(key)!.ids.push(r.id);
    }
    for (const { owner, ids } of byOwner.values()) {
      await this.db.transaction([
        this.bump(owner, ids.length),
        ...ids.map((id, i) => ({
          sql: `UPDATE ${this.p}sessions SET deleted_at = ?, updated_at = ?, seq = ${this.top} - ? WHERE id = ? AND deleted_at IS NULL AND expires_at <= ?`,
          params: [now, now, owner.tenant, owner.id, ids.length - 1 - i, id, now] as SqlValue[],
        })),
      ]);
    }
    return [...byOwner.values()];
  }

  /** Removes tombstones (and their messages) older than the retention. */
  async purge(deletedBefore: number): Promise<number> {
    const [, sessions] = await this.db.transaction([
      { sql: `DELETE FROM ${this.p}messages WHERE session_id IN (SELECT id FROM ${this.p}sessions WHERE deleted_at < ?)`, params: [deletedBefore] },
      { sql: `DELETE FROM ${this.p}sessions WHERE deleted_at < ?`, params: [deletedBefore] },
    ]);
    return sessions!.changes;
  }
}
