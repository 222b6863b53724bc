import { AionError, ErrorCodes, type CancellationToken, type HookKind, type HooksNamespace } from '@aion/extension-api';
import { HooksProtocol, type CallTapParams } from '@aion/extension-api/protocol';
import { currentCallContext } from '../callContext.js';
import type { ExtensionScope, HostServices } from './capability.js';

type Fn = (...args: unknown[]) => unknown;

/** Runs one of this host's taps for the kernel: what `$callHookTap` asks a host to do. */
export type CallTap = (params: CallTapParams, token: CancellationToken) => unknown;

/** `aion.hooks`: taps this host's extensions hold, and hook calls through the kernel (or answered here when idle). */
export function hostHooks(host: HostServices): { bind: (scope: ExtensionScope) => HooksNamespace; callTap: CallTap } {
  const taps = new Map<string, { extensionId: string; fn: Fn }>();
  /** Hooks the kernel reports idle (no taps, nothing activates on them): calls are answered here. */
  let idle = new Map<string, HookKind>();
  let tapCounter = 0;
  const { endpoint } = host;
  const callTap: CallTap = ({ tapId, payload, context }, token) => {
    const tap = taps.get(tapId);
    if (!tap) throw new AionError(ErrorCodes.HOOK_NOT_FOUND, `hook tap ${tapId} is gone`);
    return host.run(tap.extensionId, context, () => tap.fn(payload, token));
  };
  endpoint.onRequest(HooksProtocol.host.callTap, callTap);
  endpoint.onNotification(HooksProtocol.host.idle, ({ hooks }) => (idle = new Map(Object.entries(hooks))));
  const bind = ({ extensionId, register }: ExtensionScope): HooksNamespace => ({
    tap: (hook, fn) => {
      const tapId = `${extensionId}#${++tapCounter}`;
      taps.set(tapId, { extensionId, fn: fn as Fn });
      // Not idle any more, before the kernel says so.
      idle.delete(hook);
      // A notification, so the kernel has the tap before this extension's activation answer arrives.
      endpoint.sendNotification(HooksProtocol.kernel.tap, { extensionId, hook, tapId });
      return register(() => {
        taps.delete(tapId);
        endpoint.sendNotification(HooksProtocol.kernel.untap, { tapId });
      });
    },
    call: <T>(hook: string, payload: unknown) => {
      // What the kernel would answer for a hook nobody taps, without the round trip.
      const kind = idle.get(hook);
      if (kind !== undefined) return Promise.resolve((kind === 'waterfall' ? payload : undefined) as T);
      return endpoint.sendRequest(HooksProtocol.kernel.call, { hook, payload, context: currentCallContext(), extensionId }) as Promise<T>;
    },
  });
  return { bind, callTap };
}
