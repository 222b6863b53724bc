import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as aion from '@aion/extension-api';
import { AionError, ErrorCodes, type ServerSentEvent } from '@aion/extension-api';
import { FINAL_STATUSES, JobsErrorCodes, type JobsApi, type WorkerType } from './api.js';
import { Autoscaler, LocalWorkerAction, type ScaleAction } from './autoscaler.js';
import type { JobBackend } from './backends/backend.js';
import { BullmqBackend } from './backends/bullmq.js';
import { defaultWorkerId, EmbeddedBackend, type StorageSql } from './backends/embedded.js';
import type { JobsConfiguration } from './config.js';
import { QueueCatalog } from './queues.js';
import { JobService } from './service.js';
import { WorkerPool } from './workers.js';

const HOUR = 3_600_000;

async function openBackend(ctx: aion.ExtensionContext, config: JobsConfiguration): Promise<JobBackend> {
  if (config.backend === 'bullmq') {
    const url = config.redisUrl ?? (await ctx.secrets.get('AION_REDIS_URL'));
    if (!url)
      throw new AionError(
        ErrorCodes.CONFIG_INVALID,
        'the bullmq backend needs Redis: set extensions["aion.jobs"].redisUrl or the AION_REDIS_URL secret, or use backend "embedded"',
      );
    const backend = new BullmqBackend(url, config.redisPrefix, { leaseMs: () => config.leaseMs, retentionMs: () => config.retentionMs });
    try {
      await backend.open();
    } catch (err) {
      await backend.close().catch(() => undefined);
      throw new AionError(
        JobsErrorCodes.BACKEND_UNAVAILABLE,
        `Redis at ${url.replace(/\/\/[^@/]*@/, '//****@')} cannot be reached: ${(err as Error).message}`,
        { status: 503 },
      );
    }
    return backend;
  }
  const storage = (await aion.extensions.getApi<StorageSql & object>('aion.storage')) as unknown as StorageSql;
  const backend = new EmbeddedBackend(storage, { leaseMs: () => config.leaseMs, pollIntervalMs: () => config.pollIntervalMs });
  await backend.open();
  return backend;
}

/** A GPU worker starts only where aion.accelerators finds a GPU, never silently on the CPU. */
async function requireGpu(requirement: { vendor?: string; memoryMiB?: number }): Promise<void> {
  let accelerators: { find(requirement: Record<string, unknown>): unknown };
  try {
    accelerators = await aion.extensions.getApi<{ find(requirement: Record<string, unknown>): unknown }>('aion.accelerators');
  } catch {
    throw new AionError('NO_ACCELERATOR', 'a gpu worker needs a GPU, and aion.accelerators (which finds them) is not installed in this server', {
      status: 503,
    });
  }
  await accelerators.find(requirement);
}

export async function activate(ctx: aion.ExtensionContext): Promise<JobsApi> {
  const config = ctx.configuration.get<JobsConfiguration>();
  const log = (level: 'info' | 'warn', message: string) => ctx.logger[level](message);
  const backend = await openBackend(ctx, config);
  ctx.subscriptions.push({ dispose: () => backend.close() });

  const catalog = new QueueCatalog(await aion.contributions.list('queues'), config.queues);
  for (const problem of catalog.refused) log('warn', problem);
  const service = new JobService(
    backend,
    () => catalog,
    () => config,
  );

  ctx.subscriptions.push(
    aion.contributions.register('queues', 'cleanup', {
      run: async () => ({ purged: await backend.purge(Date.now() - config.retentionMs) }),
    }),
  );

  const pools = new Set<WorkerPool>();
  const startPool = async (options: { id: string; type: WorkerType; queues: string[] | undefined; concurrency?: number }) => {
    const pool = new WorkerPool(backend, {
      id: options.id,
      type: options.type,
      queues: catalog.select(options.type, options.queues).filter((q) => q.owner !== null),
      concurrency: options.concurrency,
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      log,
      onSettled: (id) => service.notify(id),
    });
    pools.add(pool);
    await pool.start();
    return pool;
  };
  const stopPool = async (pool: WorkerPool) => {
    pools.delete(pool);
    await pool.stop();
  };
  ctx.subscriptions.push({ dispose: () => Promise.allSettled([...pools].map((p) => p.stop())).then(() => undefined) });

  // Hub workers start a moment after activation, so a one-off CLI kernel (aion worker, aion jobs health) can call them off.
  let hubStart: NodeJS.Timeout | undefined;
  if (config.inProcessWorkers.enabled) {
    hubStart = setTimeout(() => {
      hubStart = undefined;
      for (const type of config.inProcessWorkers.types) {
        void startPool({ id: defaultWorkerId(`hub-${type}`), type, queues: undefined }).catch((err) =>
          log('warn', `hub ${type} workers did not start: ${(err as Error).message}`),
        );
      }
    }, config.inProcessWorkers.startDelayMs);
    const purgeTimer = setInterval(() => {
      const hour = Math.floor(Date.now() / HOUR);
      void service.enqueue(undefined, 'cleanup', { task: 'purge' }, { jobId: `jobs-purge-${hour}` }).catch(() => undefined);
    }, HOUR);
    purgeTimer.unref();
    ctx.subscriptions.push({ dispose: () => (clearTimeout(hubStart), clearInterval(purgeTimer)) });
  }
  const callOffHub = () => {
    clearTimeout(hubStart);
    hubStart = undefined;
  };

  const local = new LocalWorkerAction({
    cliPath: join(dirname(createRequire(import.meta.url).resolve('@aion/core/package.json')), 'dist', 'src', 'cli', 'main.js'),
    args: [...(config.autoscaler.queues ? ['--queues', config.autoscaler.queues.join(',')] : []), '--concurrency', String(config.autoscaler.concurrency)],
    env: { ...process.env, AION_DATA_DIR: dirname(dirname(ctx.storagePath)) },
    log,
  });
  ctx.subscriptions.push({ dispose: () => local.stopAll() });
  const scaleAction = async (): Promise<ScaleAction> => {
    if (config.autoscaler.action === 'local') return local;
    return (await aion.contributions.get<ScaleAction & object>('scaleActions', config.autoscaler.action)) as unknown as ScaleAction;
  };
  const envEnabled = process.env.AUTOSCALER_ENABLED;
  if (envEnabled !== undefined ? envEnabled === 'true' || envEnabled === '1' : config.autoscaler.enabled) {
    const autoscaler = new Autoscaler({
      policy: () => config.autoscaler,
      pollIntervalMs: config.autoscaler.pollIntervalMs,
      depths: async () => {
        const stats = await backend.stats([...catalog.byId.keys()]);
        return catalog.all().map((q) => ({ queue: q.id, depth: stats.get(q.id)?.depth ?? 0, workerType: q.workerType }));
      },
      action: scaleAction,
      log,
    });
    autoscaler.start();
    ctx.subscriptions.push({ dispose: () => autoscaler.stop() });
  }

  const room = (id: string) => `job:${id}`;
  const publishing = new Set<string>();
  const publishUntilFinal = (id: string) => {
    if (publishing.has(id)) return;
    publishing.add(id);
    void (async () => {
      try {
        for await (const job of service.follow(id)) aion.realtime.publish(room(id), 'job', job);
      } finally {
        publishing.delete(id);
      }
    })().catch(() => undefined);
  };

  ctx.subscriptions.push(
    aion.http.handle('GET /v1/jobs', async (req) => ({
      body: { jobs: await service.list({ queue: req.query.queue, status: req.query.status, limit: req.query.limit }) },
    })),
    aion.http.handle('GET /v1/jobs/health', async () => {
      const health = await service.health();
      return { status: health.healthy ? 200 : 503, body: health };
    }),
    aion.http.handle('GET /v1/jobs/:id', async (req) => ({ body: await service.forPrincipal(req.principal, req.params.id!) })),
    aion.http.handle('GET /v1/jobs/:id/logs', async (req) => {
      const job = await service.forPrincipal(req.principal, req.params.id!);
      return { body: { id: job.id, logs: await backend.logs(job.id) } };
    }),
    aion.http.handle('GET /v1/jobs/:id/events', async (req, token) => {
      const job = await service.forPrincipal(req.principal, req.params.id!);
      async function* events(): AsyncGenerator<ServerSentEvent> {
        for await (const view of service.follow(job.id, token)) yield { event: FINAL_STATUSES.has(view.status) ? 'done' : 'progress', data: view };
      }
      return { stream: events() };
    }),
    aion.http.handle('POST /v1/jobs/:id/cancel', async (req) => {
      const job = await service.forPrincipal(req.principal, req.params.id!);
      return { body: await service.cancel(undefined, job.id) };
    }),
    // Socket.io rooms `job:<id>`: whoever may read the job over HTTP may follow it live.
    aion.hooks.tap('realtime.authorize', async ({ principal, room: name }: { principal?: aion.Principal | null; room?: string }) => {
      if (typeof name !== 'string' || !name.startsWith('job:')) return undefined;
      const id = name.slice('job:'.length);
      try {
        await service.forPrincipal(principal ?? undefined, id);
      } catch {
        return false;
      }
      publishUntilFinal(id);
      return true;
    }),
    aion.commands.register('jobs.worker', async (args: { queues?: string; concurrency?: string; type?: string; id?: string } = {}) => {
      callOffHub();
      await Promise.allSettled([...pools].map(stopPool));
      const type = (args.type ?? 'cpu') as WorkerType;
      if (!['cpu', 'gpu', 'cleanup'].includes(type)) throw new AionError(ErrorCodes.VALIDATION_FAILED, '--type is cpu, gpu or cleanup');
      let concurrency = args.concurrency === undefined ? undefined : Number(args.concurrency);
      if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 1024))
        throw new AionError(ErrorCodes.VALIDATION_FAILED, '--concurrency is an integer from 1 to 1024');
      if (type === 'gpu') {
        // The strictest device any queue this worker serves asks for.
        const named = args.queues
          ?.split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        const wanted = catalog.select('gpu', named).map((q) => q.gpu ?? {});
        const memoryMiB = Math.max(0, ...wanted.map((g) => g.memoryMiB ?? 0));
        await requireGpu({ vendor: wanted.find((g) => g.vendor)?.vendor, ...(memoryMiB > 0 ? { memoryMiB } : {}) });
        // One job at a time holds the whole device: two would fight over its memory.
        if (concurrency !== undefined && concurrency > 1) log('warn', `a gpu worker runs one job at a time; --concurrency ${concurrency} is ignored`);
        concurrency = 1;
      }
      const queues = args.queues
        ?.split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      const pool = await startPool({ id: args.id ?? defaultWorkerId(type), type, queues, concurrency });
      log('info', `worker ${pool.id} serves ${(queues ?? [`every ${type} queue`]).join(', ')}`);
      // The worker runs until the process is told to stop; jobs in flight finish first.
      await aion.untilStopSignal();
      await stopPool(pool);
      return `worker ${pool.id} stopped`;
    }),
    aion.commands.register('jobs.health', async () => {
      callOffHub();
      const health = await service.health();
      if (!health.healthy) throw new AionError('JOBS_UNHEALTHY', `${health.problems.join('; ')}\n${JSON.stringify(health, null, 2)}`, { status: 503 });
      return health;
    }),
  );

  const caller = () => aion.extensions.caller();
  // Each method names the trailing cancellation token the host appends, so an omitted argument stays undefined.
  return {
    enqueue: (queue, payload, options, _token?: unknown) => service.enqueue(caller(), queue, payload, options),
    get: async (id) => (await service.get(caller(), id)) ?? null,
    cancel: async (id) => (await service.cancel(caller(), id)) ?? null,
    progress: (id, fraction, stage, _token?: unknown) => service.progress(caller(), id, fraction, stage),
    log: (id, line) => service.log(caller(), id, line),
    logs: (id) => service.logs(caller(), id),
    list: (filter = {}, _token?: unknown) => service.list(filter),
    health: () => service.health(),
    scale: async (workers) => {
      if (!Number.isInteger(workers) || workers < 0 || workers > 1024)
        throw new AionError(ErrorCodes.VALIDATION_FAILED, 'workers is an integer from 0 to 1024');
      return (await scaleAction()).scale(workers);
    },
  };
}

export function deactivate(): void {}
