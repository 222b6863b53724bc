import type { ContextBinders, HostServices, NamespaceBinders } from './capability.js';
import { hostCluster } from './cluster.js';
import { hostCommands } from './commands.js';
import { hostContributions } from './contributions.js';
import { hostEvents } from './events.js';
import { hostExtensionApis } from './extensionApis.js';
import { hostHooks, type CallTap } from './hooks.js';
import { hostRealtime } from './realtime.js';
import { hostRoutes, type HandleRoute } from './routes.js';
import { hostSecrets } from './secrets.js';
import { hostState } from './state.js';

export type { ExtensionScope, HostServices } from './capability.js';
export { normalizeRoute, type HandleRoute } from './routes.js';
export type { CallTap } from './hooks.js';

/**
 * The host half of every capability, installed on one host: each answers its slice's `host` messages and
 * builds its part of an extension's binding or context. A new capability is one file here and one line below.
 */
export function installCapabilities(host: HostServices): {
  namespaces: NamespaceBinders;
  context: ContextBinders;
  handleRoute: HandleRoute;
  callTap: CallTap;
} {
  const routes = hostRoutes(host);
  const hooks = hostHooks(host);
  return {
    // What an in-process kernel calls without a message: the edge's requests for this host's routes, and its hook taps.
    handleRoute: routes.handle,
    callTap: hooks.callTap,
    namespaces: {
      http: routes.bind,
      commands: hostCommands(host),
      extensions: hostExtensionApis(host),
      contributions: hostContributions(host),
      hooks: hooks.bind,
      events: hostEvents(host),
      realtime: hostRealtime(host),
      cluster: hostCluster(host),
    },
    context: { secrets: hostSecrets(host), state: hostState() },
  };
}
