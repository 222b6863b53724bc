import type { ClusterNamespace } from '@aion/extension-api';
import { ClusterProtocol } from '@aion/extension-api/protocol';
import type { ExtensionScope, HostServices } from './capability.js';

/** `aion.cluster`: this kernel and its live peers, as the kernel tracks them. */
export function hostCluster(host: HostServices): (scope: ExtensionScope) => ClusterNamespace {
  // The kernel a host serves never changes: asked once per host.
  let self: ReturnType<ClusterNamespace['self']> | undefined;
  return () => ({
    self: () => (self ??= host.endpoint.sendRequest(ClusterProtocol.kernel.self, {})),
    members: async () => (await host.endpoint.sendRequest(ClusterProtocol.kernel.members, {})) ?? undefined,
  });
}
