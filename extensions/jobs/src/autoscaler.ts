import { spawn, type ChildProcess } from 'node:child_process';

export interface ScalePolicy {
  minWorkers: number;
  maxWorkers: number;
  /** Waiting jobs per worker above which one more worker is wanted. */
  scaleUpDepth: number;
  /** Waiting jobs per worker below which one fewer is wanted. */
  scaleDownDepth: number;
}

export interface ScaleInput {
  /** Waiting jobs per queue, cleanup queues included (they are left out here). */
  depths: Array<{ queue: string; depth: number; workerType: 'cpu' | 'gpu' | 'cleanup' }>;
  /** Workers the scale action runs now. */
  current: number;
}

export interface ScaleDecision {
  workers: number;
  reason: string;
}

/**
 * The autoscaler's decision, pure: depth of the scalable queues (cleanup never counts: it has one
 * worker, always) against thresholds per worker, one step at a time, within [min, max].
 */
export function decideWorkers(input: ScaleInput, policy: ScalePolicy): ScaleDecision {
  const min = Math.max(0, Math.min(policy.minWorkers, policy.maxWorkers));
  const max = Math.max(min, policy.maxWorkers);
  const depth = input.depths.filter((d) => d.workerType !== 'cleanup').reduce((n, d) => n + Math.max(0, d.depth), 0);
  const current = Math.max(0, input.current);
  const clamp = (n: number) => Math.min(max, Math.max(min, n));
  if (current < min) return { workers: min, reason: `below the minimum of ${min}` };
  if (current > max) return { workers: max, reason: `above the maximum of ${max}` };
  if (current === 0) return depth > 0 ? { workers: clamp(1), reason: `${depth} waiting and no worker` } : { workers: clamp(0), reason: 'nothing waiting' };
  const perWorker = depth / current;
  if (perWorker > policy.scaleUpDepth) return { workers: clamp(current + 1), reason: `${depth} waiting is more than ${policy.scaleUpDepth} per worker` };
  if (perWorker < policy.scaleDownDepth) return { workers: clamp(current - 1), reason: `${depth} waiting is less than ${policy.scaleDownDepth} per worker` };
  return { workers: current, reason: 'within thresholds' };
}

/** What the autoscaler drives: the local action below, or one an extension contributes (`scaleActions`). */
export interface ScaleAction {
  current(): Promise<number> | number;
  scale(workers: number): Promise<{ workers: number }>;
}

/** Polls depths and applies `decideWorkers` through an action. */
export class Autoscaler {
  private timer?: NodeJS.Timeout;
  private running = false;
  lastDecision?: ScaleDecision & { at: string };

  constructor(
    private readonly options: {
      policy: () => ScalePolicy;
      pollIntervalMs: number;
      depths: () => Promise<ScaleInput['depths']>;
      action: () => Promise<ScaleAction>;
      log: (level: 'info' | 'warn', message: string) => void;
    },
  ) {}

  /** One round: read depths, decide, scale when the decision differs. */
  async tick(): Promise<ScaleDecision> {
    const action = await this.options.action();
    const decision = decideWorkers({ depths: await this.options.depths(), current: await action.current() }, this.options.policy());
    this.lastDecision = { ...decision, at: new Date().toISOString() };
    if (decision.workers !== (await action.current())) {
      this.options.log('info', `autoscaler: ${decision.workers} workers (${decision.reason})`);
      await action.scale(decision.workers);
    }
    return decision;
  }

  start(): void {
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = true;
      void this.tick()
        .catch((err) => this.options.log('warn', `autoscaler round failed: ${(err as Error).message}`))
        .finally(() => (this.running = false));
    }, this.options.pollIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** Runs `aion worker` processes on this machine: scale up spawns, scale down stops the newest with SIGTERM. */
export class LocalWorkerAction implements ScaleAction {
  private readonly children: ChildProcess[] = [];

  constructor(
    private readonly options: {
      cliPath: string;
      args: string[];
      env: NodeJS.ProcessEnv;
      log: (level: 'info' | 'warn', message: string) => void;
    },
  ) {}

  current(): number {
    return this.children.length;
  }

  get pids(): number[] {
    return this.children.map((c) => c.pid!).filter(Boolean);
  }

  async scale(workers: number): Promise<{ workers: number }> {
    while (this.children.length < workers) {
      const child = spawn(process.execPath, [this.options.cliPath, 'worker', ...this.options.args], {
        env: this.options.env,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      child.stderr?.on('data', (d: Buffer) => this.options.log('warn', `worker ${child.pid}: ${d.toString().trim()}`));
      child.once('exit', (code, signal) => {
        const i = this.children.indexOf(child);
        if (i >= 0) this.children.splice(i, 1);
        if (code !== 0 && signal !== 'SIGTERM') this.options.log('warn', `worker ${child.pid} exited (${signal ?? code})`);
      });
      this.children.push(child);
    }
    const stopping: Array<Promise<void>> = [];
    while (this.children.length > workers) {
      const child = this.children.pop()!;
      stopping.push(new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', () => resolve()))));
      child.kill('SIGTERM');
    }
    await Promise.all(stopping);
    return { workers: this.children.length };
  }

  async stopAll(): Promise<void> {
    await this.scale(0);
  }
}
