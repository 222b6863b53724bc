import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { TelemetryBatch } from '@aion/extension-api';
import type { RouterTelemetryBatch } from '@aion/ext-router';
import type { PreviewTelemetry } from '@aion/ext-preview';

/** Seconds; from a cache hit to a slow model call. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const RPC_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5];
/** Seconds; a static site takes one, a React Native bundle minutes. */
const BUILD_TIME_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800];
const HOST_STATES = ['running', 'unresponsive', 'exited', 'disabled'] as const;
const CIRCUIT_STATES = ['closed', 'half-open', 'open'] as const;

/**
 * Every metric Aion exports, fed by `kernel.telemetry` and `router.telemetry`. Labels are bounded:
 * route templates, protocol methods, host keys, configured providers and models, stable error codes.
 */
export class AionMetrics {
  readonly registry = new Registry();
  private readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  private readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  private readonly inFlight: Gauge;
  private readonly rateLimited: Counter<'route'>;
  private readonly rpcDuration: Histogram<'host' | 'method' | 'outcome'>;
  private readonly hostRestarts: Counter<'host'>;
  private readonly hostState: Gauge<'host' | 'kind' | 'state'>;
  private readonly providerRequests: Counter<'provider' | 'model' | 'outcome'>;
  private readonly providerDuration: Histogram<'provider' | 'model' | 'outcome'>;
  private readonly providerErrors: Counter<'provider' | 'model' | 'code'>;
  private readonly providerTokens: Counter<'provider' | 'model' | 'direction'>;
  private readonly providerCost: Counter<'provider' | 'model'>;
  private readonly routerDecisions: Counter<'route' | 'reason'>;
  private readonly circuitState: Gauge<'provider' | 'model' | 'state'>;
  private readonly restartsSeen = new Map<string, number>();
  private readonly previewBuildTime: Histogram<'outcome'>;
  private readonly previewFailures: Counter<'code'>;
  private readonly previewSuccesses: Counter;
  private readonly previewUploadFailures: Counter;

  constructor(options: { defaultMetrics: boolean; prefix?: string }) {
    const r = this.registry;
    const p = options.prefix ?? 'aion_';
    if (options.defaultMetrics) collectDefaultMetrics({ register: r, prefix: p });
    this.httpRequests = new Counter({
      name: `${p}http_requests_total`,
      help: 'HTTP requests answered, by route template, method and status.',
      labelNames: ['method', 'route', 'status'],
      registers: [r],
    });
    this.httpDuration = new Histogram({
      name: `${p}http_request_duration_seconds`,
      help: 'Time from request to the end of the answer, by route template, method and status.',
      labelNames: ['method', 'route', 'status'],
      buckets: LATENCY_BUCKETS,
      registers: [r],
    });
    this.inFlight = new Gauge({ name: `${p}http_requests_in_flight`, help: 'Requests holding a dispatch slot at the last kernel report.', registers: [r] });
    this.rateLimited = new Counter({
      name: `${p}rate_limit_rejections_total`,
      help: 'Requests refused with 429 RATE_LIMITED, by route template.',
      labelNames: ['route'],
      registers: [r],
    });
    this.rpcDuration = new Histogram({
      name: `${p}rpc_call_duration_seconds`,
      help: 'Kernel to extension-host calls, by host and protocol method.',
      labelNames: ['host', 'method', 'outcome'],
      buckets: RPC_BUCKETS,
      registers: [r],
    });
    this.hostRestarts = new Counter({
      name: `${p}extension_host_restarts_total`,
      help: 'Extension host starts after the first, by host.',
      labelNames: ['host'],
      registers: [r],
    });
    this.hostState = new Gauge({
      name: `${p}extension_host_state`,
      help: 'Each extension host: 1 for its current state (running, unresponsive, exited, disabled), 0 for the others.',
      labelNames: ['host', 'kind', 'state'],
      registers: [r],
    });
    this.providerRequests = new Counter({
      name: `${p}provider_requests_total`,
      help: 'Model provider calls, by provider, model and outcome (ok, error, cancelled).',
      labelNames: ['provider', 'model', 'outcome'],
      registers: [r],
    });
    this.providerDuration = new Histogram({
      name: `${p}provider_request_duration_seconds`,
      help: 'Model provider call latency, by provider, model and outcome.',
      labelNames: ['provider', 'model', 'outcome'],
      buckets: LATENCY_BUCKETS,
      registers: [r],
    });
    this.providerErrors = new Counter({
      name: `${p}provider_errors_total`,
      help: 'Failed model provider calls, by provider, model and error code.',
      labelNames: ['provider', 'model', 'code'],
      registers: [r],
    });
    this.providerTokens = new Counter({
      name: `${p}provider_tokens_total`,
      help: 'Tokens of successful calls, by provider, model and direction (input, output).',
      labelNames: ['provider', 'model', 'direction'],
      registers: [r],
    });
    this.providerCost = new Counter({
      name: `${p}provider_cost_usd_total`,
      help: 'Estimated cost of successful calls in US dollars, by provider and model.',
      labelNames: ['provider', 'model'],
      registers: [r],
    });
    this.routerDecisions = new Counter({
      name: `${p}router_decisions_total`,
      help: 'Routing decisions, by the chosen route (local, api, none) and reason (ai-router, preferred, policy-override, denied, no-route).',
      labelNames: ['route', 'reason'],
      registers: [r],
    });
    this.previewBuildTime = new Histogram({
      name: `${p}preview_build_time_seconds`,
      help: 'Preview builds from start to end, by outcome (success, failure).',
      labelNames: ['outcome'],
      buckets: BUILD_TIME_BUCKETS,
      registers: [r],
    });
    this.previewFailures = new Counter({
      name: `${p}preview_build_failures_total`,
      help: 'Failed preview builds, by error code (PREVIEW_TIMEOUT, PREVIEW_BUILD_FAILED, …).',
      labelNames: ['code'],
      registers: [r],
    });
    this.previewSuccesses = new Counter({ name: `${p}preview_build_success_total`, help: 'Preview builds that produced a bundle.', registers: [r] });
    this.previewUploadFailures = new Counter({
      name: `${p}preview_upload_failures_total`,
      help: 'Preview bundles the bundle store refused (after its retries).',
      registers: [r],
    });
    this.circuitState = new Gauge({
      name: `${p}circuit_state`,
      help: 'Each provider/model circuit breaker: 1 for its current state (closed, half-open, open), 0 for the others.',
      labelNames: ['provider', 'model', 'state'],
      registers: [r],
    });
  }

  applyKernel(batch: TelemetryBatch): void {
    for (const h of batch.http) {
      const labels = { method: h.method, route: h.route, status: String(h.status) };
      this.httpRequests.inc(labels, h.durationsMs.length);
      for (const ms of h.durationsMs) this.httpDuration.observe(labels, ms / 1000);
      if (h.status === 429 && h.code === 'RATE_LIMITED') this.rateLimited.inc({ route: h.route }, h.durationsMs.length);
    }
    for (const c of batch.rpc) {
      const labels = { host: c.host, method: c.method, outcome: c.failed ? 'error' : 'ok' };
      for (const ms of c.durationsMs) this.rpcDuration.observe(labels, ms / 1000);
    }
    this.inFlight.set(batch.inFlightRequests);
    for (const host of batch.hosts) {
      const restarts = Math.max(0, host.starts - 1);
      const seen = this.restartsSeen.get(host.key) ?? 0;
      if (restarts > seen) this.hostRestarts.inc({ host: host.key }, restarts - seen);
      else if (!this.restartsSeen.has(host.key)) this.hostRestarts.inc({ host: host.key }, 0);
      this.restartsSeen.set(host.key, Math.max(seen, restarts));
      for (const state of HOST_STATES) this.hostState.set({ host: host.key, kind: host.kind, state }, host.state === state ? 1 : 0);
    }
  }

  applyRouter(batch: RouterTelemetryBatch): void {
    for (const c of batch.calls) {
      const labels = { provider: c.provider, model: c.model, outcome: c.outcome };
      if (c.durationsMs.length > 0) {
        this.providerRequests.inc(labels, c.durationsMs.length);
        for (const ms of c.durationsMs) this.providerDuration.observe(labels, ms / 1000);
        if (c.outcome === 'error') this.providerErrors.inc({ provider: c.provider, model: c.model, code: c.code ?? 'UNKNOWN' }, c.durationsMs.length);
      }
      if (c.inputTokens > 0) this.providerTokens.inc({ provider: c.provider, model: c.model, direction: 'input' }, c.inputTokens);
      if (c.outputTokens > 0) this.providerTokens.inc({ provider: c.provider, model: c.model, direction: 'output' }, c.outputTokens);
      if (c.costUsd > 0) this.providerCost.inc({ provider: c.provider, model: c.model }, c.costUsd);
    }
    for (const d of batch.decisions) this.routerDecisions.inc({ route: d.route, reason: d.reason }, d.count);
    for (const c of batch.circuits)
      for (const state of CIRCUIT_STATES) this.circuitState.set({ provider: c.provider, model: c.model, state }, c.state === state ? 1 : 0);
  }

  applyPreview(batch: PreviewTelemetry): void {
    for (const b of batch.builds) {
      this.previewBuildTime.observe({ outcome: b.outcome }, b.seconds);
      if (b.outcome === 'success') this.previewSuccesses.inc();
      else this.previewFailures.inc({ code: b.code ?? 'UNKNOWN' });
    }
    if (batch.uploadFailures > 0) this.previewUploadFailures.inc(batch.uploadFailures);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Gauges other extensions read at scrape time (GPU readings from aion.accelerators), in prom-client's JSON shape. */
  private readonly sources: Array<() => Promise<GaugeFamily[]>> = [];

  addSource(source: () => Promise<GaugeFamily[]>): void {
    this.sources.push(source);
  }

  async metrics(): Promise<string> {
    const own = await this.registry.metrics();
    const extra = (await Promise.all(this.sources.map((s) => s().catch(() => [] as GaugeFamily[])))).flat();
    return extra.length === 0 ? own : `${own}${extra.map(renderGauge).join('')}`;
  }
}

/** One gauge family as another extension reports it (the shape of prom-client's `getMetricsAsJSON()`). */
export interface GaugeFamily {
  name: string;
  help: string;
  type: 'gauge';
  values: Array<{ labels: Record<string, string>; value: number }>;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

/** Prometheus text exposition of a family; names that are not valid metric or label names are dropped, not passed on. */
function renderGauge(family: GaugeFamily): string {
  if (!METRIC_NAME.test(family.name)) return '';
  const lines = [`# HELP ${family.name} ${family.help.replace(/\n/g, ' ')}`, `# TYPE ${family.name} gauge`];
  for (const { labels, value } of family.values) {
    if (typeof value !== 'number') continue;
    const pairs = Object.entries(labels)
      .filter(([k]) => LABEL_NAME.test(k))
      .map(([k, v]) => `${k}="${escapeLabel(String(v))}"`);
    lines.push(`${family.name}${pairs.length ? `{${pairs.join(',')}}` : ''} ${value}`);
  }
  return lines.join('\n') + '\n';
}
