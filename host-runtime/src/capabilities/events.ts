import type { EventsNamespace } from '@aion/extension-api';
import { EventsProtocol } from '@aion/extension-api/protocol';
import type { ExtensionScope, HostServices } from './capability.js';

/** `aion.events`: one kernel subscription per event name, fanned out to this host's listeners. */
export function hostEvents(host: HostServices): (scope: ExtensionScope) => EventsNamespace {
  const listeners = new Map<string, Set<{ extensionId: string; listener: (data: unknown) => void }>>();
  const { endpoint } = host;
  endpoint.onNotification(EventsProtocol.host.deliver, ({ event, data }) => {
    for (const { extensionId, listener } of listeners.get(event) ?? []) {
      try {
        host.run(extensionId, undefined, () => listener(data));
      } catch (err) {
        host.log(extensionId, 'error', `event listener for ${event} threw`, { error: String(err) });
      }
    }
  });
  return ({ extensionId, register }) => ({
    emit: (event, data) => endpoint.sendNotification(EventsProtocol.kernel.emit, { extensionId, event, data }),
    on: (event, listener) => {
      let set = listeners.get(event);
      if (!set) {
        listeners.set(event, (set = new Set()));
        endpoint.sendNotification(EventsProtocol.kernel.subscribe, { event });
      }
      const entry = { extensionId, listener };
      set.add(entry);
      return register(() => set!.delete(entry));
    },
  });
}
