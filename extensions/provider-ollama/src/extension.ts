import type * as aion from '@aion/extension-api';
import { registerProvider, type ProviderConfiguration } from '@aion/provider-kit';
import { OllamaClient } from './client.js';

/** The id of this extension's entry in `contributes.providers`. */
export const PROVIDER_ID = 'ollama';

/**
 * This extension's configuration section (`extensions["aion.provider-ollama"]`). No key by default;
 * `apiKeySecret` names one for a server behind an authenticating proxy.
 */
export type OllamaProviderConfiguration = ProviderConfiguration;

export function activate(ctx: aion.ExtensionContext): void {
  registerProvider<OllamaProviderConfiguration>(ctx, {
    id: PROVIDER_ID,
    create: (_config, models, connection) => new OllamaClient({ ...connection, models }),
  });
}
