import { randomUUID } from 'node:crypto';
import * as aion from '@aion/extension-api';
import { AionError, CancellationTokenSource, ErrorCodes, type Disposable } from '@aion/extension-api';
import type { Caller } from '../caller.js';
import { routeHeader } from '../decision/decision.js';
import type { Abort, ExecutionResult, RouterEngine } from './engine.js';
import { EventLog, type TaskEvent } from './eventLog.js';
import type { TaskRelay } from './relay.js';
import { hashBody, toRouteRequest, type RouteDefaults, type TaskInput } from '../frontDoor/input.js';
import type { ConcurrencyLimiter } from '../decision/limiter.js';
import { mergeTools, type SkillSet, type SkillTools } from '../tools/skillTools.js';
import { FINAL_STATUSES, type StoredTask, type TaskResult, type TaskStore } from './taskStore.js';
import { runToolLoop, type LoopResult } from '../tools/toolLoop.js';
import type { ToolCall } from '../providers/providerTypes.js';
import type { Attempt, Candidate, Decision, Priority, RouteRequest } from '../types.js';

export interface TaskSettings {
  defaults: RouteDefaults & { timeoutMs: number; maxTimeoutMs: number; maxWaitMs: number };
  limits: { maxRunningTasks: number; maxQueuedTasks: number; keyConcurrency: number; retryAfterSeconds: number };
  idempotencyTtlMs: number;
  eventRetentionMs: number;
  taskRetentionMs: number;
}

interface LiveTask {
  stored: StoredTask;
  request: RouteRequest;
  events: EventLog;
  abort: Abort & { source: CancellationTokenSource };
  done: Promise<TaskResult>;
  /** Writes of this task, in order. */
  writes: Promise<void>;
  decision?: Decision;
  /** Skills offered as tools: the task runs the tool loop. */
  skills?: SkillSet;
  queued?: { priority: Priority; start: () => void };
}

export interface Submitted {
  task: TaskResult;
  /** An earlier submission with the same Idempotency-Key and body. */
  replayed: boolean;
  /** The x-aion-route header, once decided. */
  route?: string;
}

/** How long a cancel passed to another kernel waits to answer the task's final state. */
const CANCEL_WAIT_MS = 5_000;
/** Tasks: submission (idempotent), a bounded priority queue, execution, events, cancel, timeout, storage. */
export class TaskService implements Disposable {
  private readonly live = new Map<string, LiveTask>();
  private relay?: TaskRelay;
  private running = 0;
  private readonly queue: Record<Priority, LiveTask[]> = { high: [], normal: [], low: [] };
  private readonly sweeper: NodeJS.Timeout;
  /** This kernel's id in the cluster, once durable tasks are on: stored on every task it runs. */
  private kernelId?: string;
  private recovery?: NodeJS.Timeout;
  private recovering = false;

  constructor(
    private readonly engine: RouterEngine,
    private readonly store: TaskStore,
    private readonly keyLimiter: ConcurrencyLimiter,
    private readonly skills: SkillTools,
    private readonly settings: () => TaskSettings,
    private readonly onFinished: (task: TaskResult, caller: Caller, result: ExecutionResult | undefined) => void,
  ) {
    this.sweeper = setInterval(() => this.sweep(), 30_000);
    this.sweeper.unref();
  }

  get stats(): { running: number; queued: number; live: number } {
    return { running: this.running, queued: this.queue.high.length + this.queue.normal.length + this.queue.low.length, live: this.live.size };
  }

  /** Accepts a task (or finds the one an Idempotency-Key names) and starts it. */
  async submit(input: TaskInput, caller: Caller, options: { idempotencyKey?: string; body?: unknown } = {}): Promise<Submitted> {
    const s = this.settings();
    const now = Date.now();
    const taskId = `task_${randomUUID().replace(/-/g, '')}`;
    const requestHash = hashBody(options.body ?? input);
    // Before the Idempotency-Key is claimed: a request refused here leaves no task behind.
    const skills = input.skills ? await this.skills.resolve(input.skills, caller.principal, input.max_steps) : undefined;
    if (options.idempotencyKey !== undefined) {
      if (!/^[\x21-\x7e]{1,255}$/.test(options.idempotencyKey))
        throw new AionError(ErrorCodes.BAD_REQUEST, 'Idempotency-Key must be 1 to 255 visible ASCII characters');
      const scope = `${caller.tenant}\u0000${caller.sub}\u0000${options.idempotencyKey}`;
      const existing = await this.store.claimIdempotency({ scope, request_hash: requestHash, task_id: taskId, expires_at: now + s.idempotencyTtlMs });
      if (existing) {
        if (existing.request_hash !== requestHash) {
          throw new AionError(
            'IDEMPOTENCY_KEY_REUSED',
            `Idempotency-Key ${options.idempotencyKey} was used with a different body (task ${existing.task_id}); use a new key for a new request`,
            { status: 422, details: { task_id: existing.task_id } },
          );
        }
        const task = await this.awaitExisting(existing.task_id);
        return { task, replayed: true, route: this.routeOf(existing.task_id) };
      }
    }
    const request = toRouteRequest(input, s.defaults, caller.tenant, caller.user);
    if (skills) request.tools = mergeTools(request.tools, skills);
    if (s.limits.keyConcurrency > 0 && !this.keyLimiter.tryAcquire(`key:${caller.apiKey}`, s.limits.keyConcurrency)) {
      throw new AionError(
        ErrorCodes.RATE_LIMITED,
        `API key ${caller.apiKey} has ${s.limits.keyConcurrency} tasks in flight, its limit; retry when one finishes`,
        { headers: { 'Retry-After': String(s.limits.retryAfterSeconds) } },
      );
    }
    const acquiredKey = s.limits.keyConcurrency > 0;
    if (this.running >= s.limits.maxRunningTasks && this.stats.queued >= s.limits.maxQueuedTasks) {
      if (acquiredKey) this.keyLimiter.release(`key:${caller.apiKey}`);
      throw new AionError('SATURATED', `the router is saturated (${this.running} tasks running, ${this.stats.queued} queued); retry shortly`, {
        status: 503,
        headers: { 'Retry-After': String(s.limits.retryAfterSeconds) },
      });
    }
    const created = new Date(now).toISOString();
    const task: TaskResult = {
      schema_version: '1.0',
      task_id: taskId,
      intent: request.intent,
      status: 'QUEUED',
      engine: null,
      result: null,
      usage: { latency_ms: 0, tokens: { input: 0, output: 0, total: 0 }, cost_usd: 0 },
      error: null,
      created_at: created,
      updated_at: created,
    };
    if (input.metadata) task.metadata = input.metadata;
    const stored: StoredTask = {
      task,
      tenant_id: caller.tenant,
      owner: caller.sub,
      api_key: caller.apiKey,
      request_hash: requestHash,
      expires_at: now + s.taskRetentionMs,
      kernel_id: this.kernelId,
      // Only a task without skills may run twice: a skill it called may have acted already.
      input: this.kernelId && !skills ? JSON.stringify(input) : undefined,
    };
    const live = this.track(stored, request, skills);
    try {
      await this.persist(live);
    } catch (err) {
      this.live.delete(taskId);
      if (acquiredKey) this.keyLimiter.release(`key:${caller.apiKey}`);
      throw new AionError(ErrorCodes.SERVICE_UNAVAILABLE, `the task could not be stored: ${(err as Error).message}`, {
        headers: { 'Retry-After': String(s.limits.retryAfterSeconds) },
      });
    }
    const timeoutMs = Math.min(input.timeout_ms ?? s.defaults.timeoutMs, s.defaults.maxTimeoutMs);
    live.done = this.run(live, caller, timeoutMs).finally(() => {
      if (acquiredKey) this.keyLimiter.release(`key:${caller.apiKey}`);
    });
    return { task, replayed: false };
  }

  /** A task this kernel now runs: its events (relayed to other kernels), its cancellation, its writes in order. */
  private track(stored: StoredTask, request: RouteRequest, skills: SkillSet | undefined, idsAfter = 0): LiveTask {
    const taskId = stored.task.task_id;
    const source = new CancellationTokenSource();
    const live: LiveTask = {
      stored,
      request,
      skills,
      events: new EventLog(this.relay ? (event) => this.relay!.publish(taskId, event) : undefined, idsAfter),
      abort: { token: source.token, source },
      done: undefined as unknown as Promise<TaskResult>,
      writes: Promise.resolve(),
    };
    this.live.set(taskId, live);
    return live;
  }

  private async awaitExisting(taskId: string): Promise<TaskResult> {
    // Another request holding the same key may not have stored its task yet.
    for (let i = 0; i < 40; i++) {
      const found = this.live.get(taskId)?.stored ?? (await this.store.get(taskId));
      if (found) return found.task;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new AionError(ErrorCodes.CONFLICT, `a request with this Idempotency-Key is still being accepted (task ${taskId}); retry shortly`, {
      headers: { 'Retry-After': '1' },
    });
  }

  private routeOf(taskId: string): string | undefined {
    const live = this.live.get(taskId);
    return live?.decision ? routeHeader(live.decision, live.stored.task.routing?.attempts) : undefined;
  }

  private async run(live: LiveTask, caller: Caller, timeoutMs: number): Promise<TaskResult> {
    const timer = setTimeout(() => {
      live.abort.reason = 'timeout';
      live.abort.source.cancel();
    }, timeoutMs);
    let result: ExecutionResult | undefined;
    try {
      await this.slot(live);
      if (live.abort.token.isCancellationRequested) return await this.finish(live, caller, undefined, undefined);
      this.update(live, { status: 'RUNNING' });
      void this.persist(live).catch(() => undefined);
      let decision: Decision;
      try {
        decision = await this.engine.route(live.request, { sub: caller.sub, tenant_id: caller.tenant });
      } catch (err) {
        return await this.finish(live, caller, undefined, err);
      }
      live.decision = decision;
      this.update(live, { engine: this.engine.engineInfo(decision) });
      const first = decision.candidates[0]!;
      live.events.push('partial', {
        kind: 'route',
        engine: live.stored.task.engine,
        candidates: decision.candidates.map((c) => ({ engine: c.engine, score: c.score })),
        filtered: decision.filtered,
      });
      const observer = {
        attempt: (c: Candidate, _i: number, previous?: Attempt) => {
          if (previous) live.events.push('partial', { kind: 'fallback', from: previous.engine, to: c.engine, code: previous.code, message: previous.message });
          else if (c !== first) live.events.push('partial', { kind: 'engine', engine: c.engine });
        },
        token: (text: string) => live.events.push('token', { text }),
        toolCall: (call: ToolCall) => live.events.push('partial', { kind: 'tool_call', tool_call: call }),
        tool: (call: unknown) => live.events.push('tool', call),
        step: (step: unknown) => live.events.push('step', step),
      };
      result = live.skills
        ? await runToolLoop({
            engine: this.engine,
            skills: this.skills,
            set: live.skills,
            requestId: live.stored.task.task_id,
            decision,
            request: live.request,
            abort: live.abort,
            observer,
          })
        : await this.engine.execute(decision, live.request, live.abort, observer);
      return await this.finish(live, caller, result, undefined);
    } catch (err) {
      return await this.finish(live, caller, result, err);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits for a run slot; high priority first. */
  private slot(live: LiveTask): Promise<void> {
    const s = this.settings();
    if (this.running < s.limits.maxRunningTasks) {
      this.running++;
      return Promise.resolve();
    }
    // Hand-written rather than p-queue, which runs functions to completion: a slot here is held for a
    // task's whole life, streams included, released by the task itself, and a cancelled task leaves the queue at once.
    return new Promise<void>((resolve) => {
      const priority = live.request.priority;
      const start = () => {
        live.queued = undefined;
        this.running++;
        resolve();
      };
      live.queued = { priority, start };
      this.queue[priority].push(live);
      live.abort.token.onCancellationRequested(() => {
        if (!live.queued) return;
        const lane = this.queue[priority];
        const i = lane.indexOf(live);
        if (i >= 0) lane.splice(i, 1);
        live.queued = undefined;
        this.running++;
        resolve();
      });
    });
  }

  private releaseSlot(): void {
    this.running--;
    const next = this.queue.high.shift() ?? this.queue.normal.shift() ?? this.queue.low.shift();
    next?.queued?.start();
  }

  /** Stores the task's current state; writes of one task never overtake each other. */
  private persist(live: LiveTask): Promise<void> {
    const snapshot: StoredTask = { ...live.stored, task: { ...live.stored.task } };
    const write = live.writes.catch(() => undefined).then(() => this.store.put(snapshot));
    live.writes = write;
    return write;
  }

  private update(live: LiveTask, patch: Partial<TaskResult>): void {
    Object.assign(live.stored.task, patch, { updated_at: new Date().toISOString() });
  }

  private async finish(live: LiveTask, caller: Caller, result: ExecutionResult | undefined, err: unknown): Promise<TaskResult> {
    const task = live.stored.task;
    if (FINAL_STATUSES.has(task.status)) return task;
    const decision = live.decision;
    if (result) {
      this.update(live, {
        status: result.status,
        engine: this.engine.engineInfo(decision, result),
        result:
          result.status === 'OK' || result.text || result.toolCalls.length
            ? { text: result.text, tool_calls: result.toolCalls, finish_reason: result.finishReason ?? null }
            : null,
        usage: {
          latency_ms: result.latencyMs,
          tokens: { input: result.inputTokens, output: result.outputTokens, total: result.inputTokens + result.outputTokens },
          cost_usd: result.costUsd,
        },
        error: result.error ? { code: result.error.code, message: result.error.message } : null,
      });
      const loop = result as Partial<LoopResult>;
      if (loop.steps) Object.assign(task, { steps: loop.steps, transcript: loop.transcript });
    } else if (live.abort.token.isCancellationRequested) {
      this.update(live, {
        status: live.abort.reason === 'timeout' ? 'TIMEOUT' : 'CANCELED',
        error:
          live.abort.reason === 'timeout'
            ? { code: 'TIMEOUT', message: 'the task did not start within its timeout' }
            : { code: 'CANCELLED', message: 'the task was cancelled before it started' },
      });
    } else {
      const e = err instanceof Error ? err : new Error(String(err));
      const code = aion.isAionError(e) ? String(e.code) : ErrorCodes.INTERNAL;
      this.update(live, { status: 'ERROR', error: { code, message: e.message } });
    }
    if (decision) {
      task.routing = {
        privacy: decision.privacy,
        candidates: decision.candidates.map((c) => ({ engine: c.engine, score: c.score })),
        filtered: decision.filtered,
        attempts: result?.attempts ?? [],
      };
    }
    this.releaseSlot();
    // Stored before the final event goes out: a client that reads the task anywhere after it sees it final.
    await this.persist(live).catch(() => undefined);
    live.events.push(task.status === 'OK' ? 'done' : 'error', task.status === 'OK' ? task : { code: task.error?.code, message: task.error?.message, task });
    live.events.close();
    this.onFinished(task, caller, result);
    return task;
  }

  /** The canonical result, when `caller` may see the task. */
  async get(taskId: string, caller: Caller): Promise<TaskResult> {
    const stored = this.live.get(taskId)?.stored ?? (await this.store.get(taskId));
    if (!stored || !(caller.admin || (stored.tenant_id === caller.tenant && stored.owner === caller.sub))) {
      throw new AionError(ErrorCodes.NOT_FOUND, `no task ${taskId}`);
    }
    return stored.task;
  }

  routeHeaderOf(taskId: string): string | undefined {
    return this.routeOf(taskId);
  }

  /** Waits up to `ms` for the task to finish; answers its state either way. */
  async wait(taskId: string, ms: number, token?: aion.CancellationToken): Promise<TaskResult> {
    const live = this.live.get(taskId);
    if (!live || FINAL_STATUSES.has(live.stored.task.status) || ms <= 0) return live?.stored.task ?? (await this.store.get(taskId))!.task;
    let timer: NodeJS.Timeout | undefined;
    let sub: Disposable | undefined;
    await Promise.race([
      live.done,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ms);
        sub = token?.onCancellationRequested(() => resolve());
      }),
    ]);
    clearTimeout(timer);
    sub?.dispose();
    return live.stored.task;
  }

  /**
   * Durable tasks: every task this kernel runs carries its id, and every `intervalMs` it takes over
   * the unfinished tasks of kernels no longer among `members` (one conditional update per task, so one
   * kernel wins each). A task without skills is run again from the start; one with skills fails with
   * KERNEL_LOST, as a skill it called may have acted already. Needs a store shared by the kernels.
   */
  useCluster(kernelId: string, members: () => Promise<string[] | undefined>, intervalMs: number, warn: (message: string) => void): void {
    this.kernelId = kernelId;
    if (intervalMs <= 0) return;
    this.recovery = setInterval(() => {
      this.recoverOrphans(members).catch((err) => warn(`tasks of stopped kernels were not checked: ${(err as Error).message}`));
    }, intervalMs);
    this.recovery.unref();
  }

  /** Takes over the unfinished tasks of kernels that stopped; answers how many it took. */
  async recoverOrphans(members: () => Promise<string[] | undefined>): Promise<number> {
    if (this.recovering || !this.kernelId) return 0;
    this.recovering = true;
    try {
      const unfinished = (await this.store.unfinished()).filter((t) => t.kernel_id !== this.kernelId && !this.live.has(t.task_id));
      if (unfinished.length === 0) return 0;
      // Read after the tasks, never before: a kernel that joined since then could not own one of them unseen.
      const alive = await members();
      // A kernel that cannot see its peers cannot tell a stopped one from a live one.
      if (!alive) return 0;
      const known = new Set(alive);
      let taken = 0;
      for (const { task_id, kernel_id } of unfinished) {
        if (known.has(kernel_id)) continue;
        const stored = await this.store.takeOver(task_id, kernel_id, this.kernelId);
        if (!stored) continue;
        await this.resume(stored, kernel_id);
        taken++;
      }
      return taken;
    } finally {
      this.recovering = false;
    }
  }

  /** Runs a task taken over from `from` again, or fails it when it may not run twice. */
  private async resume(stored: StoredTask, from: string): Promise<void> {
    const s = this.settings();
    const task = stored.task;
    const retried = stored.input !== undefined;
    task.recoveries = [...(task.recoveries ?? []), { from_kernel: from, to_kernel: this.kernelId!, at: new Date().toISOString(), retried }];
    // Ids go on from the last one relayed, so a client's Last-Event-ID stays meaningful.
    const idsAfter = this.relay ? await this.relay.lastEventId(task.task_id).catch(() => 0) : 0;
    const caller: Caller = { sub: stored.owner, tenant: stored.tenant_id, user: stored.owner, apiKey: stored.api_key, admin: false };
    // The request is built below, for a task that runs again.
    const live = this.track({ ...stored, kernel_id: this.kernelId }, undefined as unknown as RouteRequest, undefined, idsAfter);
    if (!retried) {
      const error = {
        code: 'KERNEL_LOST',
        message: `the kernel running this task (${from}) stopped; the task called skills, which may have acted already, so it was not run again: submit it again if that is safe`,
      };
      this.update(live, { status: 'ERROR', error });
      live.events.push('error', { ...error, task });
      live.events.close();
      live.done = Promise.resolve(task);
      await this.persist(live);
      this.onFinished(task, caller, undefined);
      return;
    }
    const input = JSON.parse(stored.input!) as TaskInput;
    live.request = toRouteRequest(input, s.defaults, stored.tenant_id, stored.owner);
    delete task.routing;
    this.update(live, { status: 'QUEUED', engine: null, result: null, error: null });
    // What a client streamed so far came from the stopped kernel: the answer starts again here.
    live.events.push('partial', { kind: 'restart', reason: 'KERNEL_LOST', from_kernel: from });
    await this.persist(live);
    const timeoutMs = Math.min(input.timeout_ms ?? s.defaults.timeoutMs, s.defaults.maxTimeoutMs);
    live.done = this.run(live, caller, timeoutMs);
  }

  /** Resolves when the task is final (live tasks only). */
  finished(taskId: string): Promise<TaskResult> | undefined {
    return this.live.get(taskId)?.done;
  }

  /**
   * Lets tasks be followed and cancelled from every kernel sharing `relay` (Redis), whichever one runs
   * them. Call before tasks are submitted.
   */
  useRelay(relay: TaskRelay): void {
    this.relay = relay;
    relay.onCancel((taskId) => {
      const live = this.live.get(taskId);
      if (!live || live.events.isClosed) return;
      live.abort.reason ??= 'cancel';
      live.abort.source.cancel();
    });
  }

  async cancel(taskId: string, caller: Caller): Promise<TaskResult> {
    const task = await this.get(taskId, caller);
    const live = this.live.get(taskId);
    if (!live && !FINAL_STATUSES.has(task.status) && this.relay) {
      // Another kernel runs it: ask it, then answer what the task became (or where it is, if that takes long).
      await this.relay.requestCancel(taskId);
      for (let waited = 0; waited < CANCEL_WAIT_MS; waited += 50) {
        await new Promise((r) => setTimeout(r, 50));
        const now = (await this.store.get(taskId))?.task;
        if (now && FINAL_STATUSES.has(now.status)) return now;
      }
      return (await this.store.get(taskId))?.task ?? task;
    }
    if (FINAL_STATUSES.has(task.status) || !live) {
      if (!FINAL_STATUSES.has(task.status)) throw new AionError(ErrorCodes.CONFLICT, `task ${taskId} runs on another instance; cancel it there`);
      throw new AionError(ErrorCodes.CONFLICT, `task ${taskId} already finished with status ${task.status}`, { details: { status: task.status } });
    }
    live.abort.reason ??= 'cancel';
    live.abort.source.cancel();
    return live.done;
  }

  /**
   * The task's events after `afterId`, following live ones. A task whose log has been dropped
   * (finished long ago, or run by another instance) replays as its final event.
   */
  async events(taskId: string, caller: Caller, afterId: number): Promise<AsyncIterable<TaskEvent>> {
    const task = await this.get(taskId, caller);
    const live = this.live.get(taskId);
    if (live) return live.events.follow(afterId);
    // A task whose log is not here replays as its final event.
    const finalOf = (t: TaskResult): TaskEvent =>
      ({
        id: Number.MAX_SAFE_INTEGER,
        event: t.status === 'OK' ? 'done' : 'error',
        data: t.status === 'OK' ? t : { code: t.error?.code, message: t.error?.message, task: t },
      }) as TaskEvent;
    if (this.relay && !FINAL_STATUSES.has(task.status)) {
      // Running on another kernel: follow it through Redis, from the client's Last-Event-ID.
      return this.relay.follow(taskId, afterId, async () => {
        const now = (await this.store.get(taskId))?.task;
        return now && FINAL_STATUSES.has(now.status) ? finalOf(now) : undefined;
      });
    }
    return (async function* () {
      if (FINAL_STATUSES.has(task.status)) {
        yield finalOf(task);
      } else {
        throw new AionError(ErrorCodes.CONFLICT, `task ${taskId} runs on another instance; poll GET /v1/tasks/${taskId}`);
      }
    })();
  }

  private sweep(): void {
    const s = this.settings();
    const now = Date.now();
    for (const [id, live] of this.live) {
      if (live.events.isClosed && now - (live.events.closedAt ?? now) >= s.eventRetentionMs) this.live.delete(id);
    }
    void this.store.sweep(now).catch(() => undefined);
  }

  dispose(): void {
    clearInterval(this.sweeper);
    clearInterval(this.recovery);
    for (const live of this.live.values()) {
      if (!live.events.isClosed) {
        live.abort.reason = 'cancel';
        live.abort.source.cancel();
      }
    }
  }
}
