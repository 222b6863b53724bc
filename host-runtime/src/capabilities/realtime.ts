import type { RealtimeNamespace } from '@aion/extension-api';
import { RealtimeProtocol } from '@aion/extension-api/protocol';
import type { ExtensionScope, HostServices } from './capability.js';

/** `aion.realtime`: publishing to the kernel's socket.io rooms. */
export function hostRealtime(host: HostServices): (scope: ExtensionScope) => RealtimeNamespace {
  return ({ extensionId }) => ({
    publish: (room, event, data) => host.endpoint.sendNotification(RealtimeProtocol.kernel.publish, { extensionId, room, event, data }),
  });
}
