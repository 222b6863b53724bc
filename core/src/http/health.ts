import { ErrorCodes } from '@aion/extension-api';
import { carriesCredentials, isAdmin, type EdgeAuthentication } from './authentication.js';
import { errorBody } from './errorResponse.js';
import type { RouteHandler } from './exchange.js';
import type { RouteTable } from './routeTable.js';
import { degradation, type ExtensionStatusSources } from './extensionsRoute.js';

export interface HealthSources extends ExtensionStatusSources {
  authentication: EdgeAuthentication;
  readiness(): { ready: boolean; draining: boolean };
}

function countBy<T>(items: T[], key: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1;
  return counts;
}

/**
 * Status (`ok` or `degraded`) and counts for anyone; with `details`, each host with its pid and
 * extensions and what degrades the server (admins only).
 */
export function healthReport(sources: ExtensionStatusSources, details: boolean): Record<string, unknown> {
  const hosts = sources.hosts.all();
  const degraded = degradation(sources);
  const report: Record<string, unknown> = {
    status: degraded.length > 0 ? 'degraded' : 'ok',
    counts: { hosts: countBy(hosts, (h) => h.state), extensions: countBy(sources.registry.all(), (r) => r.state), degraded: degraded.length },
  };
  if (details) {
    report.hosts = hosts.map((h) => ({ key: h.key, kind: h.kind, state: h.state, pid: h.pid, extensions: [...h.extensions] }));
    report.degraded = degraded;
  }
  return report;
}

export interface HealthCheck {
  name: string;
  /** `unavailable`: not set up here (a provider without credentials), which is not a fault. */
  status: 'ok' | 'degraded' | 'failed' | 'unavailable';
  detail?: string;
  ms?: number;
}

const CHECKS_TIMEOUT_MS = 5_000;

/** What extensions report through `health.check` (database, Redis, providers), bounded as a whole. */
export async function runHealthChecks(callHook: (hook: string, payload: unknown) => Promise<unknown>): Promise<HealthCheck[]> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const answer = (await Promise.race([
      callHook('health.check', { checks: [] }),
      new Promise((resolve) => (timer = setTimeout(() => resolve('timeout'), CHECKS_TIMEOUT_MS))),
    ])) as { checks?: HealthCheck[] } | 'timeout';
    if (answer === 'timeout') return [{ name: 'health.check', status: 'failed', detail: `the checks did not finish within ${CHECKS_TIMEOUT_MS} ms` }];
    return Array.isArray(answer?.checks) ? answer.checks : [];
  } catch (err) {
    return [{ name: 'health.check', status: 'failed', detail: (err as Error).message }];
  } finally {
    clearTimeout(timer);
  }
}

/** `/healthz` (liveness) and `/readyz` (start-up activations done, not draining). Neither takes a dispatch slot. */
export function healthRoutes(routes: RouteTable<RouteHandler>, sources: HealthSources & { callHook(hook: string, payload: unknown): Promise<unknown> }): void {
  routes.add('GET', '/healthz', async (exchange) => {
    // Probes carry no credentials, so they never cost an authentication call.
    const principal = carriesCredentials(exchange.headers)
      ? (await sources.authentication.authenticate({ headers: exchange.headers, method: 'GET', path: exchange.path, ip: exchange.clientIp }))?.principal
      : undefined;
    const admin = isAdmin(principal);
    const report = healthReport(sources, admin);
    // Dependencies are checked for admins only: an anonymous probe never costs a database round trip.
    if (admin) {
      const checks = await runHealthChecks(sources.callHook);
      report.checks = checks;
      if (checks.some((c) => c.status === 'failed' || c.status === 'degraded')) report.status = 'degraded';
    }
    exchange.status = 200;
    exchange.body = report;
  });
  routes.add('GET', '/readyz', (exchange) => {
    const { ready, draining } = sources.readiness();
    exchange.status = ready && !draining ? 200 : 503;
    // Still ready when degraded: the rest of the server serves, and a load balancer should keep sending it traffic.
    const degraded = degradation(sources).length;
    exchange.body =
      ready && !draining
        ? degraded > 0
          ? { status: 'degraded', degraded }
          : { status: 'ready' }
        : errorBody({ code: ErrorCodes.SERVICE_UNAVAILABLE, message: draining ? 'shutting down' : 'start-up activations are still running' });
  });
}
