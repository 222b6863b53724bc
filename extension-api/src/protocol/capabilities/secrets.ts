import { RequestType } from 'vscode-jsonrpc';
import type { ProtocolSlice } from './slice.js';

/** `ctx.secrets`: an extension reads its own secrets, which the kernel holds. */
export const SecretsProtocol = {
  kernel: {
    get: new RequestType<{ extensionId: string; name: string }, string | null, void>('$getSecret'),
  },
  host: {},
} as const satisfies ProtocolSlice;
