/**
 * Skills of online devices beside the hub's own: in search results, as tools for models and MCP
 * clients, and as the fallback of an id the hub does not have. They come from `aion.devices` when it
 * is installed; without it (or without a signed-in caller) there are none.
 */
import * as aion from '@aion/extension-api';
import type { Principal } from '@aion/extension-api';
import { toolNameOf, type SkillSummary, type ToolCallResult, type ToolDefinition } from './api.js';

/**
 * The part of aion.devices' API used here. Declared here rather than imported: aion.devices depends on
 * this extension's types, so importing its package back would make a build cycle.
 */
export interface DeviceSkillSource {
  remoteSkills(
    principal: Principal,
    q?: string,
  ): Promise<
    Array<{
      id: string;
      title: string;
      description: string;
      tags: string[];
      scope?: string;
      devices: Array<{ name: string; path: string; last_seen_at: number }>;
      device_count: number;
    }>
  >;
  remoteTools(
    principal: Principal,
  ): Promise<Array<{ name: string; path: string; device: string; skill: string; title: string; description: string; inputSchema: Record<string, unknown> }>>;
  executeRemote(
    target: string,
    args: unknown,
    principal: Principal,
    options?: { requestId?: string },
  ): Promise<{ result: unknown; durationMs: number; device: string }>;
}

/** How long "aion.devices is not installed" is believed before asking again. */
const ABSENT_RECHECK_MS = 30_000;
const TOOL_NAME = /^[A-Za-z0-9_-]{1,64}$/;

export class RemoteSkills {
  private source?: Promise<aion.Remote<DeviceSkillSource> | undefined>;
  private absentSince = 0;

  constructor(private readonly find: () => Promise<aion.Remote<DeviceSkillSource>> = () => aion.extensions.getApi<DeviceSkillSource>('aion.devices')) {}

  private async devices(): Promise<aion.Remote<DeviceSkillSource> | undefined> {
    if (this.absentSince && Date.now() - this.absentSince < ABSENT_RECHECK_MS) return undefined;
    this.source ??= this.find().then(
      (api) => api,
      () => {
        this.absentSince = Date.now();
        this.source = undefined;
        return undefined;
      },
    );
    return this.source;
  }

  /**
   * The hub's search results with the devices that have each skill added (`devices`, `device_count`),
   * and the skills only devices have after them. Tags must all match, as for the hub's own skills.
   */
  async mergeSearch(local: SkillSummary[], principal: Principal | undefined, query: { q?: string; tags?: string[] }): Promise<SkillSummary[]> {
    const devices = principal && (await this.devices());
    if (!devices) return local;
    const groups = await devices.remoteSkills(principal, query.q);
    const byId = new Map(local.map((s) => [s.id, s]));
    const out = [...local];
    for (const group of groups) {
      const entries = group.devices.map((d) => ({ id: d.name, name: d.name, kind: 'device', local: false, path: d.path, last_seen_at: d.last_seen_at }));
      const mine = byId.get(group.id);
      if (mine) {
        // The hub's copy first (an unqualified call runs there), then devices, most recently seen first.
        const merged = { ...mine, devices: [...mine.devices, ...entries], device_count: mine.device_count + entries.length };
        out[out.indexOf(mine)] = merged;
        continue;
      }
      if (query.tags?.length && !query.tags.every((t) => group.tags.includes(t))) continue;
      out.push({
        id: group.id,
        title: group.title,
        description: group.description,
        tags: group.tags,
        runtime: 'device',
        enabled: true,
        state: 'enabled',
        source: { kind: 'device' },
        devices: entries,
        device_count: entries.length,
      });
    }
    return out;
  }

  /** Device skills as model tools (`<device>__<skill id with __ for dots>`), each with its `<device>.<skill>` name and path. */
  async tools(principal: Principal | undefined): Promise<Array<{ tool: ToolDefinition; name: string; path: string }>> {
    const devices = principal && (await this.devices());
    if (!devices) return [];
    const offered: Array<{ tool: ToolDefinition; name: string; path: string }> = [];
    const taken = new Set<string>();
    for (const t of await devices.remoteTools(principal)) {
      const modelName = toolNameOf(t.name);
      // A name a model API would refuse is left out rather than shortened into an ambiguous one.
      if (!TOOL_NAME.test(modelName) || taken.has(modelName)) continue;
      taken.add(modelName);
      const tool: ToolDefinition = {
        type: 'function',
        function: { name: modelName, description: `${t.description} (on device ${t.device})`, parameters: t.inputSchema },
      };
      offered.push({ tool, name: t.name, path: t.path });
    }
    return offered;
  }

  /** Device skills as MCP tools, named `<device>.<skill id>`. */
  async mcpTools(
    principal: Principal | undefined,
  ): Promise<Array<{ name: string; title: string; description: string; inputSchema: Record<string, unknown>; path: string }>> {
    const devices = principal && (await this.devices());
    if (!devices) return [];
    return (await devices.remoteTools(principal)).map((t) => ({
      name: t.name,
      title: t.title,
      description: `${t.description} (on device ${t.device})`,
      inputSchema: t.inputSchema,
      path: t.path,
    }));
  }

  /** Runs `<device>/<skill id>`, `<device>.<skill id>` or a bare id on a device; undefined when no device can take it. */
  async execute(
    target: string,
    args: unknown,
    principal: Principal | undefined,
    options: { requestId?: string } = {},
  ): Promise<{ result: unknown; durationMs: number; device: string } | undefined> {
    const devices = principal && (await this.devices());
    if (!devices) return undefined;
    let path = target;
    // An MCP tool name (`<device>.<skill id>`) names a device's skill; a bare id is any device's.
    if (!target.includes('/')) path = (await devices.remoteTools(principal)).find((t) => t.name === target)?.path ?? target;
    return devices.executeRemote(path, args, principal, options);
  }

  /** Whether a filter of tool names or skill ids (`prefix.*` allowed) admits a device tool. */
  static admits(patterns: string[] | undefined, tool: { name: string; path: string }, modelName: string): boolean {
    if (!patterns) return true;
    return patterns.some((p) => p === tool.name || p === tool.path || p === modelName || (p.endsWith('.*') && tool.name.startsWith(p.slice(0, -1))));
  }

  /** A model's call of a device tool, as a value (failures too), like the hub's own tools. */
  async executeTool(name: string, path: string, args: unknown, principal: Principal, options: { requestId?: string } = {}): Promise<ToolCallResult> {
    const started = performance.now();
    try {
      const parsed = typeof args === 'string' ? (args.trim() ? JSON.parse(args) : {}) : (args ?? {});
      const answer = await this.execute(path, parsed, principal, options);
      if (!answer) throw new aion.AionError('SKILL_NOT_FOUND', `no skill or device tool ${name}`);
      return { ok: true, skill: path, name, result: answer.result, content: JSON.stringify(answer.result), durationMs: performance.now() - started };
    } catch (err) {
      const code = aion.isAionError(err) ? err.code : err instanceof SyntaxError ? 'VALIDATION_FAILED' : 'SKILL_FAILED';
      const message = err instanceof Error ? err.message : String(err);
      return {
        ok: false,
        skill: path,
        name,
        error: { code, message },
        content: JSON.stringify({ error: { code, message } }),
        durationMs: performance.now() - started,
      };
    }
  }
}
