import * as aion from '@aion/extension-api';
import { AionError, ErrorCodes, type HttpRequestData, type ServerSentEvent } from '@aion/extension-api';
import type { RouterApi } from './api.js';
import { BulkService, MAX_BULK_OPERATIONS } from './bulk/bulk.js';
import { callerOf, requireCaller, type Caller } from './caller.js';
import { ProviderCatalog } from './providers/catalog.js';
import { readConfiguration, type RouterConfiguration } from './config.js';
import { EmbeddingRouter } from './frontDoor/embeddings.js';
import { RouterEngine, type ExecutionResult } from './tasks/engine.js';
import type { TaskEvent } from './tasks/eventLog.js';
import { HealthBook } from './providers/health.js';
import { failoverHeader, validateTaskInput } from './frontDoor/input.js';
import { ConcurrencyLimiter } from './decision/limiter.js';
import { ALIASES, FrontDoor, visibleProviders, type FrontDoorSummary, type ModelViewer } from './frontDoor/openai.js';
import { PolicyStore } from './policies/policy.js';
import { jsonRpcSession } from './frontDoor/rpc.js';
import { SkillTools } from './tools/skillTools.js';
import { RedisTaskRelay } from './tasks/relay.js';
import { openTaskStore } from './tasks/storage.js';
import { TaskService, type TaskSettings } from './tasks/tasks.js';
import { FINAL_STATUSES, type TaskResult, type TaskStore } from './tasks/taskStore.js';
import type { LoopResult } from './tools/toolLoop.js';
import { RouterTelemetry } from './telemetry.js';
import { PROVIDERS_CHANGED_EVENT } from '@aion/provider-kit';

export async function activate(ctx: aion.ExtensionContext): Promise<RouterApi> {
  const config = readConfiguration(ctx.configuration.get<Record<string, unknown>>());
  const log = (level: 'info' | 'warn' | 'error', message: string) => ctx.logger[level](message);

  const policies = new PolicyStore({ file: config.policyFile, inline: config.policies, log });
  await policies.start();
  ctx.subscriptions.push(policies);

  const health = new HealthBook(config.circuitBreaker);
  const catalog = new ProviderCatalog({
    providers: config.providers,
    autoDetect: config.autoDetect,
    providerConcurrency: config.limits.providerConcurrency,
    log,
  });
  ctx.subscriptions.push(
    catalog,
    // A provider whose models come and go (the devices provider) says so; the catalog asks it again.
    aion.events.on(PROVIDERS_CHANGED_EVENT, (change: { id?: unknown }) => typeof change?.id === 'string' && catalog.refresh(change.id)),
  );
  // Probe providers now, so the first request does not wait for them.
  void catalog.load().catch((err) => log('error', `listing providers failed: ${(err as Error).message}`));

  const limiter = new ConcurrencyLimiter();
  const telemetry = new RouterTelemetry(health);
  ctx.subscriptions.push(telemetry);
  const engine = new RouterEngine({
    telemetry,
    catalog,
    policies,
    health,
    limiter,
    weights: () => config.scoring,
    outputTokens: () => config.defaults.outputTokens,
    retryAfterSeconds: () => config.limits.retryAfterSeconds,
  });
  const store = await openTaskStore(log);
  ctx.subscriptions.push({ dispose: () => store.close() });
  const afterTask = (task: TaskResult, caller: Caller, engineId: string | undefined) => {
    void store
      .addUsage(caller.apiKey, engineId ?? 'none', {
        input_tokens: task.usage.tokens.input,
        output_tokens: task.usage.tokens.output,
        cost_usd: task.usage.cost_usd,
        error: task.status !== 'OK',
      })
      .catch((err) => log('warn', `usage of ${caller.apiKey} was not recorded: ${(err as Error).message}`));
    void aion.hooks
      .call('router.afterTask', { task, principal: { sub: caller.sub, tenant_id: caller.tenant, api_key: caller.apiKey } })
      .catch((err) => log('warn', `a router.afterTask tap failed: ${(err as Error).message}`));
  };
  const settings = (): TaskSettings => ({
    defaults: config.defaults,
    limits: config.limits,
    idempotencyTtlMs: config.idempotencyTtlMs,
    eventRetentionMs: config.eventRetentionMs,
    taskRetentionMs: config.taskRetentionMs,
  });
  const skills = new SkillTools(() => config.skills);
  const tasks = new TaskService(engine, store, limiter, skills, settings, (task, caller, result) => afterTask(task, caller, result?.candidate?.engine));
  ctx.subscriptions.push(tasks);
  // Several kernels share task streams and cancels through Redis when one is configured.
  const redisUrl = config.redisUrl;
  if (redisUrl) {
    let relay: RedisTaskRelay;
    try {
      relay = await RedisTaskRelay.connect(redisUrl, config.redisPrefix, log);
    } catch (err) {
      throw new AionError(
        ErrorCodes.CONFIG_INVALID,
        `the router's Redis ${aion.maskUrlPassword(redisUrl)} does not answer (${(err as Error).message}): start it, or remove extensions["aion.router"].redisUrl`,
      );
    }
    tasks.useRelay(relay);
    // A provider one kernel found failing is routed around by all of them.
    health.onTransition((engine, state, openForMs) => relay.publishCircuit(engine, state, openForMs));
    relay.onCircuit((engine, state, openForMs) => health.adopt(engine, state, openForMs));
    // Every kernel routes on the latencies all of them measured: each shares its own every latencyShareMs.
    if (config.latencyShareMs > 0) {
      health.shareSamples();
      relay.onLatency((samples) => health.adoptSamples(samples));
      const share = setInterval(() => {
        const samples = health.takeSamples();
        if (samples) relay.publishLatency(samples);
      }, config.latencyShareMs);
      share.unref();
      ctx.subscriptions.push({ dispose: () => clearInterval(share) });
    }
    ctx.subscriptions.push(relay);
  }
  // Durable tasks: another kernel takes over the tasks of one that stops. Only a shared store can be taken over.
  if (store.kind === 'storage') {
    const self = await aion.cluster.self();
    const members = async () => (await aion.cluster.members())?.map((m) => m.id);
    tasks.useCluster(self.id, members, config.durableTasks.checkIntervalMs, (message) => log('warn', message));
  }
  const bulk = new BulkService(tasks, () => config.eventRetentionMs);
  ctx.subscriptions.push(bulk);
  const frontDoor = new FrontDoor({
    engine,
    catalog,
    skills,
    embeddings: new EmbeddingRouter({ catalog, policies, health, limiter, telemetry }),
    keyLimit: () => ({ limiter, limit: config.limits.keyConcurrency, retryAfterSeconds: config.limits.retryAfterSeconds }),
    defaults: () => config.defaults,
    onFinished: (s, caller) => afterTask(frontDoorTask(s, engine), caller, s.result.candidate?.engine),
  });

  // Each provider the router knows: reachable (configured or detected), or why not; disabled ones are intended.
  ctx.subscriptions.push(
    aion.hooks.tap('health.check', (payload: { checks: Array<Record<string, unknown>> }) => {
      const circuits = health.snapshot();
      for (const p of catalog.providers) {
        if (p.availability === 'disabled') continue;
        const open = Object.entries(circuits)
          .filter(([engine, h]) => engine.startsWith(`${p.id}/`) && h.circuit === 'open')
          .map(([engine]) => engine);
        const reachable = p.availability === 'configured' || p.availability === 'detected';
        // A provider nobody set up is not a fault; one that stopped answering is.
        const status = open.length > 0 ? 'degraded' : reachable || p.availability === 'probing' ? 'ok' : 'unavailable';
        payload.checks.push({
          name: `provider:${p.id}`,
          status,
          detail: `${p.availability}${p.detail ? ` (${p.detail})` : ''}${open.length ? `; circuit open: ${open.join(', ')}` : ''}`,
        });
      }
      return payload;
    }),
  );

  const reload = async () => {
    await policies.reload();
    return { source: policies.source, loaded_at: policies.loadedAt };
  };

  ctx.subscriptions.push(
    aion.http.handle('POST /v1/tasks', async (req, token) => {
      const caller = requireCaller(req.principal);
      const input = validateTaskInput(req.body);
      input.failover ??= failoverHeader(req.headers['x-aion-failover']);
      const submitted = await tasks.submit(input, caller, { idempotencyKey: req.headers['idempotency-key'], body: req.body });
      const waitMs = waitOf(input.wait, req.headers.prefer, config);
      const task = waitMs > 0 ? await tasks.wait(submitted.task.task_id, waitMs, token) : submitted.task;
      const headers: Record<string, string> = { Location: `/v1/tasks/${task.task_id}` };
      const route = tasks.routeHeaderOf(task.task_id);
      if (route) headers['x-aion-route'] = route;
      if (submitted.replayed) headers['Idempotent-Replayed'] = 'true';
      if (task.status === 'ERROR' && task.error?.code === 'SATURATED') {
        headers['Retry-After'] = String(config.limits.retryAfterSeconds);
        return { status: 503, headers, body: task };
      }
      return { status: FINAL_STATUSES.has(task.status) ? 200 : 202, headers, body: task };
    }),
    aion.http.handle('GET /v1/tasks/:id', async (req) => {
      const task = await tasks.get(req.params.id!, requireCaller(req.principal));
      const route = tasks.routeHeaderOf(task.task_id);
      return { headers: route ? { 'x-aion-route': route } : undefined, body: task };
    }),
    aion.http.handle('POST /v1/tasks/:id/cancel', async (req) => ({ body: await tasks.cancel(req.params.id!, requireCaller(req.principal)) })),
    aion.http.handle('GET /v1/stream/:id', async (req) => {
      const afterId = lastEventId(req);
      const events = await tasks.events(req.params.id!, requireCaller(req.principal), afterId);
      return { stream: toSse(events) };
    }),
    aion.http.handle('GET /v1/ws', async (req) => {
      if (!req.messages) throw new AionError(ErrorCodes.BAD_REQUEST, '/v1/ws is a WebSocket endpoint');
      return { stream: jsonRpcSession(req.messages, tasks, requireCaller(req.principal)) };
    }),
    aion.http.handle('POST /v1/bulk', async (req) => {
      const caller = requireCaller(req.principal);
      const view = bulk.start(req.body, caller);
      const run = bulk.get(view.bulk_id, caller);
      const body = req.body as { wait?: boolean; stream?: boolean };
      const headers = { Location: `/v1/bulk/${view.bulk_id}` };
      if (body.stream === true || req.headers.accept === 'text/event-stream') {
        return { headers, stream: toSse(bulk.follow(run), (e) => (e.event === 'partial' ? 'progress' : e.event)) };
      }
      if (body.wait === true) return { status: 200, headers, body: await bulk.wait(run) };
      return { status: 202, headers, body: view };
    }),
    aion.http.handle('GET /v1/bulk/:id', async (req) => {
      const caller = requireCaller(req.principal);
      return { body: bulk.view(bulk.get(req.params.id!, caller)) };
    }),
    aion.http.handle('POST /v1/chat/completions', (req, token) => frontDoor.handle(req, token, requireCaller(req.principal))),
    aion.http.handle('GET /v1/models', async (req) => {
      await catalog.load();
      return { body: frontDoor.models(viewer(req.principal)) };
    }),
    aion.http.handle('GET /v1/models/:id', async (req) => {
      await catalog.load();
      return { body: frontDoor.model(req.params.id!, viewer(req.principal)) };
    }),
    aion.http.handle('GET /v1/models/:provider/:model', async (req) => {
      await catalog.load();
      return { body: frontDoor.model(`${req.params.provider}/${req.params.model}`, viewer(req.principal)) };
    }),
    aion.http.handle('POST /v1/embeddings', (req, token) => frontDoor.embeddings(req, token, requireCaller(req.principal))),
    aion.http.handle('POST /v1/responses', (req, token) => frontDoor.responses(req, token, requireCaller(req.principal))),
    aion.http.handle('GET /v1/capabilities', async (req) => {
      if (req.principal) await catalog.load();
      return { body: capabilities(ctx, catalog, config, store, req.principal) };
    }),
    aion.http.handle('GET /v1/usage', async (req) => {
      const caller = requireCaller(req.principal);
      const asked = typeof req.query.api_key === 'string' ? req.query.api_key : undefined;
      if (asked && asked !== caller.apiKey && !caller.admin)
        throw new AionError(ErrorCodes.FORBIDDEN, "reading another API key's usage requires the router:admin scope");
      const apiKey = asked ?? caller.apiKey;
      return { body: { api_key: apiKey, ...(await store.usage(apiKey)), storage: store.kind } };
    }),
    aion.http.handle('GET /v1/router/policies', async () => ({
      body: {
        source: policies.source,
        loaded_at: policies.loadedAt,
        last_error: policies.lastError ?? null,
        policies: policies.policies,
        health: health.snapshot(),
        in_flight: limiter.snapshot(),
        tasks: tasks.stats,
      },
    })),
    aion.http.handle('POST /v1/router/policies/reload', async () => ({ body: await reload() })),
    aion.commands.register('router.reloadPolicies', reload),
    // For other entry points (gRPC): they pass the user's credentials with commands.executeFor, the kernel verifies them.
    // `idempotencyBody`: what the client sent, when the body was derived from it (a gRPC deadline becomes timeout_ms).
    aion.commands.register(
      'router.tasks.submit',
      async (body: unknown, options: { idempotencyKey?: string; idempotencyBody?: unknown; waitMs?: number } | undefined, token: aion.CancellationToken) => {
        const idempotencyKey = typeof options?.idempotencyKey === 'string' && options.idempotencyKey ? options.idempotencyKey : undefined;
        const submitted = await tasks.submit(validateTaskInput(body), actingUser(), { idempotencyKey, body: options?.idempotencyBody ?? body });
        const waitMs = Math.min(typeof options?.waitMs === 'number' && options.waitMs > 0 ? options.waitMs : 0, config.defaults.maxWaitMs);
        const task = waitMs > 0 ? await tasks.wait(submitted.task.task_id, waitMs, token) : submitted.task;
        return { task, replayed: submitted.replayed };
      },
    ),
    aion.commands.register('router.tasks.get', (taskId: string) => tasks.get(String(taskId), actingUser())),
    aion.commands.register('router.tasks.cancel', (taskId: string) => tasks.cancel(String(taskId), actingUser())),
    aion.commands.register('router.tasks.events', async (taskId: string, afterId: unknown) => {
      const after = afterId === undefined || afterId === null ? 0 : Number(afterId);
      if (!Number.isInteger(after) || after < 0) throw new AionError(ErrorCodes.BAD_REQUEST, 'the last event id must be an event id this task sent');
      return tasks.events(String(taskId), actingUser(), after);
    }),
  );

  const own = (): Caller => {
    const id = aion.extensions.caller();
    const sub = id ? `ext:${id}` : 'kernel';
    return { sub, tenant: 'default', user: sub, apiKey: sub, admin: false };
  };
  return {
    submitTask: async (input) => (await tasks.submit(validateTaskInput(input, 'the task'), own())).task,
    complete: async (input) => {
      const caller = own();
      const { task } = await tasks.submit(validateTaskInput(input, 'the task'), caller);
      return (await tasks.finished(task.task_id)) ?? task;
    },
    getTask: (taskId) => tasks.get(taskId, own()),
    cancelTask: (taskId) => tasks.cancel(taskId, own()),
    taskEvents: (taskId, afterId = 0) => tasks.events(taskId, own(), afterId),
    providers: () => catalog.providers.map((p) => ({ ...p })),
    reloadPolicies: reload,
  };
}

/** The user a `router.tasks.*` command runs for, as the kernel verified it; without one (the CLI) there is nobody to own the task. */
function actingUser(): Caller {
  const principal = aion.commands.principal();
  if (!principal)
    throw new AionError(ErrorCodes.UNAUTHENTICATED, 'router.tasks commands run for a signed-in user: call them with commands.executeFor(credentials, …)');
  return requireCaller(principal);
}

/** `wait: true` waits up to the server's maximum; `Prefer: wait=N` (seconds) works too. */
function waitOf(wait: boolean | number | undefined, prefer: string | undefined, config: RouterConfiguration): number {
  let ms = wait === true ? config.defaults.maxWaitMs : typeof wait === 'number' ? wait : 0;
  const m = prefer ? /(?:^|[,;\s])wait=(\d+)/.exec(prefer) : null;
  if (!ms && m) ms = Number(m[1]) * 1000;
  return Math.min(ms, config.defaults.maxWaitMs);
}

function lastEventId(req: HttpRequestData): number {
  const raw = req.headers['last-event-id'] ?? (typeof req.query.last_event_id === 'string' ? req.query.last_event_id : undefined);
  const n = raw === undefined ? 0 : Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new AionError(ErrorCodes.BAD_REQUEST, 'Last-Event-ID must be an event id this stream sent');
  return n;
}

async function* toSse(events: AsyncIterable<TaskEvent>, name: (e: TaskEvent) => string = (e) => e.event): AsyncGenerator<ServerSentEvent> {
  for await (const e of events) yield e.id === Number.MAX_SAFE_INTEGER ? { event: name(e), data: e.data } : { id: String(e.id), event: name(e), data: e.data };
}

/** A front-door call, summarised as a task for usage and `router.afterTask`. */
function frontDoorTask(s: FrontDoorSummary, engine: RouterEngine): TaskResult {
  const r: ExecutionResult & Partial<LoopResult> = s.result;
  const now = new Date().toISOString();
  return {
    schema_version: '1.0',
    task_id: s.id,
    intent: s.intent,
    status: r.status,
    engine: engine.engineInfo(s.decision, r),
    result: r.status === 'OK' ? { text: r.text, tool_calls: r.toolCalls, finish_reason: r.finishReason ?? null } : null,
    usage: { latency_ms: r.latencyMs, tokens: { input: r.inputTokens, output: r.outputTokens, total: r.inputTokens + r.outputTokens }, cost_usd: r.costUsd },
    error: r.error ? { code: r.error.code, message: r.error.message } : null,
    created_at: now,
    updated_at: now,
    routing: {
      privacy: s.decision.privacy,
      candidates: s.decision.candidates.map((c) => ({ engine: c.engine, score: c.score })),
      filtered: s.decision.filtered,
      attempts: r.attempts,
    },
    ...(r.steps ? { steps: r.steps, transcript: r.transcript } : {}),
  };
}

/** What the API can do; to an authenticated caller also what runs behind it: this extension, intents, providers, limits. */
function capabilities(
  ctx: aion.ExtensionContext,
  catalog: ProviderCatalog,
  config: RouterConfiguration,
  store: TaskStore,
  caller: aion.Principal | undefined,
): Record<string, unknown> {
  const features = {
    tasks: {
      path: '/v1/tasks',
      async: true,
      wait: true,
      cancel: true,
      timeout: { default_ms: config.defaults.timeoutMs, max_ms: config.defaults.maxTimeoutMs },
      idempotency: { header: 'Idempotency-Key', ttl_seconds: Math.round(config.idempotencyTtlMs / 1000) },
      storage: store.kind,
    },
    streaming: {
      sse: { path: '/v1/stream/{id}', events: ['token', 'partial', 'tool', 'step', 'done', 'error'], resume: 'Last-Event-ID' },
      websocket: {
        path: '/v1/ws',
        protocol: 'jsonrpc-2.0',
        methods: ['tasks.submit', 'tasks.get', 'tasks.subscribe', 'tasks.unsubscribe', 'tasks.cancel'],
        notifications: ['tasks.event'],
      },
    },
    bulk: { path: '/v1/bulk', max_operations: MAX_BULK_OPERATIONS, execution: ['parallel', 'sequential'], depends_on: true, refs: true },
    openai_compatible: {
      chat_completions: '/v1/chat/completions',
      models: '/v1/models',
      model: '/v1/models/{id}',
      embeddings: '/v1/embeddings',
      responses: { path: '/v1/responses', input: 'text', streaming: true },
      streaming: true,
      tools: true,
      aliases: Object.keys(ALIASES),
    },
    routing: {
      privacy_modes: ['local-only', 'allow-api', 'hybrid'],
      default_privacy: config.defaults.privacy,
      priorities: ['low', 'normal', 'high'],
      chosen_by: ['ai-router', 'policy-override', 'preferred'],
      explain_header: 'x-aion-route',
      hooks: ['router.beforeRoute', 'router.afterTask'],
      fallback: true,
      circuit_breaker: true,
    },
    usage: { per_task: true, per_api_key: '/v1/usage' },
    skills: {
      request_field: 'skills',
      chat_completions_field: 'aion.skills',
      tool_loop: true,
      max_steps: config.skills.maxSteps,
      max_tools: config.skills.maxTools,
    },
  };
  const overview = { schema_version: '1.0', api_versions: ['v1'], task_schema_versions: ['1.0'], features };
  if (!caller) return overview;
  return {
    ...overview,
    server: { name: 'aion', extension: ctx.extension.id, version: ctx.extension.version },
    features: { ...features, skills: { ...features.skills, provider: 'aion.skills' } },
    intents: [...catalog.knownIntents].sort(),
    providers: visibleProviders(catalog.providers, viewer(caller)).map((p) => ({
      id: p.id,
      display_name: p.displayName,
      route: p.route,
      tier: p.tier,
      residency: p.residency,
      available: p.availability === 'configured' || p.availability === 'detected',
      availability: p.availability,
      detail: p.detail ?? null,
      models: p.models.map((m) => m.id),
    })),
    limits: {
      bulk_operations: MAX_BULK_OPERATIONS,
      provider_concurrency: config.limits.providerConcurrency,
      key_concurrency: config.limits.keyConcurrency || null,
    },
  };
}

/** Whom a model list is for (a model on a user's device is listed to that user only). */
function viewer(principal: aion.Principal | undefined | null): ModelViewer {
  if (!principal) return {};
  const caller = callerOf(principal);
  return { tenantId: caller.tenant, userId: caller.user };
}

export function deactivate(): void {}
