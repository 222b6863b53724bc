import type { LoopStep, TranscriptMessage } from '../tools/toolLoop.js';
import type { Attempt, EngineInfo, Filtered } from '../types.js';

export type TaskStatus = 'QUEUED' | 'RUNNING' | 'OK' | 'ERROR' | 'TIMEOUT' | 'CANCELED';

export const FINAL_STATUSES: ReadonlySet<TaskStatus> = new Set(['OK', 'ERROR', 'TIMEOUT', 'CANCELED']);

/** The canonical task result, as `GET /v1/tasks/{id}` returns it. */
export interface TaskResult {
  schema_version: '1.0';
  task_id: string;
  intent: string;
  status: TaskStatus;
  engine: EngineInfo | null;
  result: { text: string; tool_calls: Array<{ id: string; name: string; arguments: string }>; finish_reason: string | null } | null;
  usage: { latency_ms: number; tokens: { input: number; output: number; total: number }; cost_usd: number };
  error: { code: string; message: string } | null;
  created_at: string;
  updated_at: string;
  /** How the decision was reached: candidates with scores, filtered engines, attempts in order. */
  routing?: { privacy: string; candidates: Array<{ engine: string; score: number }>; filtered: Filtered[]; attempts: Attempt[] };
  metadata?: Record<string, unknown>;
  /** Tasks with skills: every model call and skill call of the tool loop, in order. */
  steps?: LoopStep[];
  /** Tasks with skills: the assistant and tool messages the loop added to the conversation. */
  transcript?: TranscriptMessage[];
  /** Each time the kernel running the task stopped and another took it over, in order. */
  recoveries?: Recovery[];
}

/** A task taken over from a kernel that stopped: retried from the start, or failed as `KERNEL_LOST` when it ran skills. */
export interface Recovery {
  from_kernel: string;
  to_kernel: string;
  at: string;
  retried: boolean;
}

/** A task with what only the router needs: who owns it and how it was submitted. */
export interface StoredTask {
  task: TaskResult;
  tenant_id: string;
  owner: string;
  api_key: string;
  /** Hash of the submitted body, for idempotency checks. */
  request_hash: string;
  expires_at: number;
  /** The kernel running the task (`aion.cluster`), while it is not final. */
  kernel_id?: string;
  /** The submitted input as JSON, kept while the task may be retried elsewhere: tasks without skills only. */
  input?: string;
}

export interface IdempotencyRecord {
  scope: string;
  request_hash: string;
  task_id: string;
  expires_at: number;
}

export interface UsageTotals {
  tasks: number;
  input_tokens: number;
  output_tokens: number;
  cost_usd: number;
  errors: number;
  by_engine: Record<string, { tasks: number; input_tokens: number; output_tokens: number; cost_usd: number }>;
}

/**
 * Where tasks, idempotency keys and usage live. Backed by the `aion.storage` extension when it is
 * installed (survives restarts, shared by several kernels), else by this process's memory.
 */
export interface TaskStore {
  readonly kind: 'memory' | 'storage';
  put(task: StoredTask): Promise<void>;
  get(taskId: string): Promise<StoredTask | undefined>;
  /**
   * Claims an idempotency key: stores `record` unless a live record holds the key, in which case
   * that record is returned and nothing changes.
   */
  claimIdempotency(record: IdempotencyRecord): Promise<IdempotencyRecord | undefined>;
  addUsage(apiKey: string, engine: string, delta: { input_tokens: number; output_tokens: number; cost_usd: number; error: boolean }): Promise<void>;
  usage(apiKey: string): Promise<UsageTotals>;
  /** Unfinished tasks and the kernel that runs each: what a kernel checks for tasks whose kernel stopped. */
  unfinished(): Promise<Array<{ task_id: string; kernel_id: string }>>;
  /**
   * Moves an unfinished task from the kernel `from` to `to`, unless another kernel moved it first;
   * answers the task when this call moved it.
   */
  takeOver(taskId: string, from: string, to: string): Promise<StoredTask | undefined>;
  /** Removes expired tasks and keys. */
  sweep(now: number): Promise<void>;
  /** Writes what is still buffered. */
  close(): Promise<void>;
}

export const emptyUsage = (): UsageTotals => ({ tasks: 0, input_tokens: 0, output_tokens: 0, cost_usd: 0, errors: 0, by_engine: {} });

export function addToUsage(u: UsageTotals, engine: string, d: { input_tokens: number; output_tokens: number; cost_usd: number; error: boolean }): void {
  u.tasks++;
  u.input_tokens += d.input_tokens;
  u.output_tokens += d.output_tokens;
  u.cost_usd = Math.round((u.cost_usd + d.cost_usd) * 1e8) / 1e8;
  if (d.error) u.errors++;
  const e = (u.by_engine[engine] ??= { tasks: 0, input_tokens: 0, output_tokens: 0, cost_usd: 0 });
  e.tasks++;
  e.input_tokens += d.input_tokens;
  e.output_tokens += d.output_tokens;
  e.cost_usd = Math.round((e.cost_usd + d.cost_usd) * 1e8) / 1e8;
}

export class MemoryTaskStore implements TaskStore {
  readonly kind = 'memory' as const;
  private readonly tasks = new Map<string, StoredTask>();
  private readonly keys = new Map<string, IdempotencyRecord>();
  private readonly usageByKey = new Map<string, UsageTotals>();

  async put(task: StoredTask): Promise<void> {
    this.tasks.set(task.task.task_id, task);
  }

  async get(taskId: string): Promise<StoredTask | undefined> {
    return this.tasks.get(taskId);
  }

  async claimIdempotency(record: IdempotencyRecord): Promise<IdempotencyRecord | undefined> {
    const existing = this.keys.get(record.scope);
    if (existing && existing.expires_at > Date.now()) return existing;
    this.keys.set(record.scope, record);
    return undefined;
  }

  async addUsage(apiKey: string, engine: string, delta: { input_tokens: number; output_tokens: number; cost_usd: number; error: boolean }): Promise<void> {
    let u = this.usageByKey.get(apiKey);
    if (!u) this.usageByKey.set(apiKey, (u = emptyUsage()));
    addToUsage(u, engine, delta);
  }

  async usage(apiKey: string): Promise<UsageTotals> {
    return structuredClone(this.usageByKey.get(apiKey) ?? emptyUsage());
  }

  // One process holds every task of a memory store: no other kernel can take one over.
  async unfinished(): Promise<Array<{ task_id: string; kernel_id: string }>> {
    return [];
  }

  async takeOver(): Promise<StoredTask | undefined> {
    return undefined;
  }

  async close(): Promise<void> {}

  async sweep(now: number): Promise<void> {
    for (const [id, t] of this.tasks) if (t.expires_at <= now) this.tasks.delete(id);
    for (const [k, r] of this.keys) if (r.expires_at <= now) this.keys.delete(k);
  }
}
