import type { PreviewMetricsSnapshot, PreviewTelemetry } from './api.js';

/**
 * The counters behind `preview_build_time_seconds`, `preview_build_failures_total{code}`,
 * `preview_build_success_total` and `preview_upload_failures_total`. Each change is also sent as a
 * `preview.telemetry` event (deltas), which aion.observability turns into Prometheus metrics.
 */
export class PreviewMetrics {
  private readonly state: PreviewMetricsSnapshot = {
    build_success_total: 0,
    build_failures_total: {},
    upload_failures_total: 0,
    build_time_seconds: { sum: 0, count: 0 },
  };

  constructor(private readonly emit: (delta: PreviewTelemetry) => void = () => undefined) {}

  buildFinished(seconds: number, failureCode: string | null): void {
    const t = this.state.build_time_seconds;
    t.sum += seconds;
    t.count++;
    if (failureCode === null) this.state.build_success_total++;
    else this.state.build_failures_total[failureCode] = (this.state.build_failures_total[failureCode] ?? 0) + 1;
    this.emit({ builds: [{ seconds, outcome: failureCode === null ? 'success' : 'failure', code: failureCode }], uploadFailures: 0 });
  }

  uploadFailed(): void {
    this.state.upload_failures_total++;
    this.emit({ builds: [], uploadFailures: 1 });
  }

  snapshot(): PreviewMetricsSnapshot {
    return structuredClone(this.state);
  }
}
