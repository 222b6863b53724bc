import { RequestType } from 'vscode-jsonrpc';
import type { KernelMember } from '../../api.js';
import type { ProtocolSlice } from './slice.js';

/** `aion.cluster`: which kernel an extension runs in, and which kernels sharing its Redis are alive. */
export const ClusterProtocol = {
  kernel: {
    self: new RequestType<Record<string, never>, KernelMember, void>('$clusterSelf'),
    members: new RequestType<Record<string, never>, KernelMember[] | null, void>('$clusterMembers'),
  },
  host: {},
} as const satisfies ProtocolSlice;
