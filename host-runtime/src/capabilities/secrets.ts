import type { ExtensionContext } from '@aion/extension-api';
import { SecretsProtocol } from '@aion/extension-api/protocol';
import type { ExtensionScope, HostServices } from './capability.js';

/** `ctx.secrets`: an extension's own secrets, held by the kernel. */
export function hostSecrets(host: HostServices): (scope: ExtensionScope) => ExtensionContext['secrets'] {
  return ({ extensionId }) => ({
    get: async (name: string) => (await host.endpoint.sendRequest(SecretsProtocol.kernel.get, { extensionId, name })) ?? undefined,
  });
}
