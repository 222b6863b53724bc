import { hostname } from 'node:os';
import type { JobLogLine, JobStatus, JobView } from '../api.js';
import { JobsErrorCodes } from '../api.js';
import { backoffDelay, iso, jobErrorOf, type NewJob, type QueueSettings } from '../model.js';
import type { Consumer, EnqueueOutcome, JobBackend, JobExecutor, QueueStats, StoredHeartbeat } from './backend.js';
import type { SqlValue, StorageApi } from '@aion/ext-storage';

/** The part of `aion.storage`'s API this backend uses. */
export type StorageSql = Pick<StorageApi, 'namespace' | 'migrate' | 'query' | 'execute' | 'transaction'>;

interface JobRow {
  id: string;
  queue: string;
  status: JobStatus;
  priority: number | string;
  payload: string;
  result: string | null;
  error_code: string | null;
  error_message: string | null;
  progress: number | string;
  stage: string | null;
  attempts_made: number | string;
  max_attempts: number | string;
  backoff: string;
  timeout_ms: number | string | null;
  tags: string;
  enqueued_by: string | null;
  owner_sub: string | null;
  owner_tenant: string | null;
  worker: string | null;
  created_at: number | string;
  started_at: number | string | null;
  finished_at: number | string | null;
  updated_at: number | string;
}

const COLUMNS =
  'id, queue, status, priority, payload, result, error_code, error_message, progress, stage, attempts_made, max_attempts, backoff, timeout_ms, tags, enqueued_by, owner_sub, owner_tenant, worker, created_at, started_at, finished_at, updated_at';
const num = (v: number | string | null): number | null => (v === null ? null : Number(v));

function viewOf(r: JobRow): JobView {
  return {
    id: r.id,
    queue: r.queue,
    status: r.status,
    progress: Number(r.progress),
    stage: r.stage,
    payload: JSON.parse(r.payload),
    result: r.result === null ? null : JSON.parse(r.result),
    error: r.error_code ? { code: r.error_code, message: r.error_message ?? '' } : null,
    priority: Number(r.priority),
    attempts: { made: Number(r.attempts_made), max: Number(r.max_attempts) },
    tags: JSON.parse(r.tags),
    enqueued_by: r.enqueued_by,
    owner: r.owner_sub ? { sub: r.owner_sub, tenant_id: r.owner_tenant ?? 'default' } : null,
    worker: r.worker,
    timeout_ms: num(r.timeout_ms),
    created_at: iso(Number(r.created_at))!,
    started_at: iso(num(r.started_at)),
    finished_at: iso(num(r.finished_at)),
    updated_at: iso(Number(r.updated_at))!,
  };
}

/** What `viewOf` reads back for a row `enqueue` has just inserted (the payload as stored: JSON round trip). */
function createdView(job: NewJob, payload: string): JobView {
  const at = iso(job.createdAt)!;
  return {
    id: job.id,
    queue: job.queue,
    status: 'queued',
    progress: 0,
    stage: null,
    payload: JSON.parse(payload),
    result: null,
    error: null,
    priority: job.priority,
    attempts: { made: 0, max: job.maxAttempts },
    tags: [...job.tags],
    enqueued_by: job.enqueuedBy,
    owner: job.owner ? { sub: job.owner.sub, tenant_id: job.owner.tenant_id ?? 'default' } : null,
    worker: null,
    timeout_ms: job.timeoutMs,
    created_at: at,
    started_at: null,
    finished_at: null,
    updated_at: at,
  };
}

/**
 * Jobs in aion.storage (SQLite by default, PostgreSQL when storage uses it). A worker claims jobs with
 * one conditional UPDATE and holds a lease it renews; a job whose lease ran out (its worker died) goes
 * back to `queued` while tries remain. Workers in other processes sharing the database see the same rows.
 */
export class EmbeddedBackend implements JobBackend {
  readonly kind = 'embedded' as const;
  private t = { jobs: '', logs: '', workers: '', locks: '', queues: '' };
  private dialect: 'sqlite' | 'postgres' = 'sqlite';
  private seq = 0;
  /** Jobs running in this process, by id: cancel reaches them at once. */
  private readonly local = new Map<string, AbortController>();
  /** Consumers of this process waiting for work, woken by an enqueue here. */
  private readonly waiters = new Map<string, Set<() => void>>();
  private lastReclaim = 0;

  constructor(
    private readonly db: StorageSql,
    private readonly settings: { leaseMs: () => number; pollIntervalMs: () => number },
  ) {}

  async open(): Promise<void> {
    const ns = await this.db.namespace();
    this.dialect = ns.dialect;
    const p = ns.prefix;
    this.t = { jobs: `${p}jobs`, logs: `${p}job_logs`, workers: `${p}workers`, locks: `${p}locks`, queues: `${p}queues` };
    const { jobs, logs, workers, locks, queues } = this.t;
    const steps = (real: string) => [
      `CREATE TABLE ${jobs} (id VARCHAR(128) PRIMARY KEY, queue VARCHAR(64) NOT NULL, status VARCHAR(16) NOT NULL, priority INTEGER NOT NULL, seq BIGINT NOT NULL, run_at BIGINT NOT NULL,
        payload TEXT NOT NULL, result TEXT, error_code VARCHAR(64), error_message TEXT, progress ${real} NOT NULL, stage TEXT, attempts_made INTEGER NOT NULL, max_attempts INTEGER NOT NULL,
        backoff TEXT NOT NULL, timeout_ms BIGINT, tags TEXT NOT NULL, enqueued_by VARCHAR(128), owner_sub TEXT, owner_tenant TEXT, worker VARCHAR(160), lease_until BIGINT,
        created_at BIGINT NOT NULL, started_at BIGINT, finished_at BIGINT, updated_at BIGINT NOT NULL)`,
      `CREATE INDEX ${jobs}_take ON ${jobs} (queue, status, priority, seq)`,
      `CREATE INDEX ${jobs}_lease ON ${jobs} (status, lease_until)`,
      `CREATE INDEX ${jobs}_finished ON ${jobs} (finished_at)`,
      `CREATE TABLE ${logs} (job_id VARCHAR(128) NOT NULL, n INTEGER NOT NULL, at BIGINT NOT NULL, line TEXT NOT NULL, PRIMARY KEY (job_id, n))`,
      `CREATE TABLE ${workers} (id VARCHAR(160) PRIMARY KEY, body TEXT NOT NULL, last_seen BIGINT NOT NULL)`,
      `CREATE TABLE ${locks} (name VARCHAR(128) PRIMARY KEY, owner VARCHAR(160) NOT NULL, expires_at BIGINT NOT NULL)`,
      `CREATE TABLE ${queues} (id VARCHAR(64) PRIMARY KEY, touched BIGINT NOT NULL)`,
    ];
    await this.db.migrate([{ name: 'jobs-1-jobs-logs-workers-locks', up: { sqlite: steps('REAL'), postgres: steps('DOUBLE PRECISION') } }]);
  }

  async close(): Promise<void> {
    for (const set of this.waiters.values()) for (const wake of set) wake();
  }

  async ping(): Promise<void> {
    await this.db.query(`SELECT 1 AS ok FROM ${this.t.queues} WHERE 1 = 0`);
  }

  private nextSeq(now: number): number {
    this.seq = (this.seq + 1) % 1000;
    return now * 1000 + this.seq;
  }

  async enqueue(job: NewJob, maxSize: number): Promise<EnqueueOutcome> {
    const { jobs, queues } = this.t;
    const now = job.createdAt;
    const payload = JSON.stringify(job.payload);
    // The upsert takes the queue's row lock (PostgreSQL), so concurrent enqueues count one at a time.
    const [, inserted] = await this.db.transaction([
      { sql: `INSERT INTO ${queues} (id, touched) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET touched = excluded.touched`, params: [job.queue, now] },
      {
        sql: `INSERT INTO ${jobs} (id, queue, status, priority, seq, run_at, payload, result, error_code, error_message, progress, stage, attempts_made, max_attempts, backoff, timeout_ms, tags, enqueued_by, owner_sub, owner_tenant, worker, lease_until, created_at, started_at, finished_at, updated_at)
              SELECT ?, ?, 'queued', CAST(? AS INTEGER), CAST(? AS BIGINT), CAST(? AS BIGINT), ?, NULL, NULL, NULL, 0, NULL, 0, CAST(? AS INTEGER), ?, CAST(? AS BIGINT), ?, ?, ?, ?, NULL, NULL, CAST(? AS BIGINT), NULL, NULL, CAST(? AS BIGINT)
              WHERE (SELECT COUNT(*) FROM ${jobs} WHERE queue = ? AND status IN ('queued', 'running')) < ?
              ON CONFLICT (id) DO NOTHING`,
        params: [
          job.id,
          job.queue,
          job.priority,
          this.nextSeq(now),
          now,
          payload,
          job.maxAttempts,
          JSON.stringify(job.backoff),
          job.timeoutMs,
          JSON.stringify(job.tags),
          job.enqueuedBy,
          job.owner?.sub ?? null,
          job.owner?.tenant_id ?? null,
          now,
          now,
          job.queue,
          maxSize,
        ],
      },
    ]);
    if (inserted!.changes === 1) {
      this.wake(job.queue);
      // The row as just written, without reading it back: one query less per enqueue.
      return { kind: 'created', job: createdView(job, payload) };
    }
    const existing = await this.get(job.id);
    if (existing)
      return existing.queue === job.queue && existing.enqueued_by === job.enqueuedBy
        ? { kind: 'existing', job: existing }
        : { kind: 'conflict', job: existing };
    const [row] = await this.db.query<{ n: number | string }>(`SELECT COUNT(*) AS n FROM ${jobs} WHERE queue = ? AND status IN ('queued', 'running')`, [
      job.queue,
    ]);
    return { kind: 'full', size: Number(row?.n ?? maxSize) };
  }

  async get(id: string): Promise<JobView | undefined> {
    const [row] = await this.db.query<JobRow>(`SELECT ${COLUMNS} FROM ${this.t.jobs} WHERE id = ?`, [id]);
    return row ? viewOf(row) : undefined;
  }

  async list(filter: { queues: string[]; status?: JobStatus; limit: number }): Promise<JobView[]> {
    if (filter.queues.length === 0) return [];
    const params: SqlValue[] = [...filter.queues];
    let where = `queue IN (${filter.queues.map(() => '?').join(', ')})`;
    if (filter.status) {
      where += ' AND status = ?';
      params.push(filter.status);
    }
    params.push(filter.limit);
    const rows = await this.db.query<JobRow>(`SELECT ${COLUMNS} FROM ${this.t.jobs} WHERE ${where} ORDER BY created_at DESC, seq DESC LIMIT ?`, params);
    return rows.map(viewOf);
  }

  async cancel(id: string): Promise<JobView | undefined> {
    const now = Date.now();
    await this.db.execute(
      `UPDATE ${this.t.jobs} SET status = 'canceled', error_code = ?, error_message = ?, finished_at = ?, updated_at = ?, lease_until = NULL WHERE id = ? AND status IN ('queued', 'running')`,
      [JobsErrorCodes.JOB_CANCELED, 'the job was canceled', now, now, id],
    );
    this.local.get(id)?.abort(cancelReason());
    return this.get(id);
  }

  async progress(id: string, fraction: number, stage: string | null): Promise<void> {
    await this.db.execute(`UPDATE ${this.t.jobs} SET progress = ?, stage = COALESCE(?, stage), updated_at = ? WHERE id = ? AND status = 'running'`, [
      fraction,
      stage,
      Date.now(),
      id,
    ]);
  }

  async appendLog(id: string, line: string, maxLines: number): Promise<void> {
    const logs = this.t.logs;
    const inserted = await this.db.execute<{ n: number | string }>(
      `INSERT INTO ${logs} (job_id, n, at, line) SELECT ?, COALESCE(MAX(n), 0) + 1, CAST(? AS BIGINT), ? FROM ${logs} WHERE job_id = ? RETURNING n`,
      [id, Date.now(), line, id],
    );
    const n = Number(inserted!.rows[0]?.n ?? 0);
    if (n > maxLines) await this.db.execute(`DELETE FROM ${logs} WHERE job_id = ? AND n <= ?`, [id, n - maxLines]);
  }

  async logs(id: string): Promise<JobLogLine[]> {
    const rows = await this.db.query<{ at: number | string; line: string }>(`SELECT at, line FROM ${this.t.logs} WHERE job_id = ? ORDER BY n`, [id]);
    return rows.map((r) => ({ at: iso(Number(r.at))!, line: r.line }));
  }

  async stats(queues: string[]): Promise<Map<string, QueueStats>> {
    const out = new Map<string, QueueStats>(queues.map((q) => [q, { depth: 0, running: 0, oldestWaitingMs: null }]));
    if (queues.length === 0) return out;
    const rows = await this.db.query<{ queue: string; status: string; n: number | string; oldest: number | string | null }>(
      `SELECT queue, status, COUNT(*) AS n, MIN(created_at) AS oldest FROM ${this.t.jobs} WHERE status IN ('queued', 'running') AND queue IN (${queues.map(() => '?').join(', ')}) GROUP BY queue, status`,
      queues,
    );
    const now = Date.now();
    for (const r of rows) {
      const s = out.get(r.queue)!;
      if (r.status === 'queued') {
        s.depth = Number(r.n);
        s.oldestWaitingMs = r.oldest === null ? null : Math.max(0, now - Number(r.oldest));
      } else s.running = Number(r.n);
    }
    return out;
  }

  async putHeartbeat(id: string, body: string): Promise<void> {
    await this.db.execute(
      `INSERT INTO ${this.t.workers} (id, body, last_seen) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body, last_seen = excluded.last_seen`,
      [id, body, Date.now()],
    );
  }

  async removeHeartbeat(id: string): Promise<void> {
    await this.db.execute(`DELETE FROM ${this.t.workers} WHERE id = ?`, [id]);
  }

  async heartbeats(): Promise<StoredHeartbeat[]> {
    const rows = await this.db.query<{ id: string; body: string; last_seen: number | string }>(`SELECT id, body, last_seen FROM ${this.t.workers} ORDER BY id`);
    return rows.map((r) => ({ id: r.id, body: r.body, lastSeen: Number(r.last_seen) }));
  }

  async tryLock(name: string, owner: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const locks = this.t.locks;
    const { rows } = await this.db.execute<{ owner: string }>(
      `INSERT INTO ${locks} (name, owner, expires_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
       WHERE ${locks}.owner = excluded.owner OR ${locks}.expires_at <= ? RETURNING owner`,
      [name, owner, now + ttlMs, now],
    );
    return rows[0]?.owner === owner;
  }

  async releaseLock(name: string, owner: string): Promise<void> {
    await this.db.execute(`DELETE FROM ${this.t.locks} WHERE name = ? AND owner = ?`, [name, owner]);
  }

  async purge(before: number): Promise<number> {
    const { jobs, logs } = this.t;
    const [logged, removed] = await this.db.transaction([
      { sql: `DELETE FROM ${logs} WHERE job_id IN (SELECT id FROM ${jobs} WHERE finished_at IS NOT NULL AND finished_at < ?)`, params: [before] },
      { sql: `DELETE FROM ${jobs} WHERE finished_at IS NOT NULL AND finished_at < ?`, params: [before] },
    ]);
    void logged;
    await this.db.execute(`DELETE FROM ${this.t.workers} WHERE last_seen < ?`, [before]);
    return removed!.changes;
  }

  private wake(queue: string): void {
    for (const w of this.waiters.get(queue) ?? []) w();
  }

  /** Jobs whose worker stopped renewing go back to `queued` while tries remain, else fail with WORKER_LOST. */
  private async reclaimExpired(now: number): Promise<void> {
    if (now - this.lastReclaim < Math.min(1000, this.settings.leaseMs() / 4)) return;
    this.lastReclaim = now;
    const jobs = this.t.jobs;
    await this.db.execute(
      `UPDATE ${jobs} SET status = CASE WHEN attempts_made < max_attempts THEN 'queued' ELSE 'failed' END,
         finished_at = CASE WHEN attempts_made < max_attempts THEN NULL ELSE ? END,
         error_code = ?, error_message = ?, worker = NULL, lease_until = NULL, run_at = ?, updated_at = ?
       WHERE status = 'running' AND lease_until < ?`,
      [now, JobsErrorCodes.WORKER_LOST, 'the worker running this job stopped renewing its lease (it died or hung)', now, now, now],
    );
  }

  private async claim(queue: string, workerId: string, limit: number): Promise<JobView[]> {
    const now = Date.now();
    await this.reclaimExpired(now);
    const jobs = this.t.jobs;
    const pick = (lock: string) => `SELECT id FROM ${jobs} WHERE queue = ? AND status = 'queued' AND run_at <= ? ORDER BY priority DESC, seq LIMIT ?${lock}`;
    const update = (lock: string) =>
      `UPDATE ${jobs} SET status = 'running', worker = ?, lease_until = ?, attempts_made = attempts_made + 1, started_at = ?, updated_at = ?, progress = 0, stage = NULL
       WHERE id IN (${pick(lock)}) AND status = 'queued' RETURNING ${COLUMNS}, seq`;
    const { rows } = await this.db.execute<JobRow & { seq: number | string }>({ sqlite: update(''), postgres: update(' FOR UPDATE SKIP LOCKED') }, [
      workerId,
      now + this.settings.leaseMs(),
      now,
      now,
      queue,
      now,
      limit,
    ]);
    return rows.sort((a, b) => Number(b.priority) - Number(a.priority) || Number(a.seq) - Number(b.seq)).map(viewOf);
  }

  private async finish(job: JobView, workerId: string, outcome: { result: unknown } | { error: unknown }): Promise<void> {
    const now = Date.now();
    const jobs = this.t.jobs;
    const mine = `WHERE id = ? AND status = 'running' AND worker = ?`;
    if ('result' in outcome) {
      await this.db.execute(
        `UPDATE ${jobs} SET status = 'success', result = ?, progress = 1, error_code = NULL, error_message = NULL, finished_at = ?, updated_at = ?, lease_until = NULL ${mine}`,
        [JSON.stringify(outcome.result ?? null), now, now, job.id, workerId],
      );
      return;
    }
    const error = jobErrorOf(outcome.error);
    const [row] = await this.db.query<{ backoff: string }>(`SELECT backoff FROM ${jobs} WHERE id = ?`, [job.id]);
    const retry = error.code !== JobsErrorCodes.JOB_CANCELED && job.attempts.made < job.attempts.max;
    if (retry) {
      const delay = backoffDelay(row ? JSON.parse(row.backoff) : { type: 'fixed', delayMs: 0 }, job.attempts.made);
      await this.db.execute(
        `UPDATE ${jobs} SET status = 'queued', run_at = ?, error_code = ?, error_message = ?, worker = NULL, lease_until = NULL, updated_at = ? ${mine}`,
        [now + delay, error.code, error.message, now, job.id, workerId],
      );
      if (delay === 0) this.wake(job.queue);
    } else {
      await this.db.execute(
        `UPDATE ${jobs} SET status = ?, error_code = ?, error_message = ?, finished_at = ?, updated_at = ?, worker = NULL, lease_until = NULL ${mine}`,
        [error.code === JobsErrorCodes.JOB_CANCELED ? 'canceled' : 'failed', error.code, error.message, now, now, job.id, workerId],
      );
    }
  }

  /** Renews the leases of this worker's jobs; a job that is no longer its own (canceled, reclaimed) is aborted. */
  private async renew(workerId: string, running: Map<string, AbortController>): Promise<void> {
    const ids = [...running.keys()];
    if (ids.length === 0) return;
    const now = Date.now();
    const { rows } = await this.db.execute<{ id: string }>(
      `UPDATE ${this.t.jobs} SET lease_until = ? WHERE status = 'running' AND worker = ? AND id IN (${ids.map(() => '?').join(', ')}) RETURNING id`,
      [now + this.settings.leaseMs(), workerId, ...ids],
    );
    const kept = new Set(rows.map((r) => r.id));
    for (const id of ids) {
      if (kept.has(id)) continue;
      const job = await this.get(id);
      running
        .get(id)
        ?.abort(
          job?.status === 'canceled'
            ? cancelReason()
            : Object.assign(new Error('the job was taken back from this worker'), { code: JobsErrorCodes.WORKER_LOST }),
        );
    }
  }

  consume(queue: QueueSettings, concurrency: number, workerId: string, execute: JobExecutor): Consumer {
    const running = new Map<string, AbortController>();
    const settled = new Set<Promise<void>>();
    let closed = false;
    let wakeUp: (() => void) | undefined;
    const wake = () => wakeUp?.();
    let set = this.waiters.get(queue.id);
    if (!set) this.waiters.set(queue.id, (set = new Set()));
    set.add(wake);
    let slotFreed: () => void = () => undefined;

    const runOne = (job: JobView) => {
      const controller = new AbortController();
      running.set(job.id, controller);
      this.local.set(job.id, controller);
      const done = (async () => {
        let outcome: { result: unknown } | { error: unknown };
        try {
          outcome = { result: await execute(job, controller.signal) };
        } catch (error) {
          outcome = { error };
        }
        try {
          await this.finish(job, workerId, outcome);
        } catch {
          // The lease runs out and another worker retries the job.
        }
      })().finally(() => {
        running.delete(job.id);
        this.local.delete(job.id);
        settled.delete(done);
        slotFreed();
      });
      settled.add(done);
    };

    const renewEvery = Math.max(50, Math.min(2000, Math.floor(this.settings.leaseMs() / 3)));
    const renewer = setInterval(() => void this.renew(workerId, running).catch(() => undefined), renewEvery);
    renewer.unref();

    const loop = (async () => {
      while (!closed) {
        const free = concurrency - running.size;
        if (free > 0) {
          let claimed: JobView[] = [];
          try {
            claimed = await this.claim(queue.id, workerId, free);
          } catch {
            // The database is away for a moment: try again after the poll interval.
          }
          for (const job of claimed) runOne(job);
          if (claimed.length === free) continue;
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, running.size >= concurrency ? 60_000 : this.settings.pollIntervalMs());
          function done() {
            clearTimeout(timer);
            wakeUp = undefined;
            slotFreed = () => undefined;
            resolve();
          }
          wakeUp = done;
          slotFreed = done;
        });
      }
    })();

    return {
      get active() {
        return running.size;
      },
      close: async () => {
        closed = true;
        set!.delete(wake);
        wakeUp?.();
        await loop;
        await Promise.allSettled([...settled]);
        clearInterval(renewer);
      },
    };
  }
}

export function cancelReason(): Error {
  return Object.assign(new Error('the job was canceled'), { code: JobsErrorCodes.JOB_CANCELED });
}

export const defaultWorkerId = (suffix: string) => `${hostname()}-${process.pid}-${suffix}`;
