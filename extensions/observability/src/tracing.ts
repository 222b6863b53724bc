import { trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace-base';
import type { Disposable } from '@aion/extension-api';

export interface TracingSettings {
  /** OTLP/HTTP traces URL, e.g. `http://collector:4318/v1/traces`. */
  url: string;
  /** Share of new traces recorded, 0–1; a remote parent's sampled flag does not raise it. */
  sampleRatio: number;
  serviceName: string;
  /** Most spans waiting for export; the rest are dropped, never blocking a request. */
  maxQueueSize: number;
}

/**
 * `tracing` configuration with the OpenTelemetry environment as defaults: on when `enabled` is true,
 * or when it is unset and `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set.
 */
export function tracingSettings(
  config: { enabled?: boolean | null; endpoint?: string; sampleRatio?: number | null; serviceName?: string; maxQueueSize?: number },
  env: NodeJS.ProcessEnv,
): TracingSettings | undefined {
  const tracesUrl = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT;
  const url = config.endpoint || tracesUrl || (base ? `${base.replace(/\/+$/, '')}/v1/traces` : undefined);
  const enabled = config.enabled ?? (url !== undefined && env.OTEL_SDK_DISABLED !== 'true');
  if (!enabled) return undefined;
  const fromEnv = env.OTEL_TRACES_SAMPLER_ARG !== undefined ? Number(env.OTEL_TRACES_SAMPLER_ARG) : undefined;
  const sampleRatio = config.sampleRatio ?? (fromEnv !== undefined && Number.isFinite(fromEnv) ? Math.min(1, Math.max(0, fromEnv)) : 1);
  return {
    url: url ?? 'http://127.0.0.1:4318/v1/traces',
    sampleRatio,
    serviceName: config.serviceName || env.OTEL_SERVICE_NAME || 'aion',
    maxQueueSize: config.maxQueueSize ?? 2048,
  };
}

/**
 * Installs the process-wide tracer provider: the kernel's spans (a server span per HTTP request,
 * a client span per call into an extension host) are then recorded and exported over OTLP/HTTP in batches.
 */
export function startTracing(settings: TracingSettings): Disposable & { provider: BasicTracerProvider } {
  const ratio = new TraceIdRatioBasedSampler(settings.sampleRatio);
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': settings.serviceName }),
    // The trace id decides, also under a caller's traceparent: a client cannot force every request to be recorded.
    sampler: new ParentBasedSampler({ root: ratio, remoteParentSampled: ratio }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: settings.url }), { maxQueueSize: settings.maxQueueSize, scheduledDelayMillis: 1000 })],
  });
  trace.setGlobalTracerProvider(provider);
  return {
    provider,
    dispose: async () => {
      trace.disable();
      await provider.shutdown().catch(() => undefined);
    },
  };
}
