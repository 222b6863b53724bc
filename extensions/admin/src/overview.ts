import { readFileSync } from 'node:fs';
import type { HostSnapshot, TelemetryBatch } from '@aion/extension-api';
import type { CatalogProvider, RouterTelemetryBatch, TaskResult } from '@aion/ext-router';

/** A host as the console shows it: the kernel's snapshot plus resident memory and restarts. */
export interface HostView extends HostSnapshot {
  rssBytes: number | null;
  restarts: number;
}

/** A provider's health, circuit and what it cost since this server started. */
export interface ProviderView {
  id: string;
  displayName: string | null;
  route: string | null;
  availability: string | null;
  detail: string | null;
  /** `closed`, `open` or `half-open` per model the router has called. */
  circuits: Record<string, string>;
  calls: number;
  errors: number;
  /** Mean latency of the calls since start, in milliseconds. */
  meanLatencyMs: number | null;
  /** Latency of the most recent calls, in milliseconds (the last 200). */
  p95LatencyMs: number | null;
  inputTokens: number;
  outputTokens: number;
  spendUsd: number;
}

/** A finished task without its content: what was asked for, where it went, and why. */
export interface TaskView {
  task_id: string;
  intent: string;
  status: string;
  engine: TaskResult['engine'];
  latency_ms: number;
  cost_usd: number;
  tokens: number;
  error: string | null;
  created_at: string;
  routing: TaskResult['routing'] | null;
  principal: string | null;
}

interface ProviderTotals {
  calls: number;
  errors: number;
  totalMs: number;
  recentMs: number[];
  inputTokens: number;
  outputTokens: number;
  spendUsd: number;
  circuits: Record<string, string>;
}

const RECENT_LATENCIES = 200;

/** Resident memory of a process, from /proc on Linux; null where it cannot be read. */
export function residentBytes(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  if (pid === process.pid) return process.memoryUsage.rss();
  try {
    const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb ? Number(kb) * 1024 : null;
  } catch {
    return null;
  }
}

/** What the console shows beyond `/v1/extensions`, gathered from kernel and router events as they arrive. */
export class Overview {
  private hosts: HostSnapshot[] = [];
  private readonly providers = new Map<string, ProviderTotals>();
  private readonly tasks: TaskView[] = [];

  constructor(private readonly recentTasks: number) {}

  applyKernel(batch: TelemetryBatch): void {
    this.hosts = batch.hosts;
  }

  applyRouter(batch: RouterTelemetryBatch): void {
    for (const call of batch.calls) {
      const t = this.totals(call.provider);
      t.calls += call.durationsMs.length;
      if (call.outcome === 'error') t.errors += call.durationsMs.length;
      for (const ms of call.durationsMs) t.totalMs += ms;
      t.recentMs.push(...call.durationsMs);
      if (t.recentMs.length > RECENT_LATENCIES) t.recentMs.splice(0, t.recentMs.length - RECENT_LATENCIES);
      t.inputTokens += call.inputTokens;
      t.outputTokens += call.outputTokens;
      t.spendUsd += call.costUsd;
    }
    for (const c of batch.circuits) this.totals(c.provider).circuits[c.model] = c.state;
  }

  /** Keeps the routing of a finished task, never its prompt or answer. */
  addTask(task: TaskResult, principal: string | undefined): TaskView {
    const view: TaskView = {
      task_id: task.task_id,
      intent: task.intent,
      status: task.status,
      engine: task.engine,
      latency_ms: task.usage.latency_ms,
      cost_usd: task.usage.cost_usd,
      tokens: task.usage.tokens.total,
      error: task.error?.code ?? null,
      created_at: task.created_at,
      routing: task.routing ?? null,
      principal: principal ?? null,
    };
    this.tasks.unshift(view);
    if (this.tasks.length > this.recentTasks) this.tasks.length = this.recentTasks;
    return view;
  }

  hostViews(): HostView[] {
    return this.hosts.map((h) => {
      // The kernel host is this process; its snapshot has no pid of its own.
      const pid = h.kind === 'kernel' ? process.pid : h.pid;
      const alive = h.state === 'running' || h.state === 'unresponsive';
      return { ...h, ...(pid !== undefined ? { pid } : {}), rssBytes: alive ? residentBytes(pid) : null, restarts: Math.max(0, h.starts - 1) };
    });
  }

  /** Providers the router lists (when it runs), merged with what its telemetry reported. */
  providerViews(catalog: CatalogProvider[] | undefined): ProviderView[] {
    const ids = new Set([...(catalog ?? []).map((p) => p.id), ...this.providers.keys()]);
    return [...ids].sort().map((id) => {
      const p = catalog?.find((c) => c.id === id);
      const t = this.providers.get(id);
      return {
        id,
        displayName: p?.displayName ?? null,
        route: p?.route ?? null,
        availability: p?.availability ?? null,
        detail: p?.detail ?? p?.noAccelerator ?? null,
        circuits: { ...(t?.circuits ?? {}) },
        calls: t?.calls ?? 0,
        errors: t?.errors ?? 0,
        meanLatencyMs: t && t.calls > 0 ? Math.round(t.totalMs / t.calls) : null,
        p95LatencyMs: t && t.recentMs.length > 0 ? percentile(t.recentMs, 0.95) : null,
        inputTokens: t?.inputTokens ?? 0,
        outputTokens: t?.outputTokens ?? 0,
        spendUsd: Math.round((t?.spendUsd ?? 0) * 1e6) / 1e6,
      };
    });
  }

  taskViews(): TaskView[] {
    return [...this.tasks];
  }

  private totals(provider: string): ProviderTotals {
    let t = this.providers.get(provider);
    if (!t) this.providers.set(provider, (t = { calls: 0, errors: 0, totalMs: 0, recentMs: [], inputTokens: 0, outputTokens: 0, spendUsd: 0, circuits: {} }));
    return t;
  }
}

function percentile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);
}
