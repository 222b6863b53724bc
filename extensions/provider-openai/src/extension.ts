import type * as aion from '@aion/extension-api';
import { registerProvider, type ProviderConfiguration } from '@aion/provider-kit';
import { OpenAIClient, type AzureOptions } from './client.js';

/** The id of this extension's entry in `contributes.providers`. */
export const PROVIDER_ID = 'openai';
/** `apiKeySecret: ""` sends no key (local servers). */
export const DEFAULT_API_KEY_SECRET = 'OPENAI_API_KEY';

/** This extension's configuration section (`extensions["aion.provider-openai"]`). */
export interface OpenAIProviderConfiguration extends ProviderConfiguration {
  azure?: AzureOptions;
  maxTokensParameter?: 'max_tokens' | 'max_completion_tokens';
}

export function activate(ctx: aion.ExtensionContext): void {
  registerProvider<OpenAIProviderConfiguration>(ctx, {
    id: PROVIDER_ID,
    apiKeySecret: DEFAULT_API_KEY_SECRET,
    create: (config, models, connection) => new OpenAIClient({ ...connection, azure: config.azure, models, maxTokensParameter: config.maxTokensParameter }),
  });
}
