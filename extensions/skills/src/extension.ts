import * as aion from '@aion/extension-api';
import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import type { SkillsApi, ToolCallOptions, ToolFilter } from './api.js';
import { cliCommands } from './cli.js';
import { resolveConfig } from './config.js';
import type { McpHttpEndpoint, SharedSession, SharedSessions } from './mcp/http.js';
import type { JsSkillImplementation } from './runtimes.js';
import { RemoteSkills } from './remoteSkills.js';
import { SkillsService } from './service.js';
import { LOCAL_PRINCIPAL, type JsonSchema } from './types.js';

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function all(value: string | string[] | undefined): string[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

function signalOf(token: aion.CancellationToken | undefined): AbortSignal | undefined {
  if (!token || !aion.isCancellationToken(token)) return undefined;
  const controller = new AbortController();
  if (token.isCancellationRequested) controller.abort();
  else token.onCancellationRequested(() => controller.abort());
  return controller.signal;
}

/** The part of aion.accelerators' API the gatekeeper uses (its types stay in that extension). */
interface AcceleratorFinder {
  find(requirement: { vendor?: string; memoryMiB?: number }): Promise<{ vendor: string; index: number; uuid?: string }>;
}

export async function activate(ctx: aion.ExtensionContext): Promise<aion.Remote<SkillsApi> | object> {
  const config = resolveConfig(ctx.configuration.get<Record<string, unknown>>() ?? {}, ctx.storagePath);
  const pointSchema = ctx.extension.manifest.contributes?.contributionPoints?.skills?.schema as JsonSchema;
  const jsSkills = new Map<string, Promise<JsSkillImplementation>>();
  const service = await SkillsService.start({
    logger: ctx.logger,
    config,
    pointSchema,
    version: ctx.extension.version,
    secret: (name) => ctx.secrets.get(name),
    resolveJsSkill: (id) => {
      let impl = jsSkills.get(id);
      if (!impl) {
        impl = aion.contributions.get<JsSkillImplementation>('skills', id) as Promise<JsSkillImplementation>;
        impl.catch(() => jsSkills.delete(id));
        jsSkills.set(id, impl);
      }
      return impl;
    },
    listContributed: () => aion.contributions.list('skills'),
    state: ctx.state,
    storagePath: ctx.storagePath,
    findAccelerator: async (requirement) => (await aion.extensions.getApi<AcceleratorFinder>('aion.accelerators')).find(requirement),
  });
  ctx.subscriptions.push({ dispose: () => service.dispose() });

  const remote = new RemoteSkills();
  /** The hub's skill first; an id it does not have goes to the most recently seen online device that has it. */
  const executeAnywhere = async (
    id: string,
    args: unknown,
    call: Parameters<SkillsService['execute']>[2],
  ): Promise<{ result: unknown; durationMs: number; device?: string }> => {
    try {
      return await service.execute(id, args, call);
    } catch (err) {
      if (!aion.isAionError(err) || err.code !== 'SKILL_NOT_FOUND') throw err;
      const answer = await remote.execute(id, args, call.principal, { requestId: call.requestId }).catch((e: unknown) => {
        throw aion.isAionError(e) && e.code === 'DEVICE_NOT_FOUND' ? err : e;
      });
      if (!answer) throw err;
      return answer;
    }
  };

  // The MCP server side (the SDK and its schemas) loads on the first /mcp request or `aion mcp`.
  const principalOf = (extra: Record<string, unknown> | undefined) => extra?.principal as aion.Principal | undefined;
  const mcpSource = {
    get version() {
      return service.version;
    },
    visibleSkills: (principal: aion.Principal) => service.visibleSkills(principal),
    execute: executeAnywhere,
    remoteTools: (principal: aion.Principal) => remote.mcpTools(principal),
  };
  let mcp: Promise<{ http: McpHttpEndpoint; server: typeof import('./mcp/server.js'); stdio: typeof import('./mcp/stdio.js') }> | undefined;
  const loadMcp = () =>
    (mcp ??= Promise.all([import('./mcp/http.js'), import('./mcp/server.js'), import('./mcp/stdio.js'), sharedMcpSessions(ctx.state)]).then(
      ([http, server, stdio, shared]) => ({
        http: new http.McpHttpEndpoint(() => server.createMcpServer(mcpSource, principalOf, 'mcp'), config.mcp, shared),
        server,
        stdio,
      }),
    ));
  const mcpHttp = (req: aion.HttpRequestData) => loadMcp().then((m) => m.http.handle(req));
  const stdioServers = new Set<Server>();
  ctx.subscriptions.push({ dispose: async () => mcp && (await mcp).http.close() });
  ctx.subscriptions.push(
    service.onDidChange(() => {
      jsSkills.clear();
      if (mcp) void mcp.then((m) => m.http.notifyToolsChanged());
      for (const server of stdioServers) void server.sendToolListChanged().catch(() => undefined);
    }),
  );

  const limited = (value: string | undefined, fallback: number, max: number) => {
    const n = value === undefined ? fallback : Number(value);
    if (!Number.isInteger(n) || n < 0) throw new aion.AionError('BAD_REQUEST', 'limit and offset must be non-negative integers');
    return Math.min(n, max);
  };

  ctx.subscriptions.push(
    aion.http.handle('GET /v1/skills', async (req) => {
      const query = { q: first(req.query.q), tags: all(req.query.tag) };
      const hits = await remote.mergeSearch(service.search({ ...query, principal: req.principal }), req.principal, query);
      const offset = limited(first(req.query.offset), 0, Number.MAX_SAFE_INTEGER);
      const limit = limited(first(req.query.limit), 50, 500);
      return { body: { skills: hits.slice(offset, offset + limit), total: hits.length } };
    }),
    aion.http.handle('GET /v1/skills/:id', (req) => ({ body: service.describe(req.params.id!, req.principal) })),
    aion.http.handle('POST /v1/skills/:id/execute', async (req, token) => {
      const body = req.body;
      if (body !== undefined && (typeof body !== 'object' || body === null || Array.isArray(body)))
        throw new aion.AionError('BAD_REQUEST', 'the body must be a JSON object: { "args": { ... } }');
      const { result, durationMs, device } = await executeAnywhere(req.params.id!, (body as { args?: unknown } | undefined)?.args, {
        principal: req.principal,
        via: 'http',
        requestId: req.requestId,
        signal: signalOf(token),
      });
      return { body: { result, duration_ms: Math.round(durationMs * 1000) / 1000, ...(device ? { device } : {}) } };
    }),
    aion.http.handle('POST /v1/skills/:id/enable', async (req) => ({ body: await service.setEnabled(req.params.id!, true) })),
    aion.http.handle('POST /v1/skills/:id/disable', async (req) => ({ body: await service.setEnabled(req.params.id!, false) })),
    aion.http.handle('GET /v1/skill-packs', async () => ({ body: { ...(await service.listPacks()), mcpServers: service.mcpClients.status() } })),
    aion.http.handle('GET /v1/skill-usage', (req) => ({
      body: { usage: service.usage.list({ skill: first(req.query.skill), caller: first(req.query.caller) }) },
    })),
    aion.http.handle('POST /mcp', mcpHttp),
    aion.http.handle('GET /mcp', mcpHttp),
    aion.http.handle('DELETE /mcp', mcpHttp),
  );

  const cli = cliCommands(() => service);
  ctx.subscriptions.push(
    aion.commands.register('skills.install', (o: Parameters<typeof cli.install>[0]) => cli.install(o)),
    aion.commands.register('skills.remove', (o: Parameters<typeof cli.remove>[0]) => cli.remove(o)),
    aion.commands.register('skills.list', (o: Parameters<typeof cli.list>[0]) => cli.list(o ?? {})),
    aion.commands.register('skills.run', (o: Parameters<typeof cli.run>[0]) => cli.run(o)),
    aion.commands.register('skills.sign', (o: Parameters<typeof cli.sign>[0]) => cli.sign(o)),
    aion.commands.register('skills.keys.generate', (o: Parameters<typeof cli.keysGenerate>[0]) => cli.keysGenerate(o ?? {})),
    aion.commands.register('skills.mcp', async (_options: unknown, lines: AsyncIterable<string>) => {
      const m = await loadMcp();
      const transport = new m.stdio.LineTransport(lines);
      const server = m.server.createMcpServer(mcpSource, () => LOCAL_PRINCIPAL, 'stdio');
      stdioServers.add(server);
      server.onclose = () => stdioServers.delete(server);
      await server.connect(transport);
      return transport.output;
    }),
  );

  // Extensions that act for a principal (the router's tool loop) must be trusted in `apiCallers`.
  const assertTrustedCaller = (what: string) => {
    const caller = aion.extensions.caller();
    if (config.apiCallers.includes('*') || (caller && config.apiCallers.includes(caller))) return caller;
    throw new aion.AionError('FORBIDDEN', `${caller ?? 'this caller'} may not ${what}: add it to extensions["aion.skills"].apiCallers`);
  };

  const api = {
    listTools: async (filter: ToolFilter | undefined) => {
      const f = filter ?? {};
      const local = service.listTools(f);
      const limit = f.limit ?? 128;
      if (local.length >= limit || !f.principal) return local;
      // Online devices' skills follow the hub's own, for the signed-in caller they belong to.
      const needle = f.q?.toLowerCase();
      const extra = (await remote.tools(f.principal))
        .filter((o) => RemoteSkills.admits(f.skills, o, o.tool.function.name))
        .filter((o) => !needle || `${o.tool.function.name} ${o.tool.function.description}`.toLowerCase().includes(needle))
        .map((o) => o.tool);
      return [...local, ...extra].slice(0, limit);
    },
    executeTool: async (
      name: string,
      args: unknown,
      principal: aion.Principal,
      options: ToolCallOptions | undefined,
      token: aion.CancellationToken | undefined,
    ) => {
      const extension = assertTrustedCaller('run tools for a principal');
      const local = await service.executeTool(name, args, principal, { ...options, extension, signal: signalOf(token) });
      if (local.ok || local.error?.code !== 'SKILL_NOT_FOUND') return local;
      const path = (await remote.tools(principal)).find((o) => o.tool.function.name === name)?.path;
      return path ? remote.executeTool(name, path, args, principal, { requestId: options?.requestId }) : local;
    },
    search: (query: { q?: string; tags?: string[]; principal?: aion.Principal } | undefined) => service.search(query ?? {}),
    describe: (id: string) => service.describe(id),
    execute: (id: string, args: unknown, principal: aion.Principal, token: aion.CancellationToken | undefined) => {
      const extension = assertTrustedCaller('run skills for a principal');
      return executeAnywhere(id, args, { principal, via: 'api', extension, signal: signalOf(token) });
    },
    listPacks: () => service.listPacks(),
    installPack: (path: string, options: { allowUnsigned?: boolean } | undefined) => {
      assertTrustedCaller('install packs');
      return service.installPack(path, options ?? {});
    },
    removePack: (name: string) => {
      assertTrustedCaller('remove packs');
      return service.removePack(name);
    },
    usage: (filter: { skill?: string; caller?: string } | undefined) => service.usage.list(filter ?? {}),
  };
  return api;
}

export function deactivate(): void {}

/**
 * MCP sessions kept in `ctx.state` (aion.storage), so every kernel on the same database goes on with a
 * session another opened; without aion.storage each kernel keeps its own.
 */
async function sharedMcpSessions(state: aion.Memento): Promise<SharedSessions | undefined> {
  const key = (id: string) => `mcp-session:${id}`;
  try {
    await state.get(key('probe'));
  } catch (err) {
    if (aion.isAionError(err) && err.code === aion.ErrorCodes.EXTENSION_NOT_FOUND) return undefined;
    throw err;
  }
  return {
    get: (id) => state.get<SharedSession>(key(id)),
    put: (id, session) => state.update(key(id), session),
    delete: (id) => state.update(key(id), undefined),
  };
}
