import * as aion from '@aion/extension-api';
import { isAionError } from '@aion/extension-api';
// Types only: the router runs without aion.storage installed (tasks are then kept in memory).
import type { StorageApi } from '@aion/ext-storage';
import {
  addToUsage,
  emptyUsage,
  FINAL_STATUSES,
  MemoryTaskStore,
  type IdempotencyRecord,
  type StoredTask,
  type TaskStore,
  type UsageTotals,
} from './taskStore.js';

type Log = (level: 'info' | 'warn', message: string) => void;

/** The task store: the `aion.storage` extension when it is installed, else this process's memory. */
export async function openTaskStore(log: Log): Promise<TaskStore> {
  let api: aion.Remote<StorageApi>;
  try {
    api = await aion.extensions.getApi<StorageApi>('aion.storage');
  } catch (err) {
    if (isAionError(err) && err.code === 'EXTENSION_NOT_FOUND') {
      log('info', 'aion.storage is not installed: tasks, idempotency keys and usage are kept in memory, lost on restart and not shared between instances');
      return new MemoryTaskStore();
    }
    throw err;
  }
  const store = new StorageTaskStore(api, log);
  await store.open();
  return store;
}

interface TaskRow {
  body: string;
  kernel_id: string | null;
  input: string | null;
  tenant_id: string;
  owner: string;
  api_key: string;
  request_hash: string;
  expires_at: number | string;
}

/**
 * Tasks, idempotency keys and usage in the router's own tables. An idempotency key is claimed with
 * one conditional upsert, so two instances racing for the same key agree on one task.
 */
export class StorageTaskStore implements TaskStore {
  readonly kind = 'storage' as const;
  private t = { tasks: '', keys: '', usage: '' };
  private pending = new Map<string, UsageTotals>();
  private flushScheduled = false;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly api: StorageApi,
    private readonly log: Log,
  ) {}

  async open(): Promise<void> {
    const { prefix } = await this.api.namespace();
    this.t = { tasks: `${prefix}tasks`, keys: `${prefix}idempotency`, usage: `${prefix}usage` };
    const { tasks, keys, usage } = this.t;
    const steps = (money: string) => [
      `CREATE TABLE ${tasks} (task_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, owner TEXT NOT NULL, api_key TEXT NOT NULL, request_hash TEXT NOT NULL, status TEXT NOT NULL, body TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, expires_at BIGINT NOT NULL)`,
      `CREATE INDEX ${tasks}_expires ON ${tasks} (expires_at)`,
      `CREATE TABLE ${keys} (scope TEXT PRIMARY KEY, request_hash TEXT NOT NULL, task_id TEXT NOT NULL, expires_at BIGINT NOT NULL)`,
      `CREATE TABLE ${usage} (api_key TEXT NOT NULL, engine TEXT NOT NULL, tasks BIGINT NOT NULL, input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL, cost_usd ${money} NOT NULL, errors BIGINT NOT NULL, PRIMARY KEY (api_key, engine))`,
    ];
    // Durable tasks: the kernel running each unfinished task, and the input to retry it with.
    const durable = [
      `ALTER TABLE ${tasks} ADD COLUMN kernel_id TEXT`,
      `ALTER TABLE ${tasks} ADD COLUMN input TEXT`,
      `CREATE INDEX ${tasks}_unfinished ON ${tasks} (status, kernel_id)`,
    ];
    await this.api.migrate([
      { name: 'router-1-tasks-keys-usage', up: { sqlite: steps('REAL'), postgres: steps('DOUBLE PRECISION') } },
      { name: 'router-2-durable-tasks', up: { sqlite: durable, postgres: durable } },
    ]);
  }

  async put(s: StoredTask): Promise<void> {
    const t = s.task;
    await this.api.execute(
      `INSERT INTO ${this.t.tasks} (task_id, tenant_id, owner, api_key, request_hash, status, body, created_at, updated_at, expires_at, kernel_id, input) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (task_id) DO UPDATE SET status = excluded.status, body = excluded.body, updated_at = excluded.updated_at, expires_at = excluded.expires_at,
       kernel_id = excluded.kernel_id, input = excluded.input`,
      [
        t.task_id,
        s.tenant_id,
        s.owner,
        s.api_key,
        s.request_hash,
        t.status,
        JSON.stringify(t),
        t.created_at,
        t.updated_at,
        s.expires_at,
        // A final task needs neither: nothing will take it over.
        FINAL_STATUSES.has(t.status) ? null : (s.kernel_id ?? null),
        FINAL_STATUSES.has(t.status) ? null : (s.input ?? null),
      ],
    );
  }

  async get(taskId: string): Promise<StoredTask | undefined> {
    const [row] = await this.api.query<TaskRow>(
      `SELECT body, tenant_id, owner, api_key, request_hash, expires_at, kernel_id, input FROM ${this.t.tasks} WHERE task_id = ?`,
      [taskId],
    );
    return row ? fromRow(row) : undefined;
  }

  async unfinished(): Promise<Array<{ task_id: string; kernel_id: string }>> {
    return this.api.query<{ task_id: string; kernel_id: string }>(
      `SELECT task_id, kernel_id FROM ${this.t.tasks} WHERE status IN ('QUEUED', 'RUNNING') AND kernel_id IS NOT NULL`,
    );
  }

  async takeOver(taskId: string, from: string, to: string): Promise<StoredTask | undefined> {
    // One conditional update: of two kernels taking over the same task, one gets it.
    const { rows } = await this.api.execute<TaskRow>(
      `UPDATE ${this.t.tasks} SET kernel_id = ? WHERE task_id = ? AND kernel_id = ? AND status IN ('QUEUED', 'RUNNING')
       RETURNING body, tenant_id, owner, api_key, request_hash, expires_at, kernel_id, input`,
      [to, taskId, from],
    );
    return rows[0] ? fromRow(rows[0]) : undefined;
  }

  async claimIdempotency(r: IdempotencyRecord): Promise<IdempotencyRecord | undefined> {
    const keys = this.t.keys;
    // Inserts, or takes over an expired record; a live record is left alone and read back.
    const { rows } = await this.api.execute<{ task_id: string }>(
      `INSERT INTO ${keys} (scope, request_hash, task_id, expires_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (scope) DO UPDATE SET request_hash = excluded.request_hash, task_id = excluded.task_id, expires_at = excluded.expires_at WHERE ${keys}.expires_at <= ?
       RETURNING task_id`,
      [r.scope, r.request_hash, r.task_id, r.expires_at, Date.now()],
    );
    if (rows[0]?.task_id === r.task_id) return undefined;
    const [existing] = await this.api.query<{ request_hash: string; task_id: string; expires_at: number | string }>(
      `SELECT request_hash, task_id, expires_at FROM ${keys} WHERE scope = ?`,
      [r.scope],
    );
    return existing ? { scope: r.scope, request_hash: existing.request_hash, task_id: existing.task_id, expires_at: Number(existing.expires_at) } : undefined;
  }

  async addUsage(apiKey: string, engine: string, delta: { input_tokens: number; output_tokens: number; cost_usd: number; error: boolean }): Promise<void> {
    let u = this.pending.get(apiKey);
    if (!u) this.pending.set(apiKey, (u = emptyUsage()));
    addToUsage(u, engine, delta);
    // One write at a time: under load, what arrives while a write runs goes into the next one.
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      this.flushing = this.flushing.then(() => this.flush());
    }
  }

  /** Writes the gathered usage in one transaction. */
  private async flush(): Promise<void> {
    this.flushScheduled = false;
    const batch = this.pending;
    this.pending = new Map();
    const usage = this.t.usage;
    const statements = [...batch].flatMap(([apiKey, u]) =>
      Object.entries(u.by_engine).map(([engine, e]) => ({
        sql: `INSERT INTO ${usage} (api_key, engine, tasks, input_tokens, output_tokens, cost_usd, errors) VALUES (?, ?, ?, ?, ?, ?, ?)
              ON CONFLICT (api_key, engine) DO UPDATE SET tasks = ${usage}.tasks + excluded.tasks, input_tokens = ${usage}.input_tokens + excluded.input_tokens,
              output_tokens = ${usage}.output_tokens + excluded.output_tokens, cost_usd = ${usage}.cost_usd + excluded.cost_usd, errors = ${usage}.errors + excluded.errors`,
        // Errors are counted per key, not per engine; they ride on the first engine's row.
        params: [apiKey, engine, e.tasks, e.input_tokens, e.output_tokens, e.cost_usd, engine === Object.keys(u.by_engine)[0] ? u.errors : 0],
      })),
    );
    if (statements.length === 0) return;
    try {
      await this.api.transaction(statements);
    } catch (err) {
      this.log('warn', `usage was not written (${(err as Error).message}); ${statements.length} rows are lost`);
    }
  }

  async usage(apiKey: string): Promise<UsageTotals> {
    await this.flushing;
    const rows = await this.api.query<{
      engine: string;
      tasks: number | string;
      input_tokens: number | string;
      output_tokens: number | string;
      cost_usd: number | string;
      errors: number | string;
    }>(`SELECT engine, tasks, input_tokens, output_tokens, cost_usd, errors FROM ${this.t.usage} WHERE api_key = ?`, [apiKey]);
    const total = emptyUsage();
    const add = (engine: string, tasks: number, input: number, output: number, cost: number, errors: number) => {
      total.tasks += tasks;
      total.input_tokens += input;
      total.output_tokens += output;
      total.cost_usd = Math.round((total.cost_usd + cost) * 1e8) / 1e8;
      total.errors += errors;
      const e = (total.by_engine[engine] ??= { tasks: 0, input_tokens: 0, output_tokens: 0, cost_usd: 0 });
      e.tasks += tasks;
      e.input_tokens += input;
      e.output_tokens += output;
      e.cost_usd = Math.round((e.cost_usd + cost) * 1e8) / 1e8;
    };
    for (const r of rows) add(r.engine, Number(r.tasks), Number(r.input_tokens), Number(r.output_tokens), Number(r.cost_usd), Number(r.errors));
    const pending = this.pending.get(apiKey);
    if (pending) {
      for (const [engine, e] of Object.entries(pending.by_engine)) add(engine, e.tasks, e.input_tokens, e.output_tokens, e.cost_usd, 0);
      total.errors += pending.errors;
    }
    return total;
  }

  async close(): Promise<void> {
    await this.flushing;
  }

  async sweep(now: number): Promise<void> {
    await this.api.execute(`DELETE FROM ${this.t.tasks} WHERE expires_at <= ?`, [now]);
    await this.api.execute(`DELETE FROM ${this.t.keys} WHERE expires_at <= ?`, [now]);
  }
}

function fromRow(row: TaskRow): StoredTask {
  return {
    task: JSON.parse(row.body),
    tenant_id: row.tenant_id,
    owner: row.owner,
    api_key: row.api_key,
    request_hash: row.request_hash,
    expires_at: Number(row.expires_at),
    kernel_id: row.kernel_id ?? undefined,
    input: row.input ?? undefined,
  };
}
