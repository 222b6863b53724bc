import { NotificationType } from 'vscode-jsonrpc';
import type { ProtocolSlice } from './slice.js';

/** `aion.realtime`: an extension publishes to a socket.io room the kernel serves. */
export const RealtimeProtocol = {
  kernel: {
    publish: new NotificationType<{ extensionId: string; room: string; event: string; data: unknown }>('$realtimePublish'),
  },
  host: {},
} as const satisfies ProtocolSlice;
