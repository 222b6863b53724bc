import { NotificationType, RequestType } from 'vscode-jsonrpc';
import type { HookKind } from '../../manifest.js';
import type { CallContext, ProtocolSlice } from './slice.js';

/** What the kernel asks a host to run: one of its taps, with the hook's payload. */
export interface CallTapParams {
  tapId: string;
  payload: unknown;
  context?: CallContext;
}

/** `aion.hooks`: taps live in hosts, the kernel runs each hook's taps in order. */
export const HooksProtocol = {
  kernel: {
    tap: new NotificationType<{ extensionId: string; hook: string; tapId: string }>('$tapHook'),
    untap: new NotificationType<{ tapId: string }>('$untapHook'),
    /** `extensionId`: who calls, which the kernel checks against the host (a hook may admit its owner only). */
    call: new RequestType<{ hook: string; payload: unknown; context?: CallContext; extensionId?: string }, unknown, void>('$callHook'),
  },
  host: {
    callTap: new RequestType<CallTapParams, unknown, void>('$callHookTap'),
    /**
     * Declared hooks that nobody taps and nothing activates on, with their kind: a host answers calls
     * to them itself (a waterfall returns its payload) instead of asking the kernel. Sent when a host
     * starts and whenever taps change.
     */
    idle: new NotificationType<{ hooks: Record<string, HookKind> }>('$idleHooks'),
  },
} as const satisfies ProtocolSlice;
