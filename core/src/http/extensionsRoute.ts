import type Router from '@koa/router';
import type { ContributionRegistry } from '../contributions/contributionRegistry.js';
import type { ExtensionRegistry } from '../registry/extensionRegistry.js';
import { EXTENSIONS_READ_SCOPE, type EdgeAuthentication } from './authentication.js';

/** Every extension with its state, host, activation and contributions: what `GET /v1/extensions` shows an admin. */
export function describeExtensions(registry: ExtensionRegistry, contributions: ContributionRegistry): Array<Record<string, unknown>> {
  const installed = registry.all().map((r) => ({
    id: r.id,
    version: r.manifest.version,
    displayName: r.manifest.displayName,
    state: r.state,
    host: r.hostKind,
    source: r.source,
    activationMs: r.activationMs ?? null,
    activatedBy: r.activatedBy ?? null,
    activationEvents: r.activationEvents,
    contributions: contributions.summaryFor(r.id),
    errors: r.errors,
    warnings: r.warnings,
  }));
  const rejected = registry.rejected.map((r) => ({ id: r.id ?? null, state: 'invalid', manifestPath: r.manifestPath, errors: r.errors }));
  return [...installed, ...rejected];
}

/** `GET /v1/extensions`, for principals holding `*` or `extensions:read` only: it names every extension, event and path. */
export function extensionsRoute(router: Router, sources: { registry: ExtensionRegistry; contributions: ContributionRegistry; authentication: EdgeAuthentication }): void {
  const route = { method: 'GET' as const, path: '/v1/extensions', scopes: [EXTENSIONS_READ_SCOPE] };
  router.get(route.path, async (ctx) => {
    await sources.authentication.authorize(route, { headers: ctx.headers, method: ctx.method, path: ctx.path, ip: ctx.state.clientIp as string }, (k, v) => ctx.set(k, v));
    ctx.body = { extensions: describeExtensions(sources.registry, sources.contributions) };
  });
}
