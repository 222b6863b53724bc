import { AionError, ErrorCodes, runAsCaller, type ContributionsNamespace } from '@aion/extension-api';
import { ContributionsProtocol } from '@aion/extension-api/protocol';
import { currentCallContext } from '../callContext.js';
import { callWithToken, createRemoteProxy, methodNames } from '../remoteProxy.js';
import type { ExtensionScope, HostServices } from './capability.js';

type Fn = (...args: unknown[]) => unknown;

/** `aion.contributions`: implementations of entries this host's extensions contribute, and proxies to any entry. */
export function hostContributions(host: HostServices): (scope: ExtensionScope) => ContributionsNamespace {
  // Keyed by extension too: two extensions in one host never replace each other's implementation.
  const implementations = new Map<string, { extensionId: string; impl: Record<string, Fn> }>();
  const { endpoint } = host;
  endpoint.onRequest(ContributionsProtocol.host.invoke, ({ point, id, method, args, callerId, extensionId, context }, token) => {
    const entry = implementations.get(`${extensionId} ${point}/${id}`);
    const fn = entry?.impl[method];
    if (!entry || typeof fn !== 'function') throw new AionError(ErrorCodes.CONTRIBUTION_NOT_FOUND, `${point} entry ${id} has no method ${method}`);
    return host.run(entry.extensionId, context, () => runAsCaller(callerId, () => callWithToken(entry.impl, fn, args, token)));
  });
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
      const { methods } = await endpoint.sendRequest(ContributionsProtocol.kernel.resolve, { point, id });
      return createRemoteProxy(methods, (method, args, token) =>
        endpoint.sendRequest(ContributionsProtocol.kernel.invoke, { point, id, method, args, callerId: extensionId, context: currentCallContext() }, token),
      );
    },
    list: (point) => endpoint.sendRequest(ContributionsProtocol.kernel.list, { point }),
  });
}
