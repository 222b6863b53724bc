import * as aion from '@aion/extension-api';
import { AsyncResource } from 'node:async_hooks';
import { AionError, CancellationTokenSource, ErrorCodes, type CancellationToken, type HttpRequestData, type Principal } from '@aion/extension-api';
import type { SessionsApi } from '@aion/ext-sessions';
import type { SkillsApi, SkillSummary } from '@aion/ext-skills';
import type { StorageApi } from '@aion/ext-storage';
import { PROVIDERS_CHANGED_EVENT, type ModelInfo, type ProviderContribution, type ProviderEvent, type ProviderImplementation } from '@aion/provider-kit';
import type { DeviceChatEvent } from '@aion/client';
import { HubCluster } from './cluster.js';
import { validateConfiguration, type DevicesConfiguration } from './config.js';
import {
  DEVICES_PROVIDER_ID,
  DeviceErrorCodes,
  isDeviceName,
  normalizeDeviceName,
  uniqueDeviceName,
  type ExposedModel,
  type ExposedSkill,
} from './contract.js';
import { DeviceModels } from './deviceModels.js';
import { DeviceStore } from './deviceStore.js';
import { DEFAULT_DEVICE_SCOPES, DEVICE_SCOPES, DeviceTokens } from './deviceTokens.js';
import { DeviceHub, deviceError } from './hub.js';
import { SessionSync } from './sessionSync.js';
import { Spoke } from './spoke.js';

const DEFAULT_TENANT = 'default';

/** aion.sessions when it is installed (it is optional on hub and spoke). */
async function sessionsApi(): Promise<aion.Remote<SessionsApi> | undefined> {
  try {
    return await aion.extensions.getApi<SessionsApi>('aion.sessions');
  } catch {
    return undefined;
  }
}
/** How often a hub looks for devices revoked elsewhere (the CLI, another hub) and drops them. */
const REVOCATION_SWEEP_MS = 2_000;

function principalOf(req: HttpRequestData): Principal {
  if (!req.principal) throw new AionError(ErrorCodes.UNAUTHENTICATED, 'sign in first');
  return req.principal;
}

function matches(patterns: string[], id: string): boolean {
  return patterns.some((p) => p === '*' || p === id || (p.endsWith('.*') && id.startsWith(p.slice(0, -1))));
}

/** A claim of a token read without checking it: the spoke only needs its own name and user from it. */
function tokenClaim(token: string, claim: 'name' | 'user_id'): string {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
    if (typeof payload[claim] === 'string') return payload[claim] as string;
  } catch {
    // Falls through to the error below.
  }
  throw new AionError(DeviceErrorCodes.DEVICE_TOKEN_INVALID, 'the --token is not a device token: copy the one "aion devices add <name>" printed');
}
const tokenName = (token: string) => tokenClaim(token, 'name');
const tokenUser = (token: string) => tokenClaim(token, 'user_id');

export async function activate(ctx: aion.ExtensionContext) {
  const config = validateConfiguration(ctx.configuration.get<DevicesConfiguration>());
  const storage = await aion.extensions.getApi<StorageApi>('aion.storage');
  const store = await DeviceStore.open(storage);
  const tokens = await DeviceTokens.create((await ctx.secrets.get('AION_DEVICE_TOKEN_SECRET')) ?? (await store.signingSecret()));
  const hub = new DeviceHub(config, store, tokens, ctx.logger);
  const redisUrl = config.cluster.redisUrl;
  let cluster: HubCluster | undefined;
  if (redisUrl) {
    // Answers for other hubs must come back before the caller's own deadline would have passed.
    cluster = await HubCluster.connect({
      url: redisUrl,
      prefix: config.cluster.redisPrefix,
      presenceTtlMs: config.cluster.presenceTtlMs,
      requestsTimeoutMs: config.timeouts.remoteSkillMs + 1_000,
      logger: ctx.logger,
    });
    hub.joinCluster(cluster);
    ctx.logger.info(`device presence and routing shared through Redis as hub ${cluster.hubId}`);
  }

  /** Registers a device; the token is in this answer only. */
  async function addDevice(input: { name?: unknown; scopes?: unknown; user?: unknown }, owner: { user_id: string; tenant_id: string }) {
    if (typeof input.name !== 'string' || input.name.trim() === '' || input.name.length > 200)
      throw new AionError(ErrorCodes.VALIDATION_FAILED, 'a device needs a name (up to 200 characters)');
    const wanted = normalizeDeviceName(input.name);
    if (!wanted) throw new AionError(ErrorCodes.VALIDATION_FAILED, `${JSON.stringify(input.name)} has no letters or digits to make a device name of`);
    const scopes =
      input.scopes === undefined
        ? DEFAULT_DEVICE_SCOPES
        : typeof input.scopes === 'string'
          ? input.scopes
              .split(',')
              .map((s) => s.trim())
              .filter(Boolean)
          : input.scopes;
    if (!Array.isArray(scopes) || scopes.some((s) => !(DEVICE_SCOPES as readonly string[]).includes(s))) {
      throw new AionError(ErrorCodes.VALIDATION_FAILED, `a device may hold only ${DEVICE_SCOPES.join(', ')}`, { details: { allowed: DEVICE_SCOPES } });
    }
    const taken = await store.liveNames(owner.tenant_id);
    const name = uniqueDeviceName(wanted, (n) => taken.has(n));
    const row = await store.create({
      tenant_id: owner.tenant_id,
      user_id: owner.user_id,
      name,
      display_name: input.name.trim(),
      scopes: [...new Set(scopes as string[])],
    });
    const token = await tokens.issue({ sub: row.id, name, user_id: row.user_id, tenant_id: row.tenant_id, scopes: row.scopes, jti: row.token_id });
    ctx.logger.info(`device ${name} added for user ${row.user_id}`);
    return { device: hub.status(row), token, ...(name !== wanted ? { renamed_from: wanted } : {}) };
  }

  async function revokeDevice(tenant: string, rawName: string, principal?: Principal): Promise<void> {
    const name = normalizeDeviceName(rawName);
    const row = isDeviceName(name) ? await store.findLive(tenant, name) : undefined;
    if (!row || (principal && !hub.mayUse(principal, row.user_id))) throw deviceError(DeviceErrorCodes.DEVICE_NOT_FOUND, `no device ${rawName}`);
    await store.revoke(row.id);
    hub.disconnect(tenant, name, `device ${name} was revoked`);
  }

  // Revocations made by the CLI or another hub reach this one's connections within the sweep interval.
  let sweptAt = Date.now() - REVOCATION_SWEEP_MS;
  const sweep = setInterval(() => {
    if (hub.connections().length === 0) return;
    // A little overlap, so a revocation committed while the last sweep ran is not missed.
    const since = sweptAt - REVOCATION_SWEEP_MS;
    sweptAt = Date.now();
    void store
      .revokedSince(since)
      .then((ids) => {
        const revoked = new Set(ids);
        for (const c of hub.connections())
          if (revoked.has(c.claims.sub)) c.close(deviceError(DeviceErrorCodes.DEVICE_UNAVAILABLE, `device ${c.name} was revoked`));
      })
      .catch(() => undefined);
  }, REVOCATION_SWEEP_MS);
  sweep.unref();

  // The devices' models, for the router as the `devices` provider (where a router is installed to use them).
  const models = new DeviceModels(hub, config);
  hub.onModelsChanged = () => aion.events.emit(PROVIDERS_CHANGED_EVENT, { id: DEVICES_PROVIDER_ID });
  if (cluster) {
    // Another hub's device came or went with models: the router here lists them again. Bound to this
    // extension's context, since the cluster's messages arrive outside it.
    cluster.onModelsChanged(AsyncResource.bind(() => hub.onModelsChanged?.()));
    // Answers other hubs ask of devices connected here.
    cluster.serveChats((call, cancel) => {
      const source = new CancellationTokenSource();
      cancel.onCancel(() => source.cancel());
      return models.serveForwarded(call, source.token);
    });
  }
  const routerInstalled = (await aion.contributions.list('providers').catch(() => [])).some(
    ({ extensionId, entry }) => extensionId === ctx.extension.id && entry.id === DEVICES_PROVIDER_ID,
  );
  if (routerInstalled) {
    // A plain object, so only the provider methods are reachable over RPC.
    const implementation: Pick<ProviderImplementation, 'chat' | 'listModels'> = {
      chat: (request, token) => models.chat(request, token),
      listModels: () => models.listModels(),
    };
    ctx.subscriptions.push(aion.contributions.register('providers', DEVICES_PROVIDER_ID, implementation));
  }

  let spoke: Spoke | undefined;
  let sessions: Promise<aion.Remote<SessionsApi> | undefined> | undefined;
  hub.syncSessions = async (owner, body) => {
    const api = await (sessions ??= sessionsApi());
    if (!api) throw new AionError(ErrorCodes.NOT_IMPLEMENTED, 'this hub has no aion.sessions to sync with');
    return api.syncFor(owner, body);
  };

  ctx.subscriptions.push(
    aion.http.handle('GET /v1/devices/connect', (req) => hub.connect(req)),
    // GET and DELETE /v1/devices are aion.auth's (device credentials); the hub's spokes join its answers.
    aion.hooks.tap('auth.devices.list', async (payload: { principal: Principal; devices: unknown[] }) => ({
      ...payload,
      devices: [...payload.devices, ...(await hub.list(payload.principal)).map((d) => ({ kind: 'spoke', ...d }))],
    })),
    aion.hooks.tap('auth.devices.revoke', async ({ principal, id }: { principal: Principal; id: string }) => {
      const name = normalizeDeviceName(id);
      const row = isDeviceName(name) ? await store.findLive(principal.tenant_id, name) : undefined;
      if (!row || !hub.mayUse(principal, row.user_id)) return undefined;
      await revokeDevice(principal.tenant_id, name, principal);
      return true;
    }),
    aion.http.handle('GET /v1/hub/devices', async (req) => ({ body: { devices: await hub.list(principalOf(req)) } })),
    aion.http.handle('POST /v1/hub/devices', async (req) => {
      const p = principalOf(req);
      if (p.type !== 'user') throw new AionError(ErrorCodes.FORBIDDEN, 'only a signed-in user registers devices');
      return { status: 201, body: await addDevice((req.body ?? {}) as Record<string, unknown>, { user_id: String(p.owner ?? p.sub), tenant_id: p.tenant_id }) };
    }),
    aion.http.handle('DELETE /v1/hub/devices/:name', async (req) => {
      const p = principalOf(req);
      await revokeDevice(p.tenant_id, req.params.name!, p);
      return { status: 204 };
    }),
    aion.http.handle('GET /v1/hub/skills', async (req) => {
      const q = typeof req.query.q === 'string' ? req.query.q : undefined;
      const skills = await hub.skills(principalOf(req), q);
      return { body: { skills, total: skills.length } };
    }),
    aion.http.handle('POST /v1/skills/:device/:skill/execute', async (req) => {
      const body = req.body;
      if (body !== undefined && (typeof body !== 'object' || body === null || Array.isArray(body)))
        throw new AionError(ErrorCodes.BAD_REQUEST, 'the body must be a JSON object: { "args": { ... } }');
      const { result, durationMs, device } = await hub.execute(
        req.params.device!,
        req.params.skill!,
        (body as { args?: unknown } | undefined)?.args,
        principalOf(req),
        { requestId: req.requestId },
      );
      return { body: { result, device, duration_ms: Math.round(durationMs * 1000) / 1000 } };
    }),
    aion.commands.register('devices.add', (options: { name?: string; scopes?: string; user?: string; tenant?: string } = {}) =>
      addDevice(options, { user_id: options.user ?? 'operator', tenant_id: options.tenant ?? DEFAULT_TENANT }),
    ),
    aion.commands.register('devices.list', async (options: { tenant?: string } = {}) =>
      (await store.list(options.tenant ?? DEFAULT_TENANT)).map((row) => hub.status(row)),
    ),
    aion.commands.register('devices.revoke', async (options: { name?: string; tenant?: string } = {}) => {
      if (!options.name) throw new AionError(ErrorCodes.VALIDATION_FAILED, 'name the device to revoke: aion devices revoke <name>');
      await revokeDevice(options.tenant ?? DEFAULT_TENANT, options.name);
      return `device ${normalizeDeviceName(options.name)} revoked`;
    }),
    aion.commands.register(
      'devices.ping',
      (options: { name?: string; count?: string | number; skill?: string; args?: unknown; tenant?: string } = {}, token?: CancellationToken) => {
        if (!options.name) throw new AionError(ErrorCodes.VALIDATION_FAILED, 'name the device to ping: aion devices ping <name>');
        let args = options.args;
        if (typeof args === 'string') {
          try {
            args = JSON.parse(args);
          } catch {
            throw new AionError(ErrorCodes.VALIDATION_FAILED, `--args must be JSON, e.g. --args '{"text":"hi"}'`);
          }
        }
        // The operator's own call: every device of the tenant, every scope, through the same checks as anyone's.
        const operator: Principal = { sub: 'operator', type: 'user', scopes: ['*'], tenant_id: options.tenant ?? DEFAULT_TENANT };
        const count = options.count === undefined ? undefined : Number(options.count);
        return hub.ping(normalizeDeviceName(options.name), operator, { count, skill: options.skill, args, token });
      },
    ),
    aion.commands.register('devices.spoke', async (options: { hub?: string; token?: string } = {}) => {
      if (!options.hub || !options.token) throw new AionError(ErrorCodes.VALIDATION_FAILED, 'aion spoke needs --hub <url> and --token <device token>');
      spoke?.stop();
      spoke = startSpoke(options.hub, options.token);
      spoke.start();
      // Serves until the process is told to stop; offline the local kernel keeps serving its own user.
      await aion.untilStopSignal();
      spoke.stop();
      return undefined;
    }),
    { dispose: () => clearInterval(sweep) },
    { dispose: () => hub.closeAll() },
    { dispose: () => cluster?.close() },
    { dispose: () => spoke?.stop() },
  );

  /** Syncs the spoke's sessions with the hub on every connect and every `sync.intervalMs` while online. */
  function startSessionSync(s: Spoke, tokenUserId: string): void {
    const owner = { tenant_id: DEFAULT_TENANT, user_id: config.sync.localUser ?? tokenUserId };
    const key = 'sessionSync.cursors';
    const sync = new SessionSync({
      local: async (body) => {
        const api = await (sessions ??= sessionsApi());
        if (!api) throw new AionError(ErrorCodes.NOT_IMPLEMENTED, 'this spoke has no aion.sessions to sync');
        return api.syncFor(owner, body);
      },
      hub: (body) => s.syncSessions(body),
      cursors: {
        get: async () => (await ctx.state.get<{ local: number; hub: number }>(key)) ?? { local: 0, hub: 0 },
        set: (cursors) => ctx.state.update(key, cursors),
      },
      logger: ctx.logger,
    });
    const runSync = () => {
      if (!s.isOnline) return;
      sync.run().then(
        (r) => (r.pushed || r.pulled) && ctx.logger.info(`sessions synced with the hub: ${r.pushed} pushed, ${r.pulled} applied here`),
        (err) => ctx.logger.warn(`sessions sync with the hub failed (retried): ${(err as Error).message}`),
      );
    };
    s.onState((state) => state === 'online' && runSync());
    const timer = setInterval(runSync, config.sync.intervalMs);
    timer.unref();
    ctx.subscriptions.push({ dispose: () => clearInterval(timer) });
  }

  function startSpoke(hubUrl: string, token: string): Spoke {
    let skillsApi: Promise<aion.Remote<SkillsApi>> | undefined;
    const skills = () => (skillsApi ??= aion.extensions.getApi<SkillsApi>('aion.skills'));
    // A skill an extension contributes leaves the device only when that extension's manifest exposes it
    // (`aion.expose`); a pack's, when the operator's expose.skills names it. Both pass expose.skills.
    const mayExpose = (s: Pick<SkillSummary, 'id' | 'source'>) =>
      matches(config.expose.skills, s.id) && (s.source.kind !== 'extension' || s.source.exposed === true);
    // What the hub was last told it may call: a call for anything else is refused without asking aion.skills.
    let announced = new Set<string>();
    const exposed = async (): Promise<ExposedSkill[]> => {
      const api = await skills();
      const listed = (await api.search({})).filter((s) => s.enabled && mayExpose(s));
      announced = new Set(listed.map((s) => s.id));
      const described = await Promise.all(listed.map((s) => api.describe(s.id)));
      return described.map((d) => ({
        id: d.id,
        title: d.title,
        description: d.description,
        tags: d.tags ?? [],
        inputSchema: d.inputSchema,
        ...(d.outputSchema ? { outputSchema: d.outputSchema } : {}),
        ...(d.scope ? { scope: d.scope } : {}),
      }));
    };
    // Models leave the device only where the provider's manifest exposes them (`aion.expose.models`)
    // and the operator's expose.models names the provider; the token must hold models:expose too.
    let offered = new Map<string, string>();
    const exposedModels = async (): Promise<ExposedModel[]> => {
      offered = new Map();
      if (config.expose.models.length === 0) return [];
      const out: ExposedModel[] = [];
      for (const { entry, expose } of await aion.contributions.list('providers').catch(() => [])) {
        const provider = entry as unknown as ProviderContribution;
        if (!expose?.models || !matches(config.expose.models, provider.id) || provider.id === DEVICES_PROVIDER_ID) continue;
        let listed: ModelInfo[];
        try {
          const impl = await aion.contributions.get<ProviderImplementation>('providers', provider.id);
          listed = (await impl.listModels(new CancellationTokenSource().token)) as ModelInfo[];
        } catch (err) {
          ctx.logger.warn(`spoke: the models of ${provider.id} could not be listed, so none are offered: ${(err as Error).message}`);
          continue;
        }
        for (const m of listed) {
          if (expose.models !== true && !expose.models.includes(m.id)) continue;
          if (offered.has(m.id)) {
            ctx.logger.warn(`spoke: ${provider.id} and ${offered.get(m.id)} both have a model ${m.id}; only ${offered.get(m.id)}'s is offered`);
            continue;
          }
          const declared = provider.models.find((d) => d.id === m.id) ?? provider.models.find((d) => !d.embed);
          if (m.embed ?? declared?.embed) continue;
          offered.set(m.id, provider.id);
          out.push({
            id: m.id,
            ...(m.displayName ? { displayName: m.displayName } : {}),
            contextWindow: m.contextWindow ?? declared?.contextWindow,
            capabilities: m.capabilities ?? declared?.capabilities,
            tools: m.tools ?? declared?.tools ?? false,
            streaming: m.streaming ?? declared?.streaming ?? true,
          });
        }
      }
      return out;
    };
    const s = new Spoke({
      hubUrls: hubUrl
        .split(',')
        .map((u) => u.trim())
        .filter(Boolean),
      token,
      device: tokenName(token),
      skills: exposed,
      models: exposedModels,
      chat: async ({ model, request, correlationId }, emit, cancel) => {
        const provider = offered.get(model);
        // Only what this spoke offers, whatever the hub asks.
        if (!provider) return emit({ type: 'error', code: 'PROVIDER_BAD_REQUEST', message: `this device offers no model ${model}`, retryable: false });
        ctx.logger.debug(`answering with ${provider}/${model} for the hub`, { correlationId });
        const impl = await aion.contributions.get<ProviderImplementation>('providers', provider);
        const events = (await impl.chat(
          { ...(request as object), model } as Parameters<ProviderImplementation['chat']>[0],
          cancel,
        )) as AsyncIterable<ProviderEvent>;
        // Awaited: the hub grants the answer's events a window at a time (its backpressure).
        for await (const event of events) await emit(event as unknown as DeviceChatEvent);
      },
      maxFrameBytes: config.maxFrameBytes,
      logger: ctx.logger,
      execute: async ({ skill, args, caller, correlationId }, cancel) => {
        // Only what this spoke exposes, whatever the hub asks.
        if (!announced.has(skill)) throw deviceError(DeviceErrorCodes.DEVICE_NOT_FOUND, `this device does not expose ${skill}`);
        ctx.logger.debug(`running ${skill} for the hub`, { correlationId });
        const principal: Principal = { sub: caller.sub, type: caller.type, tenant_id: caller.tenant_id, owner: caller.owner, scopes: caller.scopes };
        return (await skills()).execute(skill, args, principal, cancel);
      },
    });
    s.onState((state) => ctx.logger.info(`spoke: ${state}`));
    if (config.sync.enabled) startSessionSync(s, tokenUser(token));
    return s;
  }

  // These act for a principal the caller hands in, so only the extensions that verified it may call them.
  const assertTrustedCaller = (what: string) => {
    const caller = aion.extensions.caller();
    if (caller && DEVICE_API_CALLERS.has(caller)) return;
    throw new AionError(
      ErrorCodes.FORBIDDEN,
      `${caller ?? 'this caller'} may not ${what}: only ${[...DEVICE_API_CALLERS].join(', ')} act for users on devices`,
    );
  };

  return {
    /** Skills of online devices the principal may use, grouped by id (for aion.skills' search). */
    remoteSkills: (principal: Principal, q?: string) => {
      assertTrustedCaller('search device skills for a principal');
      return hub.skills(principal, q);
    },
    /** The same skills as tools named `<device>.<skill id>` (for chat and MCP). */
    remoteTools: (principal: Principal) => {
      assertTrustedCaller('list device tools for a principal');
      return hub.tools(principal);
    },
    /** Runs `<device>/<skill id>`, or a bare skill id on the most recently seen device that has it. */
    executeRemote: (target: string, args: unknown, principal: Principal, options?: { requestId?: string }) => {
      assertTrustedCaller('run device skills for a principal');
      return hub.executeAnywhere(target, args, principal, options ?? {});
    },
    /** Online devices, for other extensions (chat tools, MCP). */
    onlineDevices: () =>
      hub.connections().map((c) => ({ name: c.name, tenant_id: c.claims.tenant_id, user_id: c.claims.user_id, skills: [...c.skills.keys()] })),
    spokeState: () => spoke?.state ?? 'stopped',
  };
}

export function deactivate() {}

/** Extensions that reach devices for a user: aion.skills (search, execute, MCP and the router's tools go through it). */
const DEVICE_API_CALLERS = new Set(['aion.skills']);
