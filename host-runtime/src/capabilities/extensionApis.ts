import { AionError, ErrorCodes, type ExtensionsNamespace } from '@aion/extension-api';
import { ExtensionApisProtocol } from '@aion/extension-api/protocol';
import { currentCallContext } from '../callContext.js';
import { callWithToken, createRemoteProxy } from '../remoteProxy.js';
import type { ExtensionScope, HostServices } from './capability.js';

type Fn = (...args: unknown[]) => unknown;

/** `aion.extensions`: calls into the APIs this host's extensions returned, and proxies to any other extension's. */
export function hostExtensionApis(host: HostServices): (scope: ExtensionScope) => ExtensionsNamespace {
  const { endpoint } = host;
  endpoint.onRequest(ExtensionApisProtocol.host.invokeApi, ({ extensionId, method, args, callerId, context }, token) => {
    const active = host.apiOf(extensionId);
    if (!active) throw new AionError(ErrorCodes.EXTENSION_NOT_FOUND, `${extensionId} is not active in this host`);
    const api = active.api as Record<string, unknown> | undefined;
    const fn = api?.[method];
    if (typeof fn !== 'function') throw new AionError(ErrorCodes.API_METHOD_NOT_FOUND, `${extensionId} has no API method ${method}`);
    return host.run(extensionId, context, () => callWithToken(api as object, fn as Fn, args, token), { id: callerId });
  });
  return ({ extensionId }) => ({
    getApi: async (id) => {
      const { apiMethods } = await endpoint.sendRequest(ExtensionApisProtocol.kernel.getApi, { callerId: extensionId, extensionId: id });
      return createRemoteProxy(apiMethods, (method, args, token) =>
        endpoint.sendRequest(
          ExtensionApisProtocol.kernel.invokeApi,
          { extensionId: id, method, args, callerId: extensionId, context: currentCallContext() },
          token,
        ),
      );
    },
    // Read from the call frame by `aion.extensions.caller()`; a binding has none of its own.
    caller: () => undefined,
  });
}
