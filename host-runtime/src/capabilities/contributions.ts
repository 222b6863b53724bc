import { AionError, CancellationToken, ErrorCodes, type ContributionsNamespace } from '@aion/extension-api';
import { ContributionsProtocol, type CallContext } from '@aion/extension-api/protocol';
import { currentCallContext, inClientSpan } from '../callContext.js';
import { callWithToken, createRemoteProxy, methodNames } from '../remoteProxy.js';
import type { ExtensionScope, HostServices } from './capability.js';

type Fn = (...args: unknown[]) => unknown;

/** `aion.contributions`: implementations of entries this host's extensions contribute, and proxies to any entry. */
export function hostContributions(host: HostServices): (scope: ExtensionScope) => ContributionsNamespace {
  // Keyed by extension too: two extensions in one host never replace each other's implementation.
  const implementations = new Map<string, { extensionId: string; impl: Record<string, Fn> }>();
  const { endpoint } = host;
  /** Runs a method of an implementation held here, as the caller's call: for the kernel's request, or straight from a caller in this host. */
  const invoke = (
    key: string,
    point: string,
    id: string,
    method: string,
    args: unknown[],
    callerId: string | undefined,
    token: CancellationToken,
    context?: CallContext,
  ) => {
    const entry = implementations.get(key);
    const fn = entry?.impl[method];
    if (!entry || typeof fn !== 'function') throw new AionError(ErrorCodes.CONTRIBUTION_NOT_FOUND, `${point} entry ${id} has no method ${method}`);
    return host.run(entry.extensionId, context, () => callWithToken(entry.impl, fn, args, token), { id: callerId });
  };
  endpoint.onRequest(ContributionsProtocol.host.invoke, ({ point, id, method, args, callerId, extensionId, context }, token) =>
    invoke(`${extensionId} ${point}/${id}`, point, id, method, args, callerId, token, context),
  );
  return ({ extensionId, register }) => ({
    register: (point, id, implementation) => {
      const key = `${extensionId} ${point}/${id}`;
      implementations.set(key, { extensionId, impl: implementation as Record<string, Fn> });
      endpoint.sendNotification(ContributionsProtocol.kernel.register, { extensionId, point, id, methods: methodNames(implementation) });
      return register(() => {
        implementations.delete(key);
        endpoint.sendNotification(ContributionsProtocol.kernel.unregister, { extensionId, point, id });
      });
    },
    get: async (point, id) => {
      const { methods, extensionId: owner } = await endpoint.sendRequest(ContributionsProtocol.kernel.resolve, { point, id });
      const local = `${owner} ${point}/${id}`;
      // Only in the kernel host, where values already pass by reference: elsewhere a call keeps copying
      // what crosses, so an extension behaves the same whichever extensions share its host.
      const direct = host.kind === 'kernel' && owner !== undefined;
      return createRemoteProxy(methods, (method, args, token) => {
        // Implemented in this host (the kernel-host router calling a kernel-host provider): called here,
        // as the kernel would have this host call it, without two trips through the kernel and the stream
        // bridge. Anything else, or an implementation gone since, goes through the kernel.
        if (direct && implementations.has(local)) {
          const rpcMethod = ContributionsProtocol.host.invoke.method;
          return inClientSpan(`${rpcMethod.slice(1)} ${point}/${id}`, rpcMethod, 'kernel', () =>
            invoke(local, point, id, method, args, extensionId, token ?? CancellationToken.None),
          );
        }
        return endpoint.sendRequest(
          ContributionsProtocol.kernel.invoke,
          { point, id, method, args, callerId: extensionId, context: currentCallContext() },
          token,
        );
      });
    },
    list: (point) => endpoint.sendRequest(ContributionsProtocol.kernel.list, { point }),
  });
}
