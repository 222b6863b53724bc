import * as aion from '@aion/extension-api';
import { registerProvider, type ModelInfo } from '@aion/provider-kit';
import { OpenAIClient, type AzureOptions } from './client.js';

/** The id of this extension's entry in `contributes.providers`. */
export const PROVIDER_ID = 'openai';
export const DEFAULT_BASE_URL = 'https://api.openai.com/v1';
export const DEFAULT_API_KEY_SECRET = 'OPENAI_API_KEY';

/** This extension's configuration section (`extensions["aion.provider-openai"]`). */
export interface OpenAIProviderConfiguration {
  baseUrl?: string;
  /** Secret holding the API key; `""` sends no key (local servers). */
  apiKeySecret?: string;
  timeoutMs?: number;
  models?: ModelInfo[];
  azure?: AzureOptions;
  maxTokensParameter?: 'max_tokens' | 'max_completion_tokens';
}

export function activate(ctx: aion.ExtensionContext): void {
  registerProvider<OpenAIProviderConfiguration>(ctx, {
    id: PROVIDER_ID,
    create: (config, models) => {
      const secret = config.apiKeySecret ?? DEFAULT_API_KEY_SECRET;
      return new OpenAIClient({
        baseUrl: config.baseUrl ?? DEFAULT_BASE_URL,
        apiKey: secret ? () => ctx.secrets.get(secret) : undefined,
        azure: config.azure,
        timeoutMs: config.timeoutMs,
        models,
        maxTokensParameter: config.maxTokensParameter,
      });
    },
  });
}
