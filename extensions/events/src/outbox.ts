import type { DeliveryState, EventEnvelope, SinkStatus, StoredEvent } from './api.js';
import type { SqlValue, StorageApi } from '@aion/ext-storage';

/** The part of `aion.storage`'s API the outbox uses. */
export type StorageSql = Pick<StorageApi, 'namespace' | 'migrate' | 'query' | 'execute' | 'transaction'>;

interface EventRow {
  id: string;
  type: string;
  source: string;
  tenant: string;
  event_key: string | null;
  payload: string;
  created_at: number | string;
}

export interface PendingEvent {
  event: EventEnvelope;
  attempts: number;
}

const iso = (ms: number | string | null | undefined): string | null => (ms === null || ms === undefined ? null : new Date(Number(ms)).toISOString());

function envelopeOf(r: EventRow): EventEnvelope {
  return { id: r.id, type: r.type, source: r.source, tenant_id: r.tenant, key: r.event_key, time: iso(r.created_at)!, data: JSON.parse(r.payload) };
}

/**
 * The outbox in aion.storage (SQLite by default, PostgreSQL when storage uses it): each event once, and
 * one delivery row per sink that should receive it, written in the same transaction. A sink's backlog is
 * its pending rows in event id order; kernels sharing the database take turns by a lease on the sink's row.
 */
export class Outbox {
  private t = { events: '', deliveries: '', sinks: '' };

  constructor(private readonly db: StorageSql) {}

  async open(): Promise<void> {
    const { prefix: p } = await this.db.namespace();
    this.t = { events: `${p}outbox`, deliveries: `${p}deliveries`, sinks: `${p}sinks` };
    const { events, deliveries, sinks } = this.t;
    await this.db.migrate([
      {
        name: 'events-1-outbox-deliveries-sinks',
        up: [
          `CREATE TABLE ${events} (id VARCHAR(36) PRIMARY KEY, type VARCHAR(128) NOT NULL, source VARCHAR(128) NOT NULL, tenant VARCHAR(64) NOT NULL, event_key VARCHAR(256), payload TEXT NOT NULL, created_at BIGINT NOT NULL)`,
          `CREATE INDEX ${events}_created ON ${events} (created_at)`,
          `CREATE TABLE ${deliveries} (sink VARCHAR(64) NOT NULL, event_id VARCHAR(36) NOT NULL, status VARCHAR(16) NOT NULL, attempts INTEGER NOT NULL, last_error TEXT, delivered_at BIGINT, PRIMARY KEY (sink, event_id))`,
          `CREATE INDEX ${deliveries}_backlog ON ${deliveries} (sink, status, event_id)`,
          `CREATE INDEX ${deliveries}_event ON ${deliveries} (event_id)`,
          `CREATE TABLE ${sinks} (name VARCHAR(64) PRIMARY KEY, delivered BIGINT NOT NULL, last_delivered_id VARCHAR(36), last_delivered_at BIGINT, attempts INTEGER NOT NULL,
            last_error TEXT, last_error_at BIGINT, next_attempt_at BIGINT, lease_owner VARCHAR(160), lease_until BIGINT)`,
        ],
      },
    ]);
  }

  async ensureSinks(names: string[]): Promise<void> {
    for (const name of names) {
      await this.db.execute(`INSERT INTO ${this.t.sinks} (name, delivered, attempts) VALUES (?, 0, 0) ON CONFLICT (name) DO NOTHING`, [name]);
    }
  }

  /** Stores the event and its deliveries in one transaction: when this resolves, nothing can lose it. */
  async append(event: EventEnvelope, createdAt: number, sinks: string[]): Promise<void> {
    const statements: Array<{ sql: string; params: SqlValue[] }> = [
      {
        sql: `INSERT INTO ${this.t.events} (id, type, source, tenant, event_key, payload, created_at) VALUES (?, ?, ?, ?, ?, ?, CAST(? AS BIGINT))`,
        params: [event.id, event.type, event.source, event.tenant_id, event.key, JSON.stringify(event.data), createdAt],
      },
    ];
    if (sinks.length > 0) {
      statements.push({
        sql: `INSERT INTO ${this.t.deliveries} (sink, event_id, status, attempts) VALUES ${sinks.map(() => `(?, ?, 'pending', 0)`).join(', ')}`,
        params: sinks.flatMap((s) => [s, event.id]),
      });
    }
    await this.db.transaction(statements);
  }

  /** The head of a sink's backlog, oldest first. */
  async pending(sink: string, limit: number): Promise<PendingEvent[]> {
    const { events, deliveries } = this.t;
    const rows = await this.db.query<EventRow & { attempts: number | string }>(
      `SELECT o.id, o.type, o.source, o.tenant, o.event_key, o.payload, o.created_at, d.attempts FROM ${deliveries} d JOIN ${events} o ON o.id = d.event_id
       WHERE d.sink = ? AND d.status = 'pending' ORDER BY d.event_id LIMIT ?`,
      [sink, limit],
    );
    return rows.map((r) => ({ event: envelopeOf(r), attempts: Number(r.attempts) }));
  }

  async markDelivered(sink: string, eventId: string, attempts: number, at: number): Promise<void> {
    await this.db.transaction([
      {
        sql: `UPDATE ${this.t.deliveries} SET status = 'delivered', attempts = ?, delivered_at = CAST(? AS BIGINT) WHERE sink = ? AND event_id = ?`,
        params: [attempts, at, sink, eventId],
      },
      {
        sql: `UPDATE ${this.t.sinks} SET delivered = delivered + 1, last_delivered_id = ?, last_delivered_at = CAST(? AS BIGINT), attempts = 0, next_attempt_at = NULL WHERE name = ?`,
        params: [eventId, at, sink],
      },
    ]);
  }

  async markFailed(
    sink: string,
    eventId: string,
    failure: { attempts: number; error: string; at: number; nextAttemptAt: number | null; dead: boolean },
  ): Promise<void> {
    await this.db.transaction([
      {
        sql: `UPDATE ${this.t.deliveries} SET status = ?, attempts = ?, last_error = ? WHERE sink = ? AND event_id = ?`,
        params: [failure.dead ? 'dead' : 'pending', failure.attempts, failure.error, sink, eventId],
      },
      {
        sql: `UPDATE ${this.t.sinks} SET attempts = ?, last_error = ?, last_error_at = CAST(? AS BIGINT), next_attempt_at = CAST(? AS BIGINT) WHERE name = ?`,
        params: [failure.dead ? 0 : failure.attempts, failure.error, failure.at, failure.nextAttemptAt, sink],
      },
    ]);
  }

  /** Takes or renews the lease on a sink: only the holder dispatches it. */
  async lease(sink: string, owner: string, leaseMs: number): Promise<boolean> {
    const now = Date.now();
    const { changes } = await this.db.execute(
      `UPDATE ${this.t.sinks} SET lease_owner = ?, lease_until = CAST(? AS BIGINT) WHERE name = ? AND (lease_owner IS NULL OR lease_owner = ? OR lease_until < CAST(? AS BIGINT))`,
      [owner, now + leaseMs, sink, owner, now],
    );
    return changes === 1;
  }

  async releaseLease(sink: string, owner: string): Promise<void> {
    await this.db.execute(`UPDATE ${this.t.sinks} SET lease_owner = NULL, lease_until = NULL WHERE name = ? AND lease_owner = ?`, [sink, owner]);
  }

  async sinkStatus(names: string[]): Promise<Map<string, Omit<SinkStatus, 'type' | 'enabled'>>> {
    const { sinks, deliveries } = this.t;
    const rows = await this.db.query<Record<string, string | number | null>>(
      `SELECT s.name, s.delivered, s.last_delivered_id, s.last_delivered_at, s.attempts, s.last_error, s.last_error_at, s.next_attempt_at,
        (SELECT COUNT(*) FROM ${deliveries} d WHERE d.sink = s.name AND d.status = 'pending') AS backlog,
        (SELECT COUNT(*) FROM ${deliveries} d WHERE d.sink = s.name AND d.status = 'dead') AS dead
       FROM ${sinks} s`,
    );
    const out = new Map<string, Omit<SinkStatus, 'type' | 'enabled'>>();
    for (const r of rows) {
      if (!names.includes(String(r.name))) continue;
      out.set(String(r.name), {
        name: String(r.name),
        backlog: Number(r.backlog),
        dead: Number(r.dead),
        delivered: Number(r.delivered),
        last_delivered_id: (r.last_delivered_id as string | null) ?? null,
        last_delivered_at: iso(r.last_delivered_at),
        attempts: Number(r.attempts),
        last_error: (r.last_error as string | null) ?? null,
        last_attempt_at: iso(r.last_error_at),
        next_attempt_at: iso(r.next_attempt_at),
      });
    }
    return out;
  }

  async list(filter: { after?: string; type?: string; limit: number }): Promise<StoredEvent[]> {
    const params: SqlValue[] = [filter.after ?? ''];
    let where = 'id > ?';
    if (filter.type?.endsWith('.*')) {
      const prefix = filter.type.slice(0, -1);
      where += ' AND substr(type, 1, ?) = ?';
      params.push(prefix.length, prefix);
    } else if (filter.type) {
      where += ' AND type = ?';
      params.push(filter.type);
    }
    params.push(filter.limit);
    const rows = await this.db.query<EventRow>(
      `SELECT id, type, source, tenant, event_key, payload, created_at FROM ${this.t.events} WHERE ${where} ORDER BY id LIMIT ?`,
      params,
    );
    if (rows.length === 0) return [];
    const states = await this.db.query<{
      sink: string;
      event_id: string;
      status: DeliveryState['status'];
      attempts: number | string;
      last_error: string | null;
      delivered_at: number | string | null;
    }>(
      `SELECT sink, event_id, status, attempts, last_error, delivered_at FROM ${this.t.deliveries} WHERE event_id IN (${rows.map(() => '?').join(', ')}) ORDER BY sink`,
      rows.map((r) => r.id),
    );
    const byEvent = new Map<string, DeliveryState[]>();
    for (const s of states) {
      const list = byEvent.get(s.event_id) ?? [];
      list.push({ sink: s.sink, status: s.status, attempts: Number(s.attempts), last_error: s.last_error, delivered_at: iso(s.delivered_at) });
      byEvent.set(s.event_id, list);
    }
    return rows.map((r) => ({ ...envelopeOf(r), deliveries: byEvent.get(r.id) ?? [] }));
  }

  /** Removes events published before `cutoff` that no sink still waits for (pending ones are never removed). */
  async purge(cutoff: number): Promise<number> {
    const { events, deliveries } = this.t;
    const settled = `SELECT id FROM ${events} o WHERE o.created_at < CAST(? AS BIGINT) AND NOT EXISTS (SELECT 1 FROM ${deliveries} d WHERE d.event_id = o.id AND d.status = 'pending')`;
    const [, removed] = await this.db.transaction([
      { sql: `DELETE FROM ${deliveries} WHERE event_id IN (${settled})`, params: [cutoff] },
      { sql: `DELETE FROM ${events} WHERE id IN (${settled})`, params: [cutoff] },
    ]);
    return removed!.changes;
  }
}
