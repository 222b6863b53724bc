import { AionError, ErrorCodes, type ExtensionContext, type Remote } from '@aion/extension-api';
import type { ExtensionScope } from './capability.js';

type StateApi = { stateGet(key: string): unknown; stateUpdate(key: string, value: unknown): void; stateKeys(): string[] };

/** `ctx.state` is served by the storage extension's API; the kernel tells it which extension is asking. */
export function hostState(): (scope: ExtensionScope) => ExtensionContext['state'] {
  return ({ binding }) => {
    let api: Promise<Remote<StateApi>> | undefined;
    const storage = () =>
      (api ??= binding()
        .extensions.getApi<StateApi>('aion.storage')
        .catch((err) => {
          api = undefined;
          throw new AionError(ErrorCodes.EXTENSION_NOT_FOUND, `ctx.state needs the aion.storage extension: ${(err as Error).message}`);
        }));
    return {
      get: async <T>(key: string, defaultValue?: T) => {
        const value = await (await storage()).stateGet(key);
        return (value ?? defaultValue) as T | undefined;
      },
      update: async (key: string, value: unknown) => void (await (await storage()).stateUpdate(key, value)),
      keys: async () => (await storage()).stateKeys(),
    };
  };
}
