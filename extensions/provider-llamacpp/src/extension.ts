import * as aion from '@aion/extension-api';
import type { ProviderImplementation } from '@aion/provider-kit';
import { resolveConfiguration, type LlamaCppConfiguration } from './config.js';
import { LocalModelService, type LocalModelStatus } from './localModels.js';
import { formatModelTable } from './modelTable.js';

/** The id of this extension's entry in `contributes.providers`. */
export const PROVIDER_ID = 'llamacpp';

export type { LlamaCppConfiguration, LocalModelEntry, GpuBackend, GpuLayers } from './config.js';
export type { LocalModelStatus, ModelPlacement } from './localModels.js';

/** This extension's API (`aion.extensions.getApi('aion.provider-llamacpp')`). */
export interface LlamaCppApi {
  /** The configured local models: file size, quantization, state, where they are loaded, queue. */
  models(): Promise<LocalModelStatus[]>;
}

export function activate(ctx: aion.ExtensionContext): LlamaCppApi {
  const config = resolveConfiguration(ctx.configuration.get<LlamaCppConfiguration>());
  const service = new LocalModelService(config, (level, message) => ctx.logger[level](message));
  ctx.subscriptions.push({ dispose: () => void service.dispose() });
  // A plain object, so only these two methods can be called over RPC.
  const implementation: ProviderImplementation = {
    chat: (request, token) => service.chat(request, token),
    listModels: () => service.listModels(),
  };
  ctx.subscriptions.push(aion.contributions.register('providers', PROVIDER_ID, implementation));
  ctx.subscriptions.push(
    aion.commands.register('models.list', async (args?: { json?: boolean }) => {
      const models = await service.status();
      return args?.json ? models : formatModelTable(models, config.enabled);
    }),
  );
  if (config.enabled && config.preload) service.preload();
  return { models: () => service.status() };
}
