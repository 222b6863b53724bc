import { NotificationType } from 'vscode-jsonrpc';
import type { ProtocolSlice } from './slice.js';

/** `aion.events`: a host subscribes once per event name; the kernel fans each emitted event out to subscribed hosts. */
export const EventsProtocol = {
  kernel: {
    subscribe: new NotificationType<{ event: string }>('$subscribeEvent'),
    emit: new NotificationType<{ extensionId: string; event: string; data: unknown }>('$emitEvent'),
  },
  host: {
    deliver: new NotificationType<{ event: string; data: unknown }>('$event'),
  },
} as const satisfies ProtocolSlice;
