import * as aion from '@aion/extension-api';
import type { HttpProviderConnection } from './httpClient.js';
import type { ModelInfo, ProviderImplementation } from './types.js';

/**
 * The event a provider emits (`aion.events.emit(PROVIDERS_CHANGED_EVENT, { id })`) when the models it
 * lists changed; the router asks it for them again. For providers whose models come and go at run time.
 */
export const PROVIDERS_CHANGED_EVENT = 'providers.changed';

/** What every provider's configuration section may have. */
export interface ProviderConfiguration {
  /** The operator's models, which replace the manifest's. */
  models?: ModelInfo[];
  /** The vendor's root URL; the client's default when unset. */
  baseUrl?: string;
  /** The secret holding the API key; the registration's default when unset, `""` for no key. */
  apiKeySecret?: string;
  /** The longest wait without progress when a request sets none. */
  timeoutMs?: number;
}

/** The provider's client: `chat` and `listModels`, `complete` when it answers whole requests at once, and `embed` when it has embedding models. */
export type ProviderClient = Pick<ProviderImplementation, 'chat' | 'listModels'> & Partial<Pick<ProviderImplementation, 'embed' | 'complete'>>;

export interface ProviderRegistration<C extends ProviderConfiguration> {
  /** The id of the extension's entry in `contributes.providers`. */
  id: string;
  /** The secret read for the key when `apiKeySecret` is unset; none: no key unless configured. */
  apiKeySecret?: string;
  /** Every call needs a key: an unset secret fails the call (PROVIDER_AUTH_FAILED) instead of sending none. */
  keyRequired?: boolean;
  /**
   * Builds the client from the configuration, the models to describe (the operator's, else the
   * manifest entry's) and the connection the configuration names (root URL, timeout, the key read
   * from `ctx.secrets` before every call, so a rotated key applies at once).
   */
  create(config: C, models: ModelInfo[], connection: HttpProviderConnection): ProviderClient;
}

/**
 * The whole `activate` of a model provider: reads the configuration, builds the client, and registers
 * it under `contributes.providers[id]` as a plain object, so only the provider methods are reachable
 * over RPC. Answers the client (tests reach it without a kernel).
 */
export function registerProvider<C extends ProviderConfiguration>(ctx: aion.ExtensionContext, registration: ProviderRegistration<C>): ProviderClient {
  const config = ctx.configuration.get<C | undefined>() ?? ({} as C);
  const client = registration.create(config, config.models ?? manifestModels(ctx, registration.id), {
    baseUrl: config.baseUrl,
    timeoutMs: config.timeoutMs,
    apiKey: keyReader(ctx, config.apiKeySecret, registration),
  });
  const implementation: ProviderImplementation = {
    chat: (request, token) => client.chat(request, token),
    listModels: (token) => client.listModels(token),
    configuredModels: () => config.models,
  };
  if (client.complete) implementation.complete = (request, token) => client.complete!(request, token);
  if (client.embed) implementation.embed = (request, token) => client.embed!(request, token);
  ctx.subscriptions.push(aion.contributions.register('providers', registration.id, implementation));
  return client;
}

/** The models of the extension's own manifest entry: the defaults an operator overrides with `models`. */
export function manifestModels(ctx: aion.ExtensionContext, id: string): ModelInfo[] {
  const entries = ctx.extension.manifest.contributes?.providers as Array<{ id: string; models?: ModelInfo[] }> | undefined;
  return entries?.find((e) => e.id === id)?.models ?? [];
}

/** Reads the configured secret before every call; `""` means no key, except where one is required (then the default). */
function keyReader(ctx: aion.ExtensionContext, configured: string | undefined, registration: ProviderRegistration<never>): HttpProviderConnection['apiKey'] {
  const required = registration.keyRequired === true;
  const secret = required ? configured || registration.apiKeySecret : (configured ?? registration.apiKeySecret);
  if (!secret) {
    if (required) throw new Error('this provider needs an API key: set apiKeySecret to the secret that holds it');
    return undefined;
  }
  return async () => {
    const key = await ctx.secrets.get(secret);
    if (!key && required) throw new Error(`the secret ${secret} is not set`);
    return key;
  };
}
