import { NotificationType, RequestType } from 'vscode-jsonrpc';
import type { Principal } from '../../types.js';
import type { CallContext, ProtocolSlice } from './slice.js';

/** Credentials of a signed-in user a caller acts for, as it received them (`commands.executeFor`). */
export interface ActingFor {
  authorization?: string;
  apiKey?: string;
}

/** `callerId`: the extension asking (verified by the kernel); `principal`: the user it acts for, verified by the kernel. */
export interface ExecuteCommandParams {
  command: string;
  args: unknown[];
  callerId?: string;
  actingFor?: ActingFor;
  principal?: Principal;
  context?: CallContext;
}

/** `aion.commands`: a host registers the commands its extensions implement; the kernel routes each run to its owner. */
export const CommandsProtocol = {
  kernel: {
    register: new NotificationType<{ extensionId: string; command: string }>('$registerCommand'),
    unregister: new NotificationType<{ extensionId: string; command: string }>('$unregisterCommand'),
    execute: new RequestType<ExecuteCommandParams, unknown, void>('$executeCommand'),
  },
  host: {
    execute: new RequestType<ExecuteCommandParams, unknown, void>('$executeCommand'),
  },
} as const satisfies ProtocolSlice;
