import * as aion from '@aion/extension-api';
import type { ModelInfo, ProviderImplementation } from './types.js';

/** What every provider's configuration section has: the operator's models, which replace the manifest's. */
export interface ProviderConfiguration {
  models?: ModelInfo[];
}

/** The provider's client: `chat` and `listModels`, and `embed` when it has embedding models. */
export type ProviderClient = Pick<ProviderImplementation, 'chat' | 'listModels'> & Partial<Pick<ProviderImplementation, 'embed'>>;

export interface ProviderRegistration<C extends ProviderConfiguration> {
  /** The id of the extension's entry in `contributes.providers`. */
  id: string;
  /** Builds the client from the configuration and the models to describe: the operator's, else the manifest entry's. */
  create(config: C, models: ModelInfo[]): ProviderClient;
}

/**
 * The whole `activate` of a model provider: reads the configuration, builds the client, and registers
 * it under `contributes.providers[id]` as a plain object, so only the provider methods are reachable
 * over RPC. Answers the client (tests reach it without a kernel).
 */
export function registerProvider<C extends ProviderConfiguration>(ctx: aion.ExtensionContext, registration: ProviderRegistration<C>): ProviderClient {
  const config = ctx.configuration.get<C | undefined>() ?? ({} as C);
  const client = registration.create(config, config.models ?? manifestModels(ctx, registration.id));
  const implementation: ProviderImplementation = {
    chat: (request, token) => client.chat(request, token),
    listModels: (token) => client.listModels(token),
    configuredModels: () => config.models,
  };
  if (client.embed) implementation.embed = (request, token) => client.embed!(request, token);
  ctx.subscriptions.push(aion.contributions.register('providers', registration.id, implementation));
  return client;
}

/** The models of the extension's own manifest entry: the defaults an operator overrides with `models`. */
export function manifestModels(ctx: aion.ExtensionContext, id: string): ModelInfo[] {
  const entries = ctx.extension.manifest.contributes?.providers as Array<{ id: string; models?: ModelInfo[] }> | undefined;
  return entries?.find((e) => e.id === id)?.models ?? [];
}
