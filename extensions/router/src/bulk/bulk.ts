import { randomUUID } from 'node:crypto';
import { AionError, ErrorCodes, type Disposable } from '@aion/extension-api';
import type { Caller } from '../caller.js';
import { EventLog, type TaskEvent } from '../tasks/eventLog.js';
import { validateTaskInput, type TaskInput } from '../frontDoor/input.js';
import type { TaskService } from '../tasks/tasks.js';
import type { TaskResult } from '../tasks/taskStore.js';

export const MAX_BULK_OPERATIONS = 20;

export type OperationStatus = 'PENDING' | 'RUNNING' | 'OK' | 'ERROR' | 'TIMEOUT' | 'CANCELED' | 'SKIPPED';

export interface BulkOperationInput extends TaskInput {
  id: string;
  depends_on?: string[];
}

export interface BulkBody {
  operations: BulkOperationInput[];
  execution?: 'parallel' | 'sequential';
  wait?: boolean;
  stream?: boolean;
}

interface Operation {
  id: string;
  index: number;
  input: TaskInput;
  dependsOn: string[];
  status: OperationStatus;
  task?: TaskResult;
  taskId?: string;
  reason?: string;
}

export interface BulkView {
  bulk_id: string;
  status: 'RUNNING' | 'OK' | 'PARTIAL' | 'ERROR';
  execution: 'parallel' | 'sequential';
  progress: { completed: number; total: number; ok: number; failed: number; skipped: number };
  operations: Array<{ id: string; status: OperationStatus; depends_on: string[]; task_id: string | null; result: TaskResult | null; reason: string | null }>;
  created_at: string;
}

interface BulkRun {
  id: string;
  caller: Caller;
  execution: 'parallel' | 'sequential';
  operations: Operation[];
  events: EventLog;
  done: Promise<void>;
  createdAt: string;
  finishedAt?: number;
}

const REF_KEY = '$ref';
const ID = /^[A-Za-z0-9_.-]{1,64}$/;

function isRef(value: unknown): value is { $ref: string } {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    typeof (value as Record<string, unknown>)[REF_KEY] === 'string' &&
    Object.keys(value).length === 1
  );
}

/** Every `{"$ref": "op.path"}` inside `value`. */
function refsIn(value: unknown, out: string[] = []): string[] {
  if (isRef(value)) out.push(value.$ref);
  else if (Array.isArray(value)) for (const v of value) refsIn(v, out);
  else if (typeof value === 'object' && value !== null) for (const v of Object.values(value)) refsIn(v, out);
  return out;
}

/** `value` with each ref replaced by `replace(ref)`. */
function substitute(value: unknown, replace: (ref: string) => unknown): unknown {
  if (isRef(value)) return replace(value.$ref);
  if (Array.isArray(value)) return value.map((v) => substitute(v, replace));
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, replace)]));
  return value;
}

function lookup(root: unknown, path: string[]): unknown {
  let node = root;
  for (const part of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

/** Checks ids, dependencies (declared and implied by refs) and cycles; a 400 names what is wrong. */
export function planBulk(body: unknown): { operations: Operation[]; execution: 'parallel' | 'sequential' } {
  const b = body as Partial<BulkBody> | undefined;
  if (!b || typeof b !== 'object' || !Array.isArray(b.operations))
    throw new AionError(ErrorCodes.VALIDATION_FAILED, 'send { "operations": [...], "execution": "parallel" | "sequential" }');
  if (b.operations.length === 0 || b.operations.length > MAX_BULK_OPERATIONS) {
    throw new AionError(ErrorCodes.VALIDATION_FAILED, `a bulk request holds 1 to ${MAX_BULK_OPERATIONS} operations, not ${b.operations.length}`);
  }
  const execution = b.execution ?? 'parallel';
  if (execution !== 'parallel' && execution !== 'sequential') throw new AionError(ErrorCodes.VALIDATION_FAILED, 'execution must be parallel or sequential');
  const operations: Operation[] = [];
  const ids = new Set<string>();
  b.operations.forEach((raw, index) => {
    if (typeof raw !== 'object' || raw === null) throw new AionError(ErrorCodes.VALIDATION_FAILED, `operations[${index}] is not an object`);
    const { id, depends_on, ...rest } = raw as BulkOperationInput;
    if (typeof id !== 'string' || !ID.test(id))
      throw new AionError(ErrorCodes.VALIDATION_FAILED, `operations[${index}].id must be 1 to 64 letters, digits, _ . or -`);
    if (ids.has(id)) throw new AionError(ErrorCodes.VALIDATION_FAILED, `operation id ${id} is used twice`);
    ids.add(id);
    if (depends_on !== undefined && (!Array.isArray(depends_on) || depends_on.some((d) => typeof d !== 'string')))
      throw new AionError(ErrorCodes.VALIDATION_FAILED, `operation ${id}: depends_on must be a list of operation ids`);
    // Refs are placeholders until their operation has run; validate the shape with text in their place.
    validateTaskInput(
      substitute(rest, () => ''),
      `operation ${id}`,
    );
    const implied = refsIn(rest).map((ref) => ref.split('.')[0]!);
    operations.push({ id, index, input: rest as TaskInput, dependsOn: [...new Set([...(depends_on ?? []), ...implied])], status: 'PENDING' });
  });
  for (const op of operations) {
    for (const dep of op.dependsOn) {
      if (!ids.has(dep))
        throw new AionError('BULK_UNKNOWN_DEPENDENCY', `operation ${op.id} depends on ${dep}, which is not in this request`, {
          status: 400,
          details: { operation: op.id, dependency: dep },
        });
      if (dep === op.id) throw new AionError('BULK_CYCLE', `operation ${op.id} depends on itself`, { status: 400, details: { cycle: [op.id, op.id] } });
    }
  }
  const byId = new Map(operations.map((o) => [o.id, o]));
  const colour = new Map<string, 'grey' | 'black'>();
  const stack: string[] = [];
  const visit = (id: string) => {
    colour.set(id, 'grey');
    stack.push(id);
    for (const dep of byId.get(id)!.dependsOn) {
      if (colour.get(dep) === 'grey') {
        const cycle = [...stack.slice(stack.indexOf(dep)), dep];
        throw new AionError('BULK_CYCLE', `dependency cycle: ${cycle.join(' → ')}`, { status: 400, details: { cycle } });
      }
      if (!colour.has(dep)) visit(dep);
    }
    stack.pop();
    colour.set(id, 'black');
  };
  for (const op of operations) if (!colour.has(op.id)) visit(op.id);
  return { operations, execution };
}

const FAILED = new Set<OperationStatus>(['ERROR', 'TIMEOUT', 'CANCELED', 'SKIPPED']);

/** Runs bulk requests: each operation is a task; a failed operation's dependents are skipped with the reason. */
export class BulkService implements Disposable {
  private readonly runs = new Map<string, BulkRun>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly tasks: TaskService,
    private readonly retentionMs: () => number,
  ) {
    this.sweeper = setInterval(() => {
      const now = Date.now();
      for (const [id, run] of this.runs) if (run.finishedAt && now - run.finishedAt > this.retentionMs()) this.runs.delete(id);
    }, 30_000);
    this.sweeper.unref();
  }

  start(body: unknown, caller: Caller): BulkView {
    const plan = planBulk(body);
    const run: BulkRun = {
      id: `bulk_${randomUUID().replace(/-/g, '')}`,
      caller,
      execution: plan.execution,
      operations: plan.operations,
      events: new EventLog(),
      done: Promise.resolve(),
      createdAt: new Date().toISOString(),
    };
    this.runs.set(run.id, run);
    run.done = this.execute(run).finally(() => {
      run.finishedAt = Date.now();
      run.events.push('done', this.view(run));
      run.events.close();
    });
    return this.view(run);
  }

  get(id: string, caller: Caller): BulkRun {
    const run = this.runs.get(id);
    if (!run || !(caller.admin || (run.caller.tenant === caller.tenant && run.caller.sub === caller.sub)))
      throw new AionError(ErrorCodes.NOT_FOUND, `no bulk request ${id}`);
    return run;
  }

  async wait(run: BulkRun): Promise<BulkView> {
    await run.done;
    return this.view(run);
  }

  follow(run: BulkRun, afterId = 0): AsyncIterable<TaskEvent> {
    return run.events.follow(afterId);
  }

  view(run: BulkRun): BulkView {
    const ops = run.operations;
    const count = (f: (o: Operation) => boolean) => ops.filter(f).length;
    const completed = count((o) => o.status !== 'PENDING' && o.status !== 'RUNNING');
    const ok = count((o) => o.status === 'OK');
    const skipped = count((o) => o.status === 'SKIPPED');
    const failed = completed - ok - skipped;
    return {
      bulk_id: run.id,
      status: completed < ops.length ? 'RUNNING' : ok === ops.length ? 'OK' : ok === 0 ? 'ERROR' : 'PARTIAL',
      execution: run.execution,
      progress: { completed, total: ops.length, ok, failed, skipped },
      operations: ops.map((o) => ({
        id: o.id,
        status: o.status,
        depends_on: o.dependsOn,
        task_id: o.taskId ?? null,
        result: o.task ?? null,
        reason: o.reason ?? null,
      })),
      created_at: run.createdAt,
    };
  }

  private progress(run: BulkRun, op: Operation): void {
    const v = this.view(run);
    run.events.push('partial', {
      kind: 'progress',
      operation: op.id,
      status: op.status,
      task_id: op.taskId ?? null,
      reason: op.reason ?? null,
      progress: v.progress,
    });
  }

  private async execute(run: BulkRun): Promise<void> {
    const byId = new Map(run.operations.map((o) => [o.id, o]));
    const skipIfBlocked = (op: Operation): boolean => {
      const blocker = op.dependsOn.map((d) => byId.get(d)!).find((d) => FAILED.has(d.status));
      if (!blocker) return false;
      op.status = 'SKIPPED';
      op.reason =
        blocker.status === 'SKIPPED'
          ? `depends on ${blocker.id}, which was skipped`
          : `depends on ${blocker.id}, which ended ${blocker.status}${blocker.task?.error ? ` (${blocker.task.error.code})` : ''}`;
      this.progress(run, op);
      return true;
    };
    const ready = (op: Operation) => op.status === 'PENDING' && op.dependsOn.every((d) => byId.get(d)!.status === 'OK');
    if (run.execution === 'sequential') {
      // Declared order, except that an operation waits for the ones it depends on.
      const pending = [...run.operations];
      while (pending.length) {
        const i = pending.findIndex((op) => op.dependsOn.every((d) => !pending.some((p) => p.id === d)));
        const op = pending.splice(i, 1)[0]!;
        if (!skipIfBlocked(op)) await this.runOperation(run, op, byId);
      }
      return;
    }
    const running = new Map<string, Promise<void>>();
    for (;;) {
      let changed = true;
      while (changed) {
        changed = false;
        for (const op of run.operations) if (op.status === 'PENDING' && skipIfBlocked(op)) changed = true;
      }
      for (const op of run.operations) {
        if (ready(op) && !running.has(op.id))
          running.set(
            op.id,
            this.runOperation(run, op, byId).finally(() => running.delete(op.id)),
          );
      }
      if (running.size === 0) return;
      await Promise.race(running.values());
    }
  }

  private async runOperation(run: BulkRun, op: Operation, byId: Map<string, Operation>): Promise<void> {
    op.status = 'RUNNING';
    let input: TaskInput;
    try {
      input = substitute(op.input, (ref) => {
        const [source, ...path] = ref.split('.');
        const value = lookup(byId.get(source!)?.task, path);
        if (value === undefined) throw new AionError('BULK_REF_UNRESOLVED', `operation ${op.id}: ${ref} does not exist in ${source}'s result`);
        return value;
      }) as TaskInput;
      input = validateTaskInput(input, `operation ${op.id}`);
      const submitted = await this.tasks.submit({ ...input, wait: undefined }, run.caller);
      op.taskId = submitted.task.task_id;
      this.progress(run, op);
      op.task = (await this.tasks.finished(op.taskId)) ?? submitted.task;
      op.status = op.task.status === 'OK' ? 'OK' : (op.task.status as OperationStatus);
    } catch (err) {
      op.status = 'ERROR';
      op.reason = (err as Error).message;
    }
    this.progress(run, op);
  }

  dispose(): void {
    clearInterval(this.sweeper);
  }
}
