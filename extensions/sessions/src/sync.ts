import { AionError, ErrorCodes } from '@aion/extension-api';
import type { SqlValue, Statement } from '@aion/ext-storage';
import type { MessageRow, Owner, SessionRow, SessionStore } from './sessionStore.js';
import type { PushedMessage, PushedSession, PushedTombstone, Rejection, SyncAnswer, SyncRequest } from './api.js';
import { checkId, checkMessage, checkTitle, deriveTitle, type SessionsConfiguration } from './validation.js';

/**
 * Offline sync for devices: a push of what the device wrote while away (sessions, messages with
 * the device's own ids, tombstones) and a pull of everything that changed since its cursor.
 *
 * - The cursor is the owner's change sequence, assigned by the hub; client clocks never order changes.
 * - Pushing the same batch again changes nothing: ids are unique, inserts skip ids already stored.
 * - A tombstone wins: nothing resurrects a deleted session, and writes to it are ignored.
 * - Titles resolve last-writer-wins by `title_updated_at`.
 */

/** The parameters of a message insert, in column order: what a created message is read back from. */
type MessageInsertParams = [
  id: string,
  session_id: string,
  tenant_id: string,
  owner_id: string,
  role: string,
  content: string,
  metadata: string | null,
  created_at: number,
];

export interface SyncResult {
  pushed: SyncAnswer['pushed'];
  rejected: Rejection[];
  /** What changed since `cursor`, in change order; deleted sessions come as tombstones. */
  changes: { sessions: SessionRow[]; messages: MessageRow[] };
  cursor: number;
  has_more: boolean;
  /** Messages created by this push (for live subscribers). */
  created: MessageRow[];
}

const IN_CHUNK = 400;

function list<T>(value: unknown, name: string, max: number): T[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new AionError(ErrorCodes.VALIDATION_FAILED, `${name} is a list`);
  if (value.length > max) throw new AionError(ErrorCodes.PAYLOAD_TOO_LARGE, `at most ${max} ${name} per sync; send the rest in another request`);
  return value as T[];
}

function optionalTime(value: unknown, name: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Number.isSafeInteger(value) || (value as number) < 0) throw new AionError(ErrorCodes.VALIDATION_FAILED, `${name} is milliseconds since the epoch`);
  return value as number;
}

export class SyncService {
  constructor(
    private readonly store: SessionStore,
    private readonly config: SessionsConfiguration,
  ) {}

  private async existing<T>(sql: (placeholders: string) => string, ids: string[]): Promise<T[]> {
    const out: T[] = [];
    for (let i = 0; i < ids.length; i += IN_CHUNK) {
      const chunk = ids.slice(i, i + IN_CHUNK);
      out.push(...((await this.store.db.query(sql(chunk.map(() => '?').join(', ')), chunk)) as unknown as T[]));
    }
    return out;
  }

  async sync(owner: Owner, body: unknown, now: number): Promise<SyncResult> {
    const request = (body ?? {}) as SyncRequest;
    const limits = this.config.sync;
    const cursor = optionalTime(request.cursor, 'cursor') ?? 0;
    const pageSize = Math.min(Math.max(Number(request.limit ?? limits.pageSize) || limits.pageSize, 1), limits.pageSize);
    const sessions = list<PushedSession>(request.sessions, 'sessions', limits.maxSessions);
    const messages = list<PushedMessage>(request.messages, 'messages', limits.maxMessages);
    const tombstones = list<PushedTombstone>(request.tombstones, 'tombstones', limits.maxSessions);
    const rejected: Rejection[] = [];
    const result: SyncResult = {
      pushed: { sessions: { created: 0, updated: 0, ignored: 0 }, messages: { created: 0, duplicates: 0, ignored: 0 }, tombstones: { applied: 0 } },
      rejected,
      changes: { sessions: [], messages: [] },
      cursor,
      has_more: false,
      created: [],
    };
    const reject = (type: Rejection['type'], id: unknown, code: string, message: string) => rejected.push({ type, id: String(id), code, message });

    // Validate each item on its own: one bad item is reported, the rest still sync.
    const goodSessions = new Map<string, PushedSession & { metadataText: string | null }>();
    for (const s of sessions) {
      try {
        checkId(s?.id, 'session id');
        const title = s.title === undefined ? undefined : checkTitle(s.title);
        const metadata = s.metadata === undefined || s.metadata === null ? null : JSON.stringify(s.metadata);
        goodSessions.set(s.id, {
          ...s,
          title,
          title_updated_at: optionalTime(s.title_updated_at, 'title_updated_at'),
          created_at: optionalTime(s.created_at, 'created_at'),
          metadataText: metadata,
        });
      } catch (err) {
        reject('session', s?.id, (err as AionError).code ?? ErrorCodes.VALIDATION_FAILED, (err as Error).message);
      }
    }
    const goodTombstones = new Set<string>();
    for (const t of tombstones) {
      try {
        goodTombstones.add(checkId(t?.id, 'tombstone id'));
      } catch (err) {
        reject('tombstone', t?.id, ErrorCodes.VALIDATION_FAILED, (err as Error).message);
      }
    }
    const goodMessages = new Map<string, ReturnType<typeof checkMessage> & { session_id: string }>();
    for (const m of messages) {
      try {
        const sessionId = checkId(m?.session_id, 'session_id');
        if (goodMessages.has(m.id)) continue;
        goodMessages.set(m.id, { ...checkMessage(m, now, { requireId: true, maxContentBytes: this.config.maxContentBytes }), session_id: sessionId });
      } catch (err) {
        reject('message', m?.id, (err as AionError).code ?? ErrorCodes.VALIDATION_FAILED, (err as Error).message);
      }
    }

    // What the hub already holds.
    const { p } = this.store;
    const sessionIds = [...new Set([...goodSessions.keys(), ...goodTombstones, ...[...goodMessages.values()].map((m) => m.session_id)])];
    const stored = new Map(
      (
        await this.existing<Pick<SessionRow, 'id' | 'tenant_id' | 'owner_id' | 'deleted_at' | 'expires_at' | 'title_updated_at'>>(
          (ph) => `SELECT id, tenant_id, owner_id, deleted_at, expires_at, title_updated_at FROM ${p}sessions WHERE id IN (${ph})`,
          sessionIds,
        )
      ).map((r) => [r.id, r]),
    );
    const storedMessages = new Map(
      (
        await this.existing<Pick<MessageRow, 'id' | 'session_id' | 'tenant_id' | 'owner_id'>>(
          (ph) => `SELECT id, session_id, tenant_id, owner_id FROM ${p}messages WHERE id IN (${ph})`,
          [...goodMessages.keys()],
        )
      ).map((r) => [r.id, r]),
    );
    const mine = (r: { tenant_id: string; owner_id: string }) => r.tenant_id === owner.tenant && r.owner_id === owner.id;
    // Expired and not yet swept counts as deleted: sync does not bring a session back either.
    const gone = (r: { deleted_at: number | null; expires_at: number } | undefined) => r !== undefined && (r.deleted_at !== null || r.expires_at <= now);
    // Another owner's id answers as if it did not exist.
    const foreign = (id: string) => {
      const r = stored.get(id);
      return r !== undefined && !mine(r);
    };

    // Plan first, number after: the i-th of n changes gets the number top - (n - 1 - i).
    type Kind = 'session.create' | 'session.update' | 'tombstone' | 'message' | 'count';
    const plan: Array<{ kind: Kind; render: (back: number, total: number) => Statement }> = [];
    const seq = `${this.store.top} - ?`;
    const ownerSeq = (back: number): SqlValue[] => [owner.tenant, owner.id, back];
    const expiresAt = this.store.expiresAt(now);
    const deletedHere = new Set<string>();
    const liveHere = new Set<string>();

    for (const s of goodSessions.values()) {
      if (foreign(s.id)) {
        reject('session', s.id, ErrorCodes.NOT_FOUND, `no session ${s.id}`);
        continue;
      }
      const existing = stored.get(s.id);
      if (goodTombstones.has(s.id) || gone(existing)) {
        result.pushed.sessions.ignored++;
        continue;
      }
      liveHere.add(s.id);
      const title = s.title ?? null;
      const titleAt = s.title === undefined ? 0 : (s.title_updated_at ?? s.created_at ?? now);
      if (!existing) {
        const createdAt = s.created_at ?? now;
        plan.push({
          kind: 'session.create',
          render: (back) => ({
            sql: `INSERT INTO ${p}sessions (id, tenant_id, owner_id, title, title_updated_at, message_count, metadata, created_at, updated_at, last_activity_at, expires_at, seq)
                  VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ${seq}) ON CONFLICT (id) DO NOTHING`,
            params: [s.id, owner.tenant, owner.id, title, titleAt, s.metadataText, createdAt, now, now, expiresAt, ...ownerSeq(back)],
          }),
        });
      } else if (s.title !== undefined && titleAt > existing.title_updated_at) {
        plan.push({
          kind: 'session.update',
          render: (back) => ({
            sql: `UPDATE ${p}sessions SET title = ?, title_updated_at = ?, updated_at = ?, last_activity_at = ?, expires_at = ?, seq = ${seq}
                  WHERE id = ? AND tenant_id = ? AND owner_id = ? AND deleted_at IS NULL AND title_updated_at < ?`,
            params: [title, titleAt, now, now, expiresAt, ...ownerSeq(back), s.id, owner.tenant, owner.id, titleAt],
          }),
        });
      } else result.pushed.sessions.ignored++;
    }

    for (const id of goodTombstones) {
      if (foreign(id)) {
        reject('tombstone', id, ErrorCodes.NOT_FOUND, `no session ${id}`);
        continue;
      }
      const existing = stored.get(id);
      deletedHere.add(id);
      if (existing?.deleted_at != null) continue;
      plan.push({
        kind: 'tombstone',
        render: (back) =>
          existing
            ? {
                sql: `UPDATE ${p}sessions SET deleted_at = ?, updated_at = ?, seq = ${seq} WHERE id = ? AND tenant_id = ? AND owner_id = ? AND deleted_at IS NULL`,
                params: [now, now, ...ownerSeq(back), id, owner.tenant, owner.id],
              }
            : {
                // Created and deleted while away: the tombstone stays so a stale copy cannot bring it back.
                sql: `INSERT INTO ${p}sessions (id, tenant_id, owner_id, title, title_updated_at, message_count, metadata, created_at, updated_at, last_activity_at, expires_at, deleted_at, seq)
                      VALUES (?, ?, ?, NULL, 0, 0, NULL, ?, ?, ?, ?, ?, ${seq}) ON CONFLICT (id) DO NOTHING`,
                params: [id, owner.tenant, owner.id, now, now, now, expiresAt, now, ...ownerSeq(back)],
              },
      });
    }

    const touched = new Map<string, string | null>();
    for (const m of goodMessages.values()) {
      const already = storedMessages.get(m.id);
      if (already) {
        if (mine(already) && already.session_id === m.session_id) result.pushed.messages.duplicates++;
        else reject('message', m.id, ErrorCodes.CONFLICT, `message id ${m.id} is already used`);
        continue;
      }
      if (foreign(m.session_id)) {
        reject('message', m.id, ErrorCodes.NOT_FOUND, `no session ${m.session_id}`);
        continue;
      }
      const session = stored.get(m.session_id);
      const live = !deletedHere.has(m.session_id) && (liveHere.has(m.session_id) || (session !== undefined && !gone(session)));
      if (!live) {
        if (session || deletedHere.has(m.session_id)) result.pushed.messages.ignored++;
        else reject('message', m.id, ErrorCodes.NOT_FOUND, `no session ${m.session_id}: push the session with its messages`);
        continue;
      }
      plan.push({
        kind: 'message',
        render: (back) => ({
          sql: `INSERT INTO ${p}messages (id, session_id, tenant_id, owner_id, role, content, metadata, created_at, seq)
                SELECT ?, ?, ?, ?, ?, ?, ?, CAST(? AS BIGINT), ${seq}
                WHERE EXISTS (SELECT 1 FROM ${p}sessions WHERE id = ? AND tenant_id = ? AND owner_id = ? AND deleted_at IS NULL AND expires_at > ?)
                ON CONFLICT (id) DO NOTHING`,
          params: [
            m.id,
            m.session_id,
            owner.tenant,
            owner.id,
            m.role,
            m.content,
            m.metadata,
            m.created_at,
            ...ownerSeq(back),
            m.session_id,
            owner.tenant,
            owner.id,
            now,
          ],
        }),
      });
      if (!touched.has(m.session_id)) touched.set(m.session_id, null);
      if (touched.get(m.session_id) === null && m.role === 'user') touched.set(m.session_id, deriveTitle(m.content, this.config.titleLength));
    }
    // Count, derived title and activity of each session that received a new message in this push.
    for (const [sessionId, title] of touched) {
      plan.push({
        kind: 'count',
        render: (back, total) => ({
          sql: `UPDATE ${p}sessions SET message_count = (SELECT COUNT(*) FROM ${p}messages m WHERE m.session_id = ?), title = COALESCE(title, ?),
                  updated_at = ?, last_activity_at = ?, expires_at = ?, seq = ${seq}
                WHERE id = ? AND deleted_at IS NULL AND EXISTS (SELECT 1 FROM ${p}messages m WHERE m.session_id = ? AND m.seq > ${seq})`,
          params: [sessionId, title, now, now, expiresAt, ...ownerSeq(back), sessionId, sessionId, ...ownerSeq(total)],
        }),
      });
    }

    if (plan.length > 0) {
      const total = plan.length;
      const rendered = plan.map((step, i) => step.render(total - 1 - i, total));
      const results = await this.store.db.transaction([this.store.bump(owner, total, true), ...rendered]);
      const top = Number(results[0]!.rows[0]!.seq);
      plan.forEach((step, i) => {
        const applied = results[i + 1]!.changes > 0;
        if (step.kind === 'message' && applied) {
          const [id, session_id, tenant_id, owner_id, role, content, metadata, created_at] = rendered[i]!.params as MessageInsertParams;
          result.created.push({ id, session_id, tenant_id, owner_id, role, content, metadata, created_at, seq: top - (total - 1 - i) });
        }
        if (step.kind === 'session.create') applied ? result.pushed.sessions.created++ : result.pushed.sessions.ignored++;
        else if (step.kind === 'session.update') applied ? result.pushed.sessions.updated++ : result.pushed.sessions.ignored++;
        else if (step.kind === 'tombstone') result.pushed.tombstones.applied += applied ? 1 : 0;
        else if (step.kind === 'message') applied ? result.pushed.messages.created++ : result.pushed.messages.duplicates++;
      });
    }

    await this.pull(owner, cursor, pageSize, result);
    return result;
  }

  /** Changes since `cursor`, up to a cursor every change at or below which has committed. */
  private async pull(owner: Owner, cursor: number, pageSize: number, result: SyncResult): Promise<void> {
    const { p } = this.store;
    // The counter first: a change numbered at or below it has committed, so the reads that follow see it.
    const [counter] = await this.store.db.query(`SELECT seq FROM ${p}change_counters WHERE tenant_id = ? AND owner_id = ?`, [owner.tenant, owner.id]);
    const top = Number(counter?.seq ?? 0);
    if (top <= cursor) {
      result.cursor = Math.max(cursor, top);
      return;
    }
    const [sessions, messages] = await this.store.db.transaction([
      {
        sql: `SELECT * FROM ${p}sessions WHERE tenant_id = ? AND owner_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?`,
        params: [owner.tenant, owner.id, cursor, top, pageSize],
      },
      {
        sql: `SELECT m.id, m.session_id, m.tenant_id, m.owner_id, m.role, m.content, m.metadata, m.created_at, m.seq FROM ${p}messages m JOIN ${p}sessions s ON s.id = m.session_id
              WHERE m.tenant_id = ? AND m.owner_id = ? AND m.seq > ? AND m.seq <= ? AND s.deleted_at IS NULL ORDER BY m.seq LIMIT ?`,
        params: [owner.tenant, owner.id, cursor, top, pageSize],
      },
    ]);
    const s = sessions!.rows as unknown as SessionRow[];
    const m = messages!.rows as unknown as MessageRow[];
    let upTo = top;
    if (s.length === pageSize) upTo = Math.min(upTo, s[s.length - 1]!.seq);
    if (m.length === pageSize) upTo = Math.min(upTo, m[m.length - 1]!.seq);
    result.changes = { sessions: s.filter((r) => r.seq <= upTo), messages: m.filter((r) => r.seq <= upTo) };
    result.cursor = upTo;
    result.has_more = upTo < top;
  }
}
