import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { Emitter, type Event } from '@aion/extension-api';
import type { JsonSchema, Skill } from './types.js';

export interface CatalogEntry {
  skill: Skill;
  sourceKey: string;
  validateInput: ValidateFunction;
  validateOutput?: ValidateFunction;
}

export interface SchemaProblem {
  path: string;
  message: string;
  keyword: string;
}

const SCHEMA_2020 = 'https://json-schema.org/draft/2020-12/schema';

/** A fresh validator factory: each source gets its own, so reloading a pack forgets its schemas. */
export function createAjv(): Ajv2020 {
  const ajv = new Ajv2020({ allErrors: true, strict: false, validateSchema: true });
  (addFormats as unknown as { default: (a: Ajv2020) => void }).default(ajv);
  return ajv;
}

/** Checks what MCP and the gatekeeper need of a schema: JSON Schema 2020-12, an object at the top. */
export function checkSchema(schema: JsonSchema, label: string, options: { lenientDialect?: boolean } = {}): JsonSchema {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) throw new Error(`${label} is not an object`);
  const copy: JsonSchema = { ...schema };
  if (copy.$schema !== undefined && copy.$schema !== SCHEMA_2020 && copy.$schema !== `${SCHEMA_2020}#`) {
    if (!options.lenientDialect) throw new Error(`${label} must be JSON Schema 2020-12 (its $schema is ${String(copy.$schema)})`);
    delete copy.$schema;
  }
  if (copy.type !== 'object') throw new Error(`${label} must have "type": "object" at the top`);
  return copy;
}

export function schemaProblems(errors: ErrorObject[] | null | undefined, limit = 20): SchemaProblem[] {
  return (errors ?? []).slice(0, limit).map((e) => {
    let path = e.instancePath || '/';
    if (e.keyword === 'required') path = `${e.instancePath}/${(e.params as { missingProperty: string }).missingProperty}`;
    if (e.keyword === 'additionalProperties') path = `${e.instancePath}/${(e.params as { additionalProperty: string }).additionalProperty}`;
    const extra = e.keyword === 'enum' ? ` (${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')})` : '';
    return { path, message: `${e.message ?? 'is invalid'}${extra}`, keyword: e.keyword };
  });
}

/** Every skill the hub knows, by source (a pack, the extensions, an MCP server), with compiled validators. */
export class SkillCatalog {
  private readonly entries = new Map<string, CatalogEntry>();
  private readonly sources = new Map<string, Set<string>>();
  private readonly disabledIds = new Set<string>();
  private readonly changed = new Emitter<void>();
  readonly onDidChange: Event<void> = this.changed.event;

  constructor(private disabledPatterns: readonly string[] = []) {}

  /**
   * Replaces every skill of one source. A skill whose id another source already holds, or whose
   * schemas do not compile, is refused with the reason; the rest go in.
   */
  replaceSource(
    sourceKey: string,
    skills: readonly Skill[],
    options: { lenientDialect?: boolean } = {},
  ): { added: string[]; refused: Array<{ id: string; reason: string }> } {
    const ajv = createAjv();
    const prepared: CatalogEntry[] = [];
    const refused: Array<{ id: string; reason: string }> = [];
    const seen = new Set<string>();
    for (const skill of skills) {
      const owner = this.entries.get(skill.id)?.sourceKey;
      if ((owner && owner !== sourceKey) || seen.has(skill.id)) {
        refused.push({ id: skill.id, reason: `the id ${skill.id} is already taken${owner && owner !== sourceKey ? ` by ${owner}` : ''}` });
        continue;
      }
      try {
        const inputSchema = checkSchema(skill.inputSchema, `${skill.id}: inputSchema`, options);
        const outputSchema = skill.outputSchema ? checkSchema(skill.outputSchema, `${skill.id}: outputSchema`, options) : undefined;
        const validateInput = ajv.compile(inputSchema);
        const validateOutput = outputSchema ? ajv.compile(outputSchema) : undefined;
        prepared.push({ skill: { ...skill, inputSchema, outputSchema }, sourceKey, validateInput, validateOutput });
        seen.add(skill.id);
      } catch (err) {
        refused.push({ id: skill.id, reason: `its schemas are not usable: ${(err as Error).message}` });
      }
    }
    this.dropSource(sourceKey);
    const ids = new Set<string>();
    for (const entry of prepared) {
      this.entries.set(entry.skill.id, entry);
      ids.add(entry.skill.id);
    }
    if (ids.size) this.sources.set(sourceKey, ids);
    this.changed.fire();
    return { added: [...ids], refused };
  }

  removeSource(sourceKey: string): string[] {
    const removed = this.dropSource(sourceKey);
    if (removed.length) this.changed.fire();
    return removed;
  }

  get(id: string): CatalogEntry | undefined {
    return this.entries.get(id);
  }

  all(): Skill[] {
    return [...this.entries.values()].map((e) => e.skill);
  }

  sourceSkills(sourceKey: string): Skill[] {
    return [...(this.sources.get(sourceKey) ?? [])].map((id) => this.entries.get(id)!.skill);
  }

  isEnabled(id: string): boolean {
    if (this.disabledIds.has(id)) return false;
    return !this.disabledPatterns.some((p) => (p.endsWith('*') ? id.startsWith(p.slice(0, -1)) : p === id));
  }

  /** Enables or disables one skill at run time; returns whether anything changed. */
  setEnabled(id: string, enabled: boolean): boolean {
    const before = this.isEnabled(id);
    if (enabled) this.disabledIds.delete(id);
    else this.disabledIds.add(id);
    const after = this.isEnabled(id);
    if (before !== after) this.changed.fire();
    return before !== after;
  }

  disabledAtRunTime(): string[] {
    return [...this.disabledIds];
  }

  private dropSource(sourceKey: string): string[] {
    const ids = [...(this.sources.get(sourceKey) ?? [])];
    for (const id of ids) this.entries.delete(id);
    this.sources.delete(sourceKey);
    return ids;
  }

  dispose(): void {
    this.changed.dispose();
  }
}
