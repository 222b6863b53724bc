import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import type { SkillCatalog } from '../catalog.js';
import { skillError } from '../errors.js';
import { toolOutput, type RunContext, type SkillRunner } from '../runtimes.js';
import type { Skill, SkillLimits } from '../types.js';

export interface McpServerConfig {
  command?: string;
  args?: string[];
  env?: Record<string, string>;
  /** Environment variable → secret name. */
  secretEnv?: Record<string, string>;
  cwd?: string;
  url?: string;
  headers?: Record<string, string>;
  /** Header → secret name. */
  secretHeaders?: Record<string, string>;
  enabled?: boolean;
  timeoutMs?: number;
  scope?: string;
  tags?: string[];
}

export interface McpServerStatus {
  server: string;
  transport: 'stdio' | 'http';
  state: 'connecting' | 'ready' | 'failed' | 'closed';
  tools: number;
  error?: string;
}

interface Connection {
  name: string;
  config: McpServerConfig;
  client?: Client;
  state: McpServerStatus['state'];
  error?: string;
  attempts: number;
  retry?: NodeJS.Timeout;
}

export interface McpClientDeps {
  catalog: SkillCatalog;
  secret: (name: string) => Promise<string | undefined>;
  limits: SkillLimits;
  version: string;
  log: {
    info(m: string, d?: Record<string, unknown>): void;
    warn(m: string, d?: Record<string, unknown>): void;
    debug(m: string, d?: Record<string, unknown>): void;
  };
}

// The SDK's client side is loaded only when an MCP server is configured.
let sdk:
  | Promise<{
      client: typeof import('@modelcontextprotocol/sdk/client/index.js');
      stdio: typeof import('@modelcontextprotocol/sdk/client/stdio.js');
      http: typeof import('@modelcontextprotocol/sdk/client/streamableHttp.js');
      types: typeof import('@modelcontextprotocol/sdk/types.js');
    }>
  | undefined;
function loadSdk() {
  sdk ??= Promise.all([
    import('@modelcontextprotocol/sdk/client/index.js'),
    import('@modelcontextprotocol/sdk/client/stdio.js'),
    import('@modelcontextprotocol/sdk/client/streamableHttp.js'),
    import('@modelcontextprotocol/sdk/types.js'),
  ]).then(([client, stdio, http, types]) => ({ client, stdio, http, types }));
  return sdk;
}

/** `mcp.<server>.<tool>`, with characters a skill id may not hold replaced. */
export function mcpSkillId(server: string, tool: string): string {
  return `mcp.${server}.${tool.replace(/[^A-Za-z0-9_.-]/g, '_')}`.slice(0, 128);
}

/**
 * Connects to the MCP servers an operator configured (a stdio command or an HTTP URL) and keeps
 * their tools in the catalog as skills `mcp.<server>.<tool>`, behind the same gatekeeper as every
 * other skill. A server that drops is retried with backoff; its tools leave the catalog meanwhile.
 */
export class McpClients implements SkillRunner {
  private readonly connections = new Map<string, Connection>();
  private closed = false;

  constructor(
    configs: Record<string, McpServerConfig>,
    private readonly deps: McpClientDeps,
  ) {
    for (const [name, config] of Object.entries(configs)) {
      if (config.enabled === false) continue;
      this.connections.set(name, { name, config, state: 'connecting', attempts: 0 });
    }
  }

  /** Connects every server in the background. */
  start(): void {
    for (const c of this.connections.values()) void this.connect(c);
  }

  /** Resolves once every server has connected or failed its first attempt (for tests and the CLI). */
  async settled(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && [...this.connections.values()].some((c) => c.state === 'connecting' && c.attempts === 0))
      await new Promise((r) => setTimeout(r, 25));
  }

  status(): McpServerStatus[] {
    return [...this.connections.values()].map((c) => ({
      server: c.name,
      transport: c.config.url ? 'http' : 'stdio',
      state: c.state,
      tools: this.deps.catalog.sourceSkills(`mcp:${c.name}`).length,
      ...(c.error ? { error: c.error } : {}),
    }));
  }

  async run(skill: Skill, args: unknown, context: RunContext): Promise<unknown> {
    if (skill.source.kind !== 'mcp') throw skillError('INTERNAL', `${skill.id} is not an MCP tool.`);
    const connection = this.connections.get(skill.source.server);
    if (!connection?.client || connection.state !== 'ready')
      throw skillError('SKILL_UNAVAILABLE', `The MCP server ${skill.source.server} is not connected${connection?.error ? `: ${connection.error}` : ''}.`);
    try {
      const result = await connection.client.callTool({ name: skill.source.tool, arguments: args as Record<string, unknown> }, undefined, {
        signal: context.signal,
        timeout: skill.limits.timeout_ms,
      });
      return toolOutput(result.content as never, result.structuredContent, result.isError === true, skill.id);
    } catch (err) {
      const { types } = await loadSdk();
      if (err instanceof types.McpError && err.code === types.ErrorCode.RequestTimeout)
        throw skillError('TIMEOUT', `The MCP server ${skill.source.server} did not answer within ${skill.limits.timeout_ms} ms.`);
      throw err;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(
      [...this.connections.values()].map(async (c) => {
        clearTimeout(c.retry);
        c.state = 'closed';
        await c.client?.close().catch(() => undefined);
      }),
    );
  }

  private async connect(c: Connection): Promise<void> {
    if (this.closed) return;
    c.state = 'connecting';
    const { client: clientModule, types } = await loadSdk();
    const client = new clientModule.Client({ name: 'aion-skills', version: this.deps.version }, { capabilities: {} });
    try {
      const transport = await this.transportFor(c);
      client.onclose = () => {
        if (this.closed || c.client !== client) return;
        c.client = undefined;
        this.lost(c, 'the connection closed');
      };
      client.setNotificationHandler(
        types.ToolListChangedNotificationSchema,
        () => void this.refresh(c).catch((err) => this.deps.log.warn(`MCP server ${c.name}: listing tools failed`, { error: String(err) })),
      );
      await client.connect(transport, { timeout: c.config.timeoutMs ?? 60_000 });
      c.client = client;
      c.attempts++;
      await this.refresh(c);
      c.state = 'ready';
      c.error = undefined;
      this.deps.log.info(`MCP server ${c.name} connected`, { server: c.name, tools: this.deps.catalog.sourceSkills(`mcp:${c.name}`).length });
    } catch (err) {
      c.attempts++;
      await client.close().catch(() => undefined);
      if (c.client === client) c.client = undefined;
      this.lost(c, (err as Error).message);
    }
  }

  private lost(c: Connection, reason: string): void {
    if (this.closed) return;
    c.state = 'failed';
    c.error = reason;
    this.deps.catalog.removeSource(`mcp:${c.name}`);
    const delay = Math.min(60_000, 1000 * 2 ** Math.min(6, c.attempts - 1));
    this.deps.log.warn(`MCP server ${c.name} is unavailable (${reason}); retrying in ${Math.round(delay / 1000)} s`, { server: c.name });
    clearTimeout(c.retry);
    c.retry = setTimeout(() => void this.connect(c), delay);
    c.retry.unref();
  }

  private async transportFor(c: Connection) {
    const { config } = c;
    const secrets = async (map: Record<string, string> | undefined) => {
      const out: Record<string, string> = {};
      for (const [key, secretName] of Object.entries(map ?? {})) {
        const value = await this.deps.secret(secretName);
        if (value === undefined) throw new Error(`the secret ${secretName} is not set`);
        out[key] = value;
      }
      return out;
    };
    const { http, stdio } = await loadSdk();
    if (config.url) {
      return new http.StreamableHTTPClientTransport(new URL(config.url), {
        requestInit: { headers: { ...config.headers, ...(await secrets(config.secretHeaders)) } },
      });
    }
    if (!config.command) throw new Error('neither command nor url is configured');
    const transport = new stdio.StdioClientTransport({
      command: config.command,
      args: config.args ?? [],
      env: { ...stdio.getDefaultEnvironment(), ...config.env, ...(await secrets(config.secretEnv)) },
      ...(config.cwd ? { cwd: config.cwd } : {}),
      stderr: 'pipe',
    });
    let lines = 0;
    transport.stderr?.on('data', (chunk: Buffer) => {
      if (lines++ < 200) this.deps.log.debug(`MCP server ${c.name}: ${chunk.toString().trimEnd()}`, { server: c.name });
    });
    return transport;
  }

  private async refresh(c: Connection): Promise<void> {
    const client = c.client;
    if (!client) return;
    const tools: Tool[] = [];
    let cursor: string | undefined;
    do {
      const page = await client.listTools(cursor ? { cursor } : undefined, { timeout: c.config.timeoutMs ?? 60_000 });
      tools.push(...(page.tools as Tool[]));
      cursor = page.nextCursor;
    } while (cursor && tools.length < 10_000);
    const skills: Skill[] = tools.map((tool) => {
      const title = tool.title ?? tool.annotations?.title ?? tool.name;
      return {
        id: mcpSkillId(c.name, tool.name),
        title,
        description: tool.description || title,
        inputSchema: tool.inputSchema as Record<string, unknown>,
        ...(tool.outputSchema ? { outputSchema: tool.outputSchema as Record<string, unknown> } : {}),
        runtime: 'mcp',
        ...(c.config.scope ? { scope: c.config.scope } : {}),
        permissions: { network: [], secrets: [] },
        limits: { ...this.deps.limits, timeout_ms: c.config.timeoutMs ?? this.deps.limits.timeout_ms },
        tags: [...new Set(['mcp', c.name, ...(c.config.tags ?? [])])],
        source: { kind: 'mcp', server: c.name, tool: tool.name },
      };
    });
    const { refused } = this.deps.catalog.replaceSource(`mcp:${c.name}`, skills, { lenientDialect: true });
    for (const r of refused) this.deps.log.warn(`MCP server ${c.name}: tool ${r.id} left out: ${r.reason}`, { server: c.name });
  }
}
