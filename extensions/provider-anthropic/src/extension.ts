import type * as aion from '@aion/extension-api';
import { registerProvider, type ProviderConfiguration } from '@aion/provider-kit';
import { AnthropicClient } from './client.js';

/** The id of this extension's entry in `contributes.providers`. */
export const PROVIDER_ID = 'anthropic';
export const DEFAULT_API_KEY_SECRET = 'ANTHROPIC_API_KEY';

/** This extension's configuration section (`extensions["aion.provider-anthropic"]`). */
export interface AnthropicProviderConfiguration extends ProviderConfiguration {
  defaultMaxTokens?: number;
}

export function activate(ctx: aion.ExtensionContext): void {
  registerProvider<AnthropicProviderConfiguration>(ctx, {
    id: PROVIDER_ID,
    apiKeySecret: DEFAULT_API_KEY_SECRET,
    keyRequired: true,
    create: (config, models, connection) => new AnthropicClient({ ...connection, defaultMaxTokens: config.defaultMaxTokens, models }),
  });
}
