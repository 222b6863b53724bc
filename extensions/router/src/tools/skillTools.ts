import * as aion from '@aion/extension-api';
import { AionError, ErrorCodes, isAionError, type CancellationToken, type Principal } from '@aion/extension-api';
// Types only: the router runs without aion.skills installed (a request that enables skills is then refused).
import type { SkillsApi, ToolCallResult } from '@aion/ext-skills';
import type { ToolDefinition } from '../providers/providerTypes.js';

/** Which skills a request offers the model: ids (or `prefix.*`), every skill, or a search. */
export type SkillSelection = string[] | '*' | { q?: string; tags?: string[]; limit?: number };

export const skillSelectionSchema = {
  anyOf: [
    { const: '*' },
    { type: 'array', minItems: 1, maxItems: 128, items: { type: 'string', minLength: 1, maxLength: 130 } },
    {
      type: 'object',
      properties: { q: { type: 'string' }, tags: { type: 'array', items: { type: 'string' } }, limit: { type: 'integer', minimum: 1 } },
      additionalProperties: false,
    },
  ],
} as const;

/** What `executeTool` answers; failures are values. */
export type { ToolCallResult } from '@aion/ext-skills';

/** The skills one request offers, as tools, and who they run as. */
export interface SkillSet {
  tools: ToolDefinition[];
  /** Tool names of the offered skills: a call to one of them runs in the loop. */
  names: ReadonlySet<string>;
  principal: Principal;
  maxSteps: number;
}

const EXECUTE_SCOPE = 'skills:execute';

/** Reaches `aion.skills`: turns a request's skill selection into tools, and runs the calls the model makes. */
export class SkillTools {
  private api?: Promise<aion.Remote<SkillsApi>>;

  constructor(private readonly limits: () => { maxSteps: number; maxTools: number }) {}

  private async skills(): Promise<aion.Remote<SkillsApi>> {
    this.api ??= aion.extensions.getApi<SkillsApi>('aion.skills');
    try {
      return await this.api;
    } catch (err) {
      this.api = undefined;
      if (isAionError(err) && err.code === ErrorCodes.EXTENSION_NOT_FOUND) {
        throw new AionError(
          'SKILLS_NOT_INSTALLED',
          'the request enables skills, but the aion.skills extension is not installed; install it (it ships with Aion) or leave out skills',
          { status: 400 },
        );
      }
      throw new AionError('SKILLS_UNAVAILABLE', `the request enables skills, but aion.skills cannot be reached: ${(err as Error).message}`, { status: 503 });
    }
  }

  /** The tools for `selection`; 400 when aion.skills is missing, a named skill is not offered, or nothing matches. */
  async resolve(selection: SkillSelection, principal: Principal | undefined, maxSteps: number | undefined): Promise<SkillSet> {
    const api = await this.skills();
    if (!principal) throw new AionError('SKILLS_NEED_PRINCIPAL', 'skills run as the caller, and this request has no authenticated principal', { status: 400 });
    const limits = this.limits();
    const filter = Array.isArray(selection) ? { skills: selection } : selection === '*' ? {} : { q: selection.q, tags: selection.tags };
    const limit = Math.min(typeof selection === 'object' && !Array.isArray(selection) && selection.limit ? selection.limit : limits.maxTools, limits.maxTools);
    // Listed as if the caller held skills:execute: a skill behind a scope it lacks stays hidden, and a
    // caller without skills:execute is told so by the gatekeeper at each call, where the model and the client see it.
    const listAs = principal.scopes.includes(EXECUTE_SCOPE) ? principal : { ...principal, scopes: [...principal.scopes, EXECUTE_SCOPE] };
    const listed = await api.listTools({ ...filter, principal: listAs, limit });
    const names = new Set(listed.map((t) => t.function.name));
    if (Array.isArray(selection)) {
      const missing = selection.filter((id) => !id.endsWith('*') && !names.has(id) && !names.has(id.replace(/\./g, '__')));
      if (missing.length)
        throw new AionError('SKILL_NOT_FOUND', `no skill ${missing.join(', ')} is installed, enabled and open to this caller (GET /v1/skills lists them)`, {
          status: 400,
          details: { skills: missing },
        });
    }
    if (names.size === 0)
      throw new AionError('SKILL_NOT_FOUND', `no skill matches skills ${JSON.stringify(selection)} (GET /v1/skills lists them)`, { status: 400 });
    return {
      tools: listed.map((t) => ({ name: t.function.name, description: t.function.description, parameters: t.function.parameters })),
      names,
      principal,
      maxSteps: Math.min(maxSteps ?? limits.maxSteps, limits.maxSteps),
    };
  }

  /** Runs one tool call through the skills gatekeeper; whatever goes wrong comes back as an error result. */
  async call(name: string, args: string, principal: Principal, requestId: string, token: CancellationToken): Promise<ToolCallResult> {
    const started = performance.now();
    try {
      return await (await this.skills()).executeTool(name, args, principal, { requestId }, token);
    } catch (err) {
      const error = isAionError(err) ? { code: String(err.code), message: err.message } : { code: 'SKILL_FAILED', message: 'the skill call failed' };
      return { ok: false, skill: name, name, error, content: JSON.stringify({ error }), durationMs: performance.now() - started };
    }
  }
}

/** Adds the skills' tools to the client's own; a name both use is refused. */
export function mergeTools(own: ToolDefinition[] | undefined, skills: SkillSet): ToolDefinition[] {
  const clash = (own ?? []).filter((t) => skills.names.has(t.name)).map((t) => t.name);
  if (clash.length)
    throw new AionError(ErrorCodes.VALIDATION_FAILED, `tools ${clash.join(', ')} have the name of an enabled skill; rename them or leave those skills out`, {
      details: { tools: clash },
    });
  return [...(own ?? []), ...skills.tools];
}
