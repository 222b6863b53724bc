import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inject, injectable } from 'inversify';
import { AionError, ErrorCodes } from '@aion/extension-api';
import type { AionConfig } from '../config/configuration.js';
import { ExtensionRegistry } from '../registry/extensionRegistry.js';
import { TYPES } from '../tokens.js';

const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Per-extension secrets. An extension reads only names it declares in `aion.permissions.secrets`
 * (a declared `PREFIX_*` covers every name that starts with `PREFIX_`).
 * Lookup order: the secrets file section of the extension (`{ "<id>": { "NAME": "value" } }`),
 * `AION_SECRET_<ID>__<NAME>` in the environment, then `<NAME>` itself (so `OPENAI_API_KEY` just works).
 */
@injectable()
export class SecretsService {
  private file: Record<string, Record<string, string>> = {};

  constructor(
    @inject(TYPES.KernelOptions) private readonly config: AionConfig,
    @inject(ExtensionRegistry) private readonly registry: ExtensionRegistry,
  ) {
    const path = config.secretsFile ?? join(config.dataDir, 'secrets.json');
    if (existsSync(path)) {
      try {
        this.file = JSON.parse(readFileSync(path, 'utf8'));
      } catch (err) {
        throw new AionError(ErrorCodes.CONFIG_INVALID, `secrets file ${path} is not valid JSON: ${(err as Error).message}`);
      }
    }
  }

  get(extensionId: string, name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
    const declared = this.registry.get(extensionId)?.manifest.aion?.permissions?.secrets ?? [];
    if (!SECRET_NAME.test(name) || !declared.some((d) => d === name || (d.endsWith('*') && name.startsWith(d.slice(0, -1))))) {
      throw new AionError(ErrorCodes.SECRET_NOT_DECLARED, `${extensionId} asked for secret ${name} but does not declare it in aion.permissions.secrets`);
    }
    const envId = extensionId.toUpperCase().replace(/[^A-Z0-9]/g, '_');
    return this.file[extensionId]?.[name] ?? env[`AION_SECRET_${envId}__${name}`] ?? env[name];
  }

  /** Every secret value currently known, so logs can be scrubbed of them. */
  knownValues(): string[] {
    return Object.values(this.file).flatMap((s) => Object.values(s)).filter((v) => typeof v === 'string' && v.length >= 6);
  }
}
