/** Skills as tools for models: unique tool names, the tool list a model is offered, and tool calls as values. */
import { createHash } from 'node:crypto';
import { isAionError, type Principal } from '@aion/extension-api';
import { toolNameOf, type ToolCallOptions, type ToolCallResult, type ToolDefinition, type ToolFilter } from './api.js';
import type { SkillCatalog } from './catalog.js';
import { publicMessage } from './errors.js';
import type { Gatekeeper } from './gatekeeper.js';
import type { SkillQuarantine } from './quarantine.js';
import { searchSkills } from './search.js';

export class SkillTools {
  private readonly names = new Map<string, string>();

  constructor(
    private readonly catalog: SkillCatalog,
    private readonly gatekeeper: Gatekeeper,
    private readonly quarantine: SkillQuarantine,
  ) {}

  /** The tool name of a skill: `.` as `__`, made unique and at most 64 characters. */
  toolName(id: string): string {
    const base = toolNameOf(id);
    let name =
      base.length <= 64 && /^[A-Za-z0-9_-]+$/.test(base)
        ? base
        : `${base.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 55)}_${createHash('sha256').update(id).digest('hex').slice(0, 8)}`;
    const holder = this.names.get(name);
    if (holder && holder !== id) name = `${name.slice(0, 55)}_${createHash('sha256').update(id).digest('hex').slice(0, 8)}`;
    this.names.set(name, id);
    return name;
  }

  private skillForTool(name: string): string | undefined {
    if (this.catalog.get(name)) return name;
    const mapped = this.names.get(name);
    if (mapped) return mapped;
    for (const skill of this.catalog.all()) if (this.toolName(skill.id) === name) return skill.id;
    return undefined;
  }

  list(filter: ToolFilter = {}): ToolDefinition[] {
    let skills =
      filter.q || filter.tags?.length
        ? searchSkills(this.catalog.all(), filter.q, filter.tags ?? []).map((h) => h.skill)
        : this.catalog.all().sort((a, b) => a.id.localeCompare(b.id));
    if (filter.skills?.length) {
      const wanted = filter.skills;
      skills = skills.filter((s) => wanted.some((w) => (w.endsWith('*') ? s.id.startsWith(w.slice(0, -1)) : w === s.id || w === this.toolName(s.id))));
    }
    skills = skills.filter((s) =>
      filter.principal ? this.gatekeeper.mayCall(s, filter.principal) : this.catalog.isEnabled(s.id) && !this.quarantine.get(s.id),
    );
    return skills.slice(0, filter.limit ?? 128).map((s) => {
      const { $schema: _dialect, $id: _id, ...parameters } = s.inputSchema;
      return {
        type: 'function',
        function: { name: this.toolName(s.id), description: s.title === s.description ? s.description : `${s.title}. ${s.description}`, parameters },
      };
    });
  }

  async execute(
    name: string,
    args: unknown,
    principal: Principal,
    options: ToolCallOptions & { extension?: string; signal?: AbortSignal } = {},
  ): Promise<ToolCallResult> {
    const started = performance.now();
    const id = this.skillForTool(name) ?? name;
    const fail = (code: string, message: string, details?: unknown): ToolCallResult => {
      const error = { code, message: publicMessage(message), ...(details !== undefined ? { details } : {}) };
      return {
        ok: false,
        skill: id,
        name,
        error,
        content: JSON.stringify({ error: { code: error.code, message: error.message, ...(details !== undefined ? { details } : {}) } }),
        durationMs: performance.now() - started,
      };
    };
    let input = args;
    if (typeof args === 'string') {
      try {
        input = args.trim() ? JSON.parse(args) : {};
      } catch (err) {
        return fail('VALIDATION_FAILED', `The arguments are not valid JSON: ${(err as Error).message}`);
      }
    }
    try {
      const { result, durationMs } = await this.gatekeeper.execute(id, input, {
        principal,
        via: 'api',
        extension: options.extension,
        requestId: options.requestId,
        signal: options.signal,
      });
      return { ok: true, skill: id, name, result, content: JSON.stringify(result) ?? 'null', durationMs };
    } catch (err) {
      if (isAionError(err)) return fail(err.code, err.message, err.details);
      return fail('SKILL_FAILED', err instanceof Error ? err.message : String(err));
    }
  }
}
