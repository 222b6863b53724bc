import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import * as aion from '@aion/extension-api';
import { AionError, ErrorCodes } from '@aion/extension-api';
import { EventsErrorCodes, type EventSinkImplementation, type EventsApi } from './api.js';
import { EventTypeCatalog } from './catalog.js';
import { readConfiguration, type SinkConfiguration } from './config.js';
import { SinkDispatcher } from './dispatcher.js';
import { Outbox, type StorageSql } from './outbox.js';
import { EventService } from './service.js';
import { NatsSink } from './sinks/nats.js';
import type { Sink } from './sinks/sink.js';
import { WebhookSink } from './sinks/webhook.js';
import { publishRouterTask, type AfterTaskPayload } from './sources/router.js';

const HOUR = 3_600_000;

/** How a configured sink is made, or why it cannot be. */
async function sinkFactory(ctx: aion.ExtensionContext, name: string, s: SinkConfiguration, contributed: Set<string>): Promise<(() => Promise<Sink>) | string> {
  switch (s.type) {
    case 'webhook': {
      if (!s.url) return `sink ${name}: a webhook sink needs a url`;
      const secret = s.secret ?? (await ctx.secrets.get('AION_EVENTS_WEBHOOK_SECRET'));
      if (!secret)
        return `sink ${name}: a webhook sink needs a secret of at least 16 characters: set sinks.${name}.secret or the AION_EVENTS_WEBHOOK_SECRET secret`;
      return async () => new WebhookSink({ url: s.url!, secret, timeoutMs: s.timeoutMs, headers: s.headers });
    }
    case 'nats':
      return async () =>
        new NatsSink({ servers: s.servers ?? ['nats://127.0.0.1:4222'], subjectPrefix: s.subjectPrefix ?? 'aion.events', timeoutMs: s.timeoutMs });
    default: {
      if (!contributed.has(s.type))
        return `sink ${name}: no installed extension contributes the sink type ${s.type} (eventSinks: ${[...contributed].join(', ')})`;
      return async () => {
        const impl = (await aion.contributions.get<EventSinkImplementation>('eventSinks', s.type)) as unknown as EventSinkImplementation;
        return { deliver: async (event) => void (await impl.deliver(event, s.options ?? {})), close: async () => undefined };
      };
    }
  }
}

export async function activate(ctx: aion.ExtensionContext): Promise<EventsApi> {
  const config = readConfiguration(ctx.configuration.get<Record<string, unknown>>());
  const log = (level: 'info' | 'warn', message: string) => ctx.logger[level](message);

  const storage = (await aion.extensions.getApi<StorageSql & object>('aion.storage')) as unknown as StorageSql;
  const outbox = new Outbox(storage);
  await outbox.open();

  const catalog = new EventTypeCatalog(await aion.contributions.list('eventTypes'));
  for (const problem of catalog.refused) log('warn', problem);
  const contributedSinks = new Set((await aion.contributions.list('eventSinks')).map((c) => String(c.entry.id)));

  const owner = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const dispatchers = new Map<string, SinkDispatcher>();
  const sinkProblems = new Map<string, string>();
  await outbox.ensureSinks(Object.keys(config.sinks));
  for (const [name, s] of Object.entries(config.sinks)) {
    const factory = await sinkFactory(ctx, name, s, contributedSinks);
    if (typeof factory === 'string') {
      // Events for it are still kept: once the configuration is fixed, the sink receives them.
      sinkProblems.set(name, `${EventsErrorCodes.EVENT_SINK_INVALID}: ${factory}`);
      log('warn', factory);
      continue;
    }
    if (!s.enabled) continue;
    dispatchers.set(name, new SinkDispatcher({ name, outbox, sink: factory, settings: () => config, owner, log }));
  }
  const service = new EventService(outbox, catalog, () => config, dispatchers, sinkProblems);
  for (const d of dispatchers.values()) d.start();
  ctx.subscriptions.push({ dispose: () => Promise.allSettled([...dispatchers.values()].map((d) => d.stop())).then(() => undefined) });

  const purge = () => void outbox.purge(Date.now() - config.retentionMs).catch((err) => log('warn', `removing old events failed: ${(err as Error).message}`));
  const purgeTimer = setInterval(purge, HOUR);
  purgeTimer.unref();
  const firstPurge = setTimeout(purge, 10_000);
  firstPurge.unref();
  ctx.subscriptions.push({ dispose: () => (clearInterval(purgeTimer), clearTimeout(firstPurge)) });

  ctx.subscriptions.push(
    aion.http.handle('GET /v1/events', async (req) => {
      const events = await service.list({ after: req.query.after, type: req.query.type, limit: req.query.limit });
      return { body: { events, next: events.at(-1)?.id ?? null } };
    }),
    aion.commands.register('events.purge', async (args: { before?: string } = {}) => {
      const before = args?.before === undefined ? Date.now() - config.retentionMs : Date.parse(args.before);
      if (!Number.isFinite(before)) throw new AionError(ErrorCodes.VALIDATION_FAILED, `--before is an ISO 8601 time, such as ${new Date().toISOString()}`);
      return { removed: await outbox.purge(before), before: new Date(before).toISOString() };
    }),
    aion.http.handle('GET /v1/events/sinks', async () => ({ body: { sinks: await service.sinks() } })),
    // Router tasks flow as events; a failed publish is logged, never fails the task.
    aion.hooks.tap('router.afterTask', async (payload: AfterTaskPayload) => {
      await publishRouterTask(payload, (type, data, options) => service.publish('aion.events', type, data, options)).catch((err) =>
        log('warn', `a router task was not published as an event: ${(err as Error).message}`),
      );
    }),
  );

  const caller = () => aion.extensions.caller();
  // Each method names the trailing cancellation token the host appends, so an omitted argument stays undefined.
  return {
    publish: (type, payload, options, _token?: unknown) => service.publish(caller(), type, payload, options ?? {}),
    types: async () => catalog.all(),
    list: (filter, _token?: unknown) => service.list(filter ?? {}),
    sinks: () => service.sinks(),
  };
}

export function deactivate(): void {}
