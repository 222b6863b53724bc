import { RequestType } from 'vscode-jsonrpc';
import type { CallContext, ProtocolSlice } from './slice.js';

/** `callerId` is the calling extension, verified by the kernel; absent for calls from the kernel itself. */
export interface InvokeApiParams {
  extensionId: string;
  method: string;
  args: unknown[];
  callerId?: string;
  context?: CallContext;
}

/** `aion.extensions`: one extension calls the API another returned from `activate`, wherever each runs. */
export const ExtensionApisProtocol = {
  kernel: {
    getApi: new RequestType<{ callerId: string; extensionId: string; context?: CallContext }, { apiMethods: string[] }, void>('$getApi'),
    invokeApi: new RequestType<InvokeApiParams, unknown, void>('$invokeApi'),
  },
  host: {
    invokeApi: new RequestType<InvokeApiParams, unknown, void>('$invokeApi'),
  },
} as const satisfies ProtocolSlice;
