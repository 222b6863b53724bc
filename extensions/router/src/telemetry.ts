import * as aion from '@aion/extension-api';
import type { HealthBook } from './providers/health.js';
import type { CircuitState } from './providers/health.js';

/** The event the router emits about once a second while it has something to report. */
export const ROUTER_TELEMETRY_EVENT = 'router.telemetry';
const FLUSH_MS = 1_000;

/** Provider calls of one provider, model and outcome since the last flush. */
export interface ProviderCallSamples {
  provider: string;
  model: string;
  outcome: 'ok' | 'error' | 'cancelled';
  /** The error code of failed calls. */
  code?: string;
  durationsMs: number[];
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
}

export interface RouterTelemetryBatch {
  intervalMs: number;
  calls: ProviderCallSamples[];
  /** Decisions by the route of the first candidate (`local`, `api`, or `none`) and who chose it. */
  decisions: Array<{ route: string; reason: string; count: number }>;
  /** Every engine the router has called, with its circuit state now. */
  circuits: Array<{ provider: string; model: string; state: CircuitState }>;
}

/**
 * Counts what the router does for whoever listens to `router.telemetry` (the observability
 * extension): a map update per call, one event a second.
 */
export class RouterTelemetry implements aion.Disposable {
  private calls = new Map<string, ProviderCallSamples>();
  private decisions = new Map<string, { route: string; reason: string; count: number }>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly health: HealthBook) {
    this.timer = setInterval(() => this.flush(), FLUSH_MS);
    this.timer.unref();
  }

  decision(route: string, reason: string): void {
    const key = `${route} ${reason}`;
    const entry = this.decisions.get(key);
    if (entry) entry.count++;
    else this.decisions.set(key, { route, reason, count: 1 });
  }

  call(engine: string, outcome: ProviderCallSamples['outcome'], ms: number, code?: string): void {
    const slash = engine.indexOf('/');
    const provider = engine.slice(0, slash);
    const model = engine.slice(slash + 1);
    this.entry(provider, model, outcome, code).durationsMs.push(ms);
  }

  usage(engine: string, inputTokens: number, outputTokens: number, costUsd: number): void {
    const slash = engine.indexOf('/');
    const entry = this.entry(engine.slice(0, slash), engine.slice(slash + 1), 'ok');
    entry.inputTokens += inputTokens;
    entry.outputTokens += outputTokens;
    entry.costUsd += costUsd;
  }

  private entry(provider: string, model: string, outcome: ProviderCallSamples['outcome'], code?: string): ProviderCallSamples {
    const key = `${provider}/${model} ${outcome} ${code ?? ''}`;
    let entry = this.calls.get(key);
    if (!entry)
      this.calls.set(key, (entry = { provider, model, outcome, ...(code ? { code } : {}), durationsMs: [], inputTokens: 0, outputTokens: 0, costUsd: 0 }));
    return entry;
  }

  flush(): void {
    const circuits = Object.entries(this.health.snapshot()).map(([engine, h]) => {
      const slash = engine.indexOf('/');
      return { provider: engine.slice(0, slash), model: engine.slice(slash + 1), state: h.circuit };
    });
    if (this.calls.size === 0 && this.decisions.size === 0 && circuits.length === 0) return;
    const batch: RouterTelemetryBatch = { intervalMs: FLUSH_MS, calls: [...this.calls.values()], decisions: [...this.decisions.values()], circuits };
    this.calls = new Map();
    this.decisions = new Map();
    aion.events.emit(ROUTER_TELEMETRY_EVENT, batch);
  }

  dispose(): void {
    clearInterval(this.timer);
  }
}
