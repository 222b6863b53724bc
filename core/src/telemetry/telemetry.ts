import { inject, injectable } from 'inversify';
import { TELEMETRY_EVENT, type HostSnapshot, type HttpRequestSamples, type RpcCallSamples, type TelemetryBatch } from '@aion/extension-api';

export { TELEMETRY_EVENT };
import { EventBus } from '../events/eventBus.js';
import { HostManager, type HostConnection } from '../hosts/hostManager.js';

/** How often aggregated samples leave the kernel. */
export const TELEMETRY_FLUSH_MS = 1_000;

/**
 * Aggregates what the edge and the host manager observe and emits it as one `kernel.telemetry` event
 * per interval. Knows nothing of any metrics system; costs one map lookup per sample, and nothing when
 * nobody listens.
 */
@injectable()
export class Telemetry {
  private http = new Map<string, HttpRequestSamples>();
  private rpc = new Map<string, RpcCallSamples>();
  private readonly starts = new Map<string, number>();
  private readonly crashes = new Map<string, number>();
  private readonly hostKinds = new Map<string, string>();
  private timer?: NodeJS.Timeout;
  private inFlight: () => number = () => 0;

  constructor(
    @inject(EventBus) private readonly events: EventBus,
    @inject(HostManager) private readonly hosts: HostManager,
  ) {
    hosts.onDidStartHost((host) => {
      this.starts.set(host.key, (this.starts.get(host.key) ?? 0) + 1);
      this.hostKinds.set(host.key, host.kind);
      host.onRequestDone = (method, ms, failed) => this.recordRpc(host, method, ms, failed);
    });
    hosts.onDidCrash(({ host }) => this.crashes.set(host.key, (this.crashes.get(host.key) ?? 0) + 1));
  }

  /** Whether anything listens: the edge and hosts skip recording otherwise. */
  get enabled(): boolean {
    return this.events.hasListeners(TELEMETRY_EVENT);
  }

  start(inFlight: () => number, intervalMs = TELEMETRY_FLUSH_MS): void {
    this.inFlight = inFlight;
    this.timer = setInterval(() => this.flush(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  recordHttp(method: string, route: string, status: number, ms: number, code?: string): void {
    if (!this.enabled) return;
    const key = `${method} ${status} ${code ?? ''} ${route}`;
    let entry = this.http.get(key);
    if (!entry) this.http.set(key, (entry = { method, route, status, ...(code ? { code } : {}), durationsMs: [] }));
    entry.durationsMs.push(ms);
  }

  private recordRpc(host: HostConnection, method: string, ms: number, failed: boolean): void {
    if (!this.enabled) return;
    const key = `${host.key} ${method} ${failed}`;
    let entry = this.rpc.get(key);
    if (!entry) this.rpc.set(key, (entry = { host: host.key, method, failed, durationsMs: [] }));
    entry.durationsMs.push(ms);
  }

  /** Emits what was gathered since the last flush; drops it when nobody listens. */
  flush(): void {
    const http = [...this.http.values()];
    const rpc = [...this.rpc.values()];
    this.http = new Map();
    this.rpc = new Map();
    if (!this.enabled) return;
    this.events.emit(TELEMETRY_EVENT, {
      intervalMs: TELEMETRY_FLUSH_MS,
      http,
      rpc,
      hosts: this.snapshotHosts(),
      inFlightRequests: this.inFlight(),
    } satisfies TelemetryBatch);
  }

  snapshotHosts(): HostSnapshot[] {
    const running = new Map(this.hosts.all().map((h) => [h.key, h]));
    const disabled = new Set(this.hosts.disabledHosts().map((d) => d.key));
    const keys = new Set([...this.hostKinds.keys(), ...running.keys()]);
    return [...keys].map((key) => {
      const h = running.get(key);
      return {
        key,
        kind: h?.kind ?? this.hostKinds.get(key) ?? 'unknown',
        state: disabled.has(key) ? 'disabled' : (h?.state ?? 'exited'),
        ...(h?.pid !== undefined ? { pid: h.pid } : {}),
        extensions: h ? [...h.extensions] : [],
        starts: this.starts.get(key) ?? 0,
        crashes: this.crashes.get(key) ?? 0,
      };
    });
  }
}
