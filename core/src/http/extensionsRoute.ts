import { AionError, ErrorCodes } from '@aion/extension-api';
import type { ActivationService } from '../activation/activationService.js';
import type { AionConfig } from '../config/configuration.js';
import type { ContributionRegistry } from '../contributions/contributionRegistry.js';
import { effectivePermissions } from '../hosts/placement.js';
import type { HostManager } from '../hosts/hostManager.js';
import type { NetworkIsolation } from '../hosts/networkIsolation.js';
import type { ExtensionRecord } from '../registry/extensionRecord.js';
import type { ExtensionRegistry } from '../registry/extensionRegistry.js';
import { EXTENSIONS_READ_SCOPE, type EdgeAuthentication } from './authentication.js';
import type { RouteHandler } from './exchange.js';
import type { RouteTable } from './routeTable.js';

/** Enabling and disabling extensions at runtime. */
export const EXTENSIONS_WRITE_SCOPE = 'extensions:write';

export interface ExtensionStatusSources {
  config: AionConfig;
  registry: ExtensionRegistry;
  contributions: ContributionRegistry;
  hosts: HostManager;
  network: NetworkIsolation;
}

/**
 * How an extension's permissions are enforced right now: `trusted` (kernel host), `os`, or `advisory`
 * when its network limits are declared but not enforced on this machine.
 */
export function enforcementOf(record: ExtensionRecord, network: NetworkIsolation): 'trusted' | 'os' | 'advisory' {
  if (record.enforcement === 'trusted') return 'trusted';
  return network.enforcement(record) === 'advisory' ? 'advisory' : record.enforcement;
}

/** Every extension with its state, host, placement, enforcement, activation and contributions: what `GET /v1/extensions` shows an admin. */
export function describeExtensions(sources: ExtensionStatusSources): Array<Record<string, unknown>> {
  const installed = sources.registry.all().map((r) => ({
    id: r.id,
    version: r.manifest.version,
    displayName: r.manifest.displayName,
    state: r.state,
    host: r.hostKind,
    hostKey: r.hostKey,
    placement: r.placementReason ?? null,
    builtin: r.builtin,
    source: r.source,
    enforcement: enforcementOf(r, sources.network),
    network: sources.network.enforcement(r),
    permissions: effectivePermissions(r, sources.config),
    grants: sources.config.permissions.grants[r.id] ?? {},
    activationMs: r.activationMs ?? null,
    activatedBy: r.activatedBy ?? null,
    activationEvents: r.activationEvents,
    contributions: sources.contributions.summaryFor(r.id),
    errors: r.errors,
    warnings: r.warnings,
  }));
  const rejected = sources.registry.rejected.map((r) => ({ id: r.id ?? null, state: 'invalid', manifestPath: r.manifestPath, errors: r.errors }));
  return [...installed, ...rejected];
}

/**
 * Why the server is not fully well: hosts the crash policy disabled, extensions that failed or were
 * disabled at runtime, and limits that are only advisory. Disabled by configuration is intended, not degraded.
 */
export function degradation(sources: ExtensionStatusSources): Array<{ code: string; extension?: string; host?: string; reason: string }> {
  const out: Array<{ code: string; extension?: string; host?: string; reason: string }> = [];
  for (const { key, reason } of sources.hosts.disabledHosts()) out.push({ code: ErrorCodes.EXTENSION_DISABLED, host: key, reason });
  for (const r of sources.registry.all()) {
    const last = r.errors.at(-1);
    if (r.state === 'failed') out.push({ code: last?.code ?? ErrorCodes.ACTIVATION_FAILED, extension: r.id, reason: last?.message ?? 'activation failed' });
    else if (r.state === 'disabled' && !sources.config.disabledExtensions.includes(r.id) && !sources.hosts.disabledReason(r))
      out.push({ code: ErrorCodes.EXTENSION_DISABLED, extension: r.id, reason: last?.message ?? 'disabled' });
    if (r.state !== 'skipped' && enforcementOf(r, sources.network) === 'advisory')
      out.push({
        code: ErrorCodes.NETWORK_ISOLATION_UNAVAILABLE,
        extension: r.id,
        reason: `${r.id}'s network allow-list is not enforced on this machine (permissions.enforcement is "advisory")`,
      });
  }
  return out;
}

/**
 * `GET /v1/extensions` for principals holding `*` or `extensions:read`: it names every extension,
 * event and path. `POST /v1/extensions/:id/enable|disable` for `*` or `extensions:write`.
 */
export function extensionsRoute(
  routes: RouteTable<RouteHandler>,
  sources: ExtensionStatusSources & { authentication: EdgeAuthentication; activation: ActivationService },
): void {
  const list = { method: 'GET' as const, path: '/v1/extensions', scopes: [EXTENSIONS_READ_SCOPE] };
  routes.add('GET', list.path, async (exchange) => {
    await sources.authentication.authorize(list, { headers: exchange.headers, method: exchange.method, path: exchange.path, ip: exchange.clientIp }, (k, v) =>
      exchange.set(k, v),
    );
    exchange.status = 200;
    exchange.body = { extensions: describeExtensions(sources) };
  });
  for (const action of ['enable', 'disable'] as const) {
    const route = { method: 'POST' as const, path: `/v1/extensions/:id/${action}`, scopes: [EXTENSIONS_WRITE_SCOPE] };
    routes.add('POST', route.path, async (exchange) => {
      // authorize() refuses a caller without extensions:write (or *) with 401 or 403.
      const principal = await sources.authentication.authorize(
        route,
        { headers: exchange.headers, method: exchange.method, path: exchange.path, ip: exchange.clientIp },
        (k, v) => exchange.set(k, v),
      );
      exchange.principal = principal;
      const id = exchange.params.id!;
      if (!sources.registry.get(id)) throw new AionError(ErrorCodes.EXTENSION_NOT_FOUND, `no extension ${id} is installed`);
      if (action === 'enable') await sources.activation.enable(id);
      else await sources.activation.disable(id, `${id} was disabled by ${principal?.sub ?? 'an operator'} at ${new Date().toISOString()}`);
      exchange.status = 200;
      exchange.body = { extensions: describeExtensions(sources).filter((e) => e.hostKey === sources.registry.get(id)!.hostKey || e.id === id) };
    });
  }
}
