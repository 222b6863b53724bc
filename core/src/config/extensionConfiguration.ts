import { Ajv2020 } from 'ajv/dist/2020.js';
import { AionError, ErrorCodes } from '@aion/extension-api';
import type { ExtensionRegistry } from '../registry/extensionRegistry.js';
import type { Logger } from '../logging.js';
import type { AionConfig } from './configuration.js';

const norm = (s: string) => s.toUpperCase().replace(/[^A-Z0-9]/g, '_');

/**
 * Validates each extension's section against the schema it contributes, with defaults applied.
 * An invalid value stops start-up with a message naming the key.
 */
export function applyExtensionConfiguration(config: AionConfig, registry: ExtensionRegistry, logger: Logger): void {
  const ajv = new Ajv2020({ allErrors: true, useDefaults: true, strict: false, coerceTypes: false });
  const sections = config.extensions ?? {};
  const claimed = new Set<string>();
  const problems: string[] = [];
  for (const record of registry.all()) {
    // Environment overrides arrive with normalised names (aion_hello); match them to the real id.
    const keys = Object.keys(sections).filter((k) => k === record.id || norm(k) === norm(record.id));
    const value: Record<string, unknown> = {};
    for (const key of keys) {
      Object.assign(value, structuredClone(sections[key]));
      claimed.add(key);
    }
    const schema = record.manifest.contributes?.configuration;
    if (schema) {
      let validate: ReturnType<typeof ajv.compile>;
      try {
        validate = ajv.compile({ type: 'object', ...schema });
      } catch (err) {
        registry.skip(record.id, {
          code: ErrorCodes.MANIFEST_INVALID,
          message: `${record.manifestPath}: /contributes/configuration: not a valid JSON schema (${(err as Error).message})`,
        });
        continue;
      }
      if (!validate(value)) {
        for (const e of validate.errors ?? []) {
          const key = `extensions.${record.id}${e.instancePath.replace(/\//g, '.')}`;
          const extra = e.keyword === 'additionalProperties' ? ` (${(e.params as { additionalProperty: string }).additionalProperty})` : '';
          problems.push(`${key}: ${e.message}${extra}`);
        }
      }
    }
    record.configuration = value;
  }
  for (const key of Object.keys(sections)) {
    if (!claimed.has(key)) logger.warn(`configuration section extensions.${key} matches no installed extension`);
  }
  if (problems.length > 0) {
    throw new AionError(ErrorCodes.CONFIG_INVALID, `invalid configuration: ${problems.join('; ')}`, { details: problems });
  }
}
