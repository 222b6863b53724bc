import * as aion from '@aion/extension-api';
import type { ModelInfo, ProviderImplementation } from '@aion/provider-kit';
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
  const config = ctx.configuration.get<AnthropicProviderConfiguration | undefined>() ?? {};
  const secret = config.apiKeySecret || DEFAULT_API_KEY_SECRET;
  const client = new AnthropicClient({
    baseUrl: config.baseUrl ?? DEFAULT_BASE_URL,
    apiKey: async () => {
      const key = await ctx.secrets.get(secret);
      if (!key) throw new Error(`the secret ${secret} is not set`);
      return key;
    },
    timeoutMs: config.timeoutMs,
    defaultMaxTokens: config.defaultMaxTokens,
    models: config.models ?? manifestModels(ctx),
  });
  // A plain object, so only these methods can be called over RPC.
  const implementation: ProviderImplementation = {
    chat: (request, token) => client.chat(request, token),
    listModels: (token) => client.listModels(token),
    configuredModels: () => config.models,
  };
  ctx.subscriptions.push(aion.contributions.register('providers', PROVIDER_ID, implementation));
}

/** The models of this extension's own manifest entry: the defaults an operator overrides with `models`. */
function manifestModels(ctx: aion.ExtensionContext): ModelInfo[] {
  const entries = ctx.extension.manifest.contributes?.providers as Array<{ id: string; models?: ModelInfo[] }> | undefined;
  return entries?.find((e) => e.id === PROVIDER_ID)?.models ?? [];
}
