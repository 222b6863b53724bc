import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { CallToolRequestSchema, ErrorCode, ListToolsRequestSchema, McpError, type CallToolResult, type Tool } from '@modelcontextprotocol/sdk/types.js';
import { isAionError, type Principal } from '@aion/extension-api';
import { publicMessage } from '../errors.js';
import type { CallContext, ExecuteResult, Skill } from '../types.js';

/** What the MCP server needs of the skills service. */
export interface McpSkillSource {
  /** Enabled skills `principal` may call. */
  visibleSkills(principal: Principal): Skill[];
  execute(id: string, args: unknown, call: CallContext): Promise<ExecuteResult>;
  /** Skills of online devices `principal` may call, as tools named `<device>.<skill id>`. */
  remoteTools?(principal: Principal): Promise<Array<{ name: string; title: string; description: string; inputSchema: Record<string, unknown>; path: string }>>;
  readonly version: string;
}

export function toMcpTool(skill: Skill): Tool {
  return {
    name: skill.id,
    title: skill.title,
    description: skill.description,
    inputSchema: skill.inputSchema as Tool['inputSchema'],
    ...(skill.outputSchema ? { outputSchema: skill.outputSchema as Tool['outputSchema'] } : {}),
    annotations: { title: skill.title, openWorldHint: skill.permissions.network.length > 0 || skill.runtime === 'mcp' },
    _meta: { 'aion/tags': skill.tags, 'aion/runtime': skill.runtime },
  };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * One MCP server (one per session or stdio connection): `tools/list` gives the enabled skills the
 * caller may call with their input and output schemas; `tools/call` runs one through the
 * gatekeeper and answers `structuredContent` plus the same JSON as text, or `isError` with the
 * stable code and message when the skill fails.
 */
export function createMcpServer(
  source: McpSkillSource,
  principalOf: (authExtra: Record<string, unknown> | undefined) => Principal | undefined,
  via: CallContext['via'],
): Server {
  const server = new Server(
    { name: 'aion-skills', title: 'Aion skills', version: source.version },
    {
      capabilities: { tools: { listChanged: true } },
      instructions: 'Tools are Aion skills: small sandboxed programs with JSON-schema input and output. Errors carry a stable code before the colon.',
    },
  );
  server.setRequestHandler(ListToolsRequestSchema, async (_request, extra) => {
    const principal = principalOf(extra.authInfo?.extra);
    if (!principal) return { tools: [] };
    const devices = (await source.remoteTools?.(principal)) ?? [];
    const onDevices: Tool[] = devices.map((t) => ({
      name: t.name,
      title: t.title,
      description: t.description,
      inputSchema: t.inputSchema as Tool['inputSchema'],
      annotations: { title: t.title, openWorldHint: true },
      _meta: { 'aion/device': t.path },
    }));
    return { tools: [...source.visibleSkills(principal).map(toMcpTool), ...onDevices] };
  });
  server.setRequestHandler(CallToolRequestSchema, async (request, extra): Promise<CallToolResult> => {
    const principal = principalOf(extra.authInfo?.extra);
    try {
      const { result } = await source.execute(request.params.name, request.params.arguments ?? {}, {
        principal,
        via,
        signal: extra.signal,
        requestId: String(extra.requestId),
      });
      return { content: [{ type: 'text', text: JSON.stringify(result) }], ...(isPlainObject(result) ? { structuredContent: result } : {}) };
    } catch (err) {
      const code = isAionError(err) ? err.code : 'SKILL_FAILED';
      const message = publicMessage(err instanceof Error ? err.message : String(err));
      if (code === 'SKILL_NOT_FOUND') throw new McpError(ErrorCode.InvalidParams, message);
      const details = isAionError(err) ? err.details : undefined;
      return {
        content: [{ type: 'text', text: `${code}: ${message}` }],
        isError: true,
        _meta: { 'aion/error': { code, message, ...(details !== undefined ? { details } : {}) } },
      };
    }
  });
  return server;
}
