import { AionError, ErrorCodes, type CancellationToken, type HttpHandler, type HttpNamespace, type HttpResponseData } from '@aion/extension-api';
import { RoutesProtocol, type HandleRouteParams } from '@aion/extension-api/protocol';
import type { ExtensionScope, HostServices } from './capability.js';

/** `aion.http`: handlers of declared routes, called when the kernel's edge hands this host a request. */
export function hostRoutes(host: HostServices): { bind: (scope: ExtensionScope) => HttpNamespace; handle: HandleRoute } {
  const routes = new Map<string, HttpHandler>();
  const handle: HandleRoute = ({ extensionId, route, request, context }, token) => {
    const handler = routes.get(`${extensionId} ${route}`);
    if (!handler) throw new AionError(ErrorCodes.ROUTE_HANDLER_MISSING, `${extensionId} declares ${route} but registered no handler for it with http.handle()`);
    return host.run(extensionId, context, () => handler(request, token));
  };
  host.endpoint.onRequest(RoutesProtocol.host.handle, handle);
  const bind = (scope: ExtensionScope): HttpNamespace => {
    const declared = new Set((scope.description.manifest.contributes?.routes ?? []).map((r) => normalizeRoute(`${r.method} ${r.path}`)));
    return {
      handle: (route, handler) => {
        const normalized = normalizeRoute(route);
        // The kernel mounts only declared routes: a handler for any other would never be called.
        if (!declared.has(normalized)) {
          const [method, path] = normalized.split(' ');
          throw new AionError(
            ErrorCodes.ROUTE_NOT_DECLARED,
            `${scope.extensionId} handles ${normalized}, which its manifest does not declare: add { "method": "${method}", "path": "${path}" } to contributes.routes in its package.json`,
          );
        }
        const key = `${scope.extensionId} ${normalized}`;
        routes.set(key, handler);
        return scope.register(() => routes.delete(key));
      },
    };
  };
  return { bind, handle };
}

/** Runs a declared route's handler for one request: what the kernel's edge asks a host to do. */
export type HandleRoute = (params: HandleRouteParams, token: CancellationToken) => HttpResponseData | Promise<HttpResponseData>;

/** `get  /v1/x` → `GET /v1/x`: the same key the kernel uses for declared routes. */
export function normalizeRoute(route: string): string {
  const [method, ...rest] = route.trim().split(/\s+/);
  return `${method!.toUpperCase()} ${rest.join(' ')}`;
}
