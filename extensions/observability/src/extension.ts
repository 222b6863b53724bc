import * as aion from '@aion/extension-api';
import { AionError, ErrorCodes, TELEMETRY_EVENT, type RouteContribution, type TelemetryBatch } from '@aion/extension-api';
import type { RouterTelemetryBatch } from '@aion/ext-router';
import type { PreviewTelemetry } from '@aion/ext-preview';
import { DocsSite } from './docs.js';
import { AionMetrics, type GaugeFamily } from './metrics.js';
import { startMetricsListener } from './metricsListener.js';
import { buildOpenApi } from './openapi.js';
import { startTracing, tracingSettings, type TracingSettings } from './tracing.js';

interface ObservabilityConfig {
  metrics: { enabled: boolean; listen: string; defaultMetrics: boolean };
  tracing: { enabled: boolean | null; endpoint: string; sampleRatio: number | null; serviceName: string; maxQueueSize: number };
  openapi: { title: string };
}

export interface ObservabilityStatus {
  metrics: boolean;
  /** The separate unauthenticated listener, when configured. */
  metricsListener: string | null;
  tracing: TracingSettings | null;
}

export async function activate(ctx: aion.ExtensionContext) {
  const config = ctx.configuration.get<ObservabilityConfig>();
  const status: ObservabilityStatus = { metrics: config.metrics.enabled, metricsListener: null, tracing: null };

  if (config.metrics.enabled) {
    const metrics = new AionMetrics({ defaultMetrics: config.metrics.defaultMetrics });
    // GPU gauges when aion.accelerators is installed; a server without it just has none.
    let accelerators: Promise<{ readings(): Promise<GaugeFamily[]> } | undefined> | undefined;
    metrics.addSource(async () => {
      accelerators ??= aion.extensions.getApi<{ readings(): Promise<GaugeFamily[]> }>('aion.accelerators').catch(() => undefined);
      return (await (await accelerators)?.readings()) ?? [];
    });
    ctx.subscriptions.push(aion.events.on(TELEMETRY_EVENT, (batch: TelemetryBatch) => metrics.applyKernel(batch)));
    ctx.subscriptions.push(aion.events.on('router.telemetry', (batch: RouterTelemetryBatch) => metrics.applyRouter(batch)));
    ctx.subscriptions.push(aion.events.on('preview.telemetry', (batch: PreviewTelemetry) => metrics.applyPreview(batch)));
    ctx.subscriptions.push(
      aion.http.handle('GET /metrics', async () => ({
        status: 200,
        headers: { 'content-type': metrics.contentType, 'cache-control': 'no-store' },
        body: await metrics.metrics(),
      })),
    );
    if (config.metrics.listen) {
      try {
        const listener = await startMetricsListener(config.metrics.listen, metrics);
        status.metricsListener = listener.url;
        ctx.subscriptions.push({ dispose: () => listener.close() });
        ctx.logger.info(`metrics without authentication on ${listener.url}`);
      } catch (err) {
        // The main port still serves /metrics to metrics:read holders; the operator is told why the other does not.
        ctx.logger.error(`metrics.listen ${config.metrics.listen} could not be opened: ${(err as Error).message}`, { code: 'METRICS_LISTEN_FAILED' });
      }
    }
  } else {
    ctx.subscriptions.push(
      aion.http.handle('GET /metrics', () => {
        throw new AionError(ErrorCodes.NOT_FOUND, 'metrics are turned off (extensions["aion.observability"].metrics.enabled is false)');
      }),
    );
  }

  const tracing = tracingSettings(config.tracing, process.env);
  if (tracing) {
    const started = startTracing(tracing);
    status.tracing = tracing;
    ctx.subscriptions.push(started);
    ctx.logger.info(`tracing ${Math.round(tracing.sampleRatio * 1000) / 10}% of requests to ${tracing.url}`);
  }

  let document: Record<string, unknown> | undefined;
  ctx.subscriptions.push(
    aion.http.handle('GET /v1/openapi.json', async () => {
      // The installed routes do not change while the server runs.
      document ??= buildOpenApi(
        (await aion.contributions.list('routes')).map(({ extensionId, entry }) => ({ extensionId, route: entry as unknown as RouteContribution })),
        { title: config.openapi.title, version: aion.API_VERSION },
      );
      return { status: 200, headers: { 'cache-control': 'no-cache' }, body: document };
    }),
  );
  const docs = new DocsSite();
  ctx.subscriptions.push(aion.http.handle('GET /docs', () => docs.index()));
  ctx.subscriptions.push(aion.http.handle('GET /docs/:file', (request) => docs.asset(request.params.file ?? '')));
  ctx.subscriptions.push(aion.commands.register('observability.status', () => status));
  return { status: () => status };
}
