import { NotificationType, RequestType } from 'vscode-jsonrpc';
import type { ExposeDeclaration } from '../../manifest.js';
import type { CallContext, ProtocolSlice } from './slice.js';

/** `extensionId` (kernel to host): whose implementation runs, as the kernel resolved it. */
export interface InvokeContributionParams {
  point: string;
  id: string;
  method: string;
  args: unknown[];
  callerId?: string;
  extensionId?: string;
  context?: CallContext;
}

/** An entry of a contribution point, with its extension and what that extension exposes to a hub. */
export interface ContributionListing {
  extensionId: string;
  entry: Record<string, unknown>;
  expose?: ExposeDeclaration;
}

/** `aion.contributions`: implementations of manifest-declared entries, found and called through the kernel. */
export const ContributionsProtocol = {
  kernel: {
    register: new NotificationType<{ extensionId: string; point: string; id: string; methods: string[] }>('$registerContribution'),
    unregister: new NotificationType<{ extensionId: string; point: string; id: string }>('$unregisterContribution'),
    /** `extensionId`: the implementing extension, so a host that runs it too can call it without the round trip. */
    resolve: new RequestType<{ point: string; id: string }, { methods: string[]; extensionId?: string }, void>('$resolveContribution'),
    list: new RequestType<{ point: string }, ContributionListing[], void>('$listContributions'),
    invoke: new RequestType<InvokeContributionParams, unknown, void>('$invokeContribution'),
  },
  host: {
    invoke: new RequestType<InvokeContributionParams, unknown, void>('$invokeContribution'),
  },
} as const satisfies ProtocolSlice;
