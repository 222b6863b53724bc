import * as aion from '@aion/extension-api';
import type { ModelInfo, ProviderImplementation } from '@aion/provider-kit';
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
  const config = ctx.configuration.get<OpenAIProviderConfiguration | undefined>() ?? {};
  const secret = config.apiKeySecret ?? DEFAULT_API_KEY_SECRET;
  const client = new OpenAIClient({
    baseUrl: config.baseUrl ?? DEFAULT_BASE_URL,
    apiKey: secret ? () => ctx.secrets.get(secret) : undefined,
    azure: config.azure,
    timeoutMs: config.timeoutMs,
    models: config.models ?? manifestModels(ctx),
    maxTokensParameter: config.maxTokensParameter,
  });
  // A plain object, so only these methods can be called over RPC.
  const implementation: ProviderImplementation = {
    chat: (request, token) => client.chat(request, token),
    listModels: (token) => client.listModels(token),
    embed: (request, token) => client.embed(request, token),
    configuredModels: () => config.models,
  };
  ctx.subscriptions.push(aion.contributions.register('providers', PROVIDER_ID, implementation));
}

/** The models of this extension's own manifest entry: the defaults an operator overrides with `models`. */
function manifestModels(ctx: aion.ExtensionContext): ModelInfo[] {
  const entries = ctx.extension.manifest.contributes?.providers as Array<{ id: string; models?: ModelInfo[] }> | undefined;
  return entries?.find((e) => e.id === PROVIDER_ID)?.models ?? [];
}
