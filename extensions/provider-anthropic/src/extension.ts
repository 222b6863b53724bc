import * as aion from '@aion/extension-api';
import { registerProvider, type ModelInfo } from '@aion/provider-kit';
import { AnthropicClient, DEFAULT_BASE_URL } from './client.js';

/** The id of this extension's entry in `contributes.providers`. */
export const PROVIDER_ID = 'anthropic';
export const DEFAULT_API_KEY_SECRET = 'ANTHROPIC_API_KEY';

/** This extension's configuration section (`extensions["aion.provider-anthropic"]`). */
export interface AnthropicProviderConfiguration {
  baseUrl?: string;
  apiKeySecret?: string;
  timeoutMs?: number;
  defaultMaxTokens?: number;
  models?: ModelInfo[];
}

export function activate(ctx: aion.ExtensionContext): void {
  registerProvider<AnthropicProviderConfiguration>(ctx, {
    id: PROVIDER_ID,
    create: (config, models) => {
      const secret = config.apiKeySecret || DEFAULT_API_KEY_SECRET;
      return new AnthropicClient({
        baseUrl: config.baseUrl ?? DEFAULT_BASE_URL,
        apiKey: async () => {
          const key = await ctx.secrets.get(secret);
          if (!key) throw new Error(`the secret ${secret} is not set`);
          return key;
        },
        timeoutMs: config.timeoutMs,
        defaultMaxTokens: config.defaultMaxTokens,
        models,
      });
    },
  });
}
