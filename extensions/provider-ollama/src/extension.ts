import * as aion from '@aion/extension-api';
import { registerProvider, type ModelInfo } from '@aion/provider-kit';
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
  registerProvider<OllamaProviderConfiguration>(ctx, {
    id: PROVIDER_ID,
    create: (config, models) => {
      const secret = config.apiKeySecret;
      return new OllamaClient({
        baseUrl: config.baseUrl ?? DEFAULT_BASE_URL,
        apiKey: secret ? () => ctx.secrets.get(secret) : undefined,
        timeoutMs: config.timeoutMs,
        models,
      });
    },
  });
}
