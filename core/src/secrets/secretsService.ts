import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inject, injectable } from 'inversify';
import { AionError, ErrorCodes } from '@aion/extension-api';
import type { AionConfig } from '../config/configuration.js';
import { ExtensionRegistry } from '../registry/extensionRegistry.js';
import type { ExtensionRecord } from '../registry/extensionRecord.js';
import { TYPES } from '../tokens.js';
import { logRedactor } from '../logging.js';

function redacted(value: string | undefined): string | undefined {
  logRedactor.addSecret(value);
  return value;
}

const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** The kernel's own secrets (signing key, database and Redis URLs): only built-in owners ever read these. */
const KERNEL_SECRET = /^AION_/;

const matches = (pattern: string, name: string) => pattern === name || (pattern.endsWith('*') && name.startsWith(pattern.slice(0, -1)));
const envIdOf = (extensionId: string) => extensionId.toUpperCase().replace(/[^A-Z0-9]/g, '_');

/**
 * Secrets have owners. An extension owns the names it declares in `contributes.secrets` (the first to
 * declare a name owns it, and built-ins are loaded first); it reads those, and names it lists in
 * `aion.permissions.secrets` that nobody owns (values the operator set for it). Another owner's secret
 * needs an operator grant (`permissions.grants["<id>"].secrets`); a kernel secret (`AION_*`) is read by
 * built-in extensions only, never by one installed later, whatever the grants. Values come from the secrets file section of the extension (or of the
 * owner), `AION_SECRET_<ID>__<NAME>`, and the bare `<NAME>` in the environment only for names the
 * operator lists in `permissions.environmentSecrets` (and kernel secrets, for their built-in owner).
 */
@injectable()
export class SecretsService {
  private file: Record<string, Record<string, string>> = {};
  private owners?: Array<{ pattern: string; owner: ExtensionRecord }>;

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
    for (const value of this.knownValues()) logRedactor.addSecret(value);
  }

  /** Who owns each declared name; a later claim on an owned name is reported on the claimant and ignored. */
  private ownership(): Array<{ pattern: string; owner: ExtensionRecord }> {
    if (this.owners) return this.owners;
    const owners: Array<{ pattern: string; owner: ExtensionRecord }> = [];
    for (const record of this.registry.all()) {
      for (const { name } of record.manifest.contributes?.secrets ?? []) {
        const taken = owners.find((o) => o.pattern === name || matches(o.pattern, name.replace(/\*$/, '')));
        if (taken && taken.owner.id !== record.id) {
          record.warnings.push({
            code: ErrorCodes.SECRET_NOT_GRANTED,
            message: `${record.manifestPath}: /contributes/secrets: ${name} is owned by ${taken.owner.id}; this extension reads it only if the operator grants it`,
          });
          continue;
        }
        if (KERNEL_SECRET.test(name) && !record.builtin) {
          record.warnings.push({
            code: ErrorCodes.SECRET_NOT_GRANTED,
            message: `${record.manifestPath}: /contributes/secrets: ${name} is reserved for the kernel's own extensions`,
          });
          continue;
        }
        owners.push({ pattern: name, owner: record });
      }
    }
    return (this.owners = owners);
  }

  /** The extension that owns `name`, if any. */
  ownerOf(name: string): ExtensionRecord | undefined {
    return this.ownership().find((o) => matches(o.pattern, name))?.owner;
  }

  get(extensionId: string, name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
    const record = this.registry.get(extensionId);
    const asked = [...(record?.manifest.contributes?.secrets ?? []).map((s) => s.name), ...(record?.manifest.aion?.permissions?.secrets ?? [])];
    const granted = this.config.permissions.grants[extensionId]?.secrets ?? [];
    if (!SECRET_NAME.test(name) || !record || ![...asked, ...granted].some((d) => matches(d, name))) {
      throw new AionError(
        ErrorCodes.SECRET_NOT_DECLARED,
        `${extensionId} asked for secret ${name} but does not declare it in contributes.secrets or aion.permissions.secrets`,
      );
    }
    const owner = this.ownerOf(name);
    const isKernelSecret = KERNEL_SECRET.test(name);
    if (isKernelSecret && !record.builtin) {
      throw new AionError(
        ErrorCodes.SECRET_NOT_GRANTED,
        `${name} is a kernel secret: only the kernel's built-in extensions can read it, and no grant changes that`,
        { details: { secret: name } },
      );
    }
    if (owner && owner.id !== extensionId && !granted.some((g) => matches(g, name))) {
      throw new AionError(
        ErrorCodes.SECRET_NOT_GRANTED,
        `${extensionId} asked for secret ${name}, which belongs to ${owner.id}: the operator grants it with permissions.grants["${extensionId}"].secrets: ["${name}"]`,
        {
          details: { secret: name, owner: owner.id },
        },
      );
    }
    const fromSection = (id: string) => this.file[id]?.[name] ?? env[`AION_SECRET_${envIdOf(id)}__${name}`];
    const value = fromSection(extensionId) ?? (owner && owner.id !== extensionId ? fromSection(owner.id) : undefined);
    // A value handed out may be logged by mistake: every logger in this process scrubs it from then on.
    if (value !== undefined) return redacted(value);
    // The bare name only for the owner (or a grantee) and only where the operator allows it.
    const fromEnvironment = isKernelSecret || this.config.permissions.environmentSecrets.includes(name);
    return fromEnvironment && (owner || granted.some((g) => matches(g, name))) ? redacted(env[name]) : undefined;
  }

  /** Every secret value currently known, so logs can be scrubbed of them. */
  knownValues(): string[] {
    return Object.values(this.file)
      .flatMap((s) => Object.values(s))
      .filter((v) => typeof v === 'string' && v.length >= 6);
  }
}
