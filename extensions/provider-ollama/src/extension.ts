import * as aion from '@aion/extension-api';
import type { ModelInfo, ProviderImplementation } from '@aion/provider-kit';
import { DEFAULT_BASE_URL, OllamaClient } from './client.js';

/** The id of this extension's entry in `contributes.providers`. */
export const PROVIDER_ID = 'ollama';

/** This extension's configuration section (`extensions["aion.provider-ollama"]`). */
export interface OllamaProviderConfiguration {
  baseUrl?: string;
  /** Secret holding a bearer token, for a server behind an authenticating proxy; unset by default. */
  apiKeySecret?: string;
  timeoutMs?: number;
  models?: ModelInfo[];
}

export function activate(ctx: aion.ExtensionContext): void {
  const config = ctx.configuration.get<OllamaProviderConfiguration | undefined>() ?? {};
  const secret = config.apiKeySecret;
  const client = new OllamaClient({
    baseUrl: config.baseUrl ?? DEFAULT_BASE_URL,
    apiKey: secret ? () => ctx.secrets.get(secret) : undefined,
    timeoutMs: config.timeoutMs,
    models: config.models ?? manifestModels(ctx),
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
