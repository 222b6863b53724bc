import { AionError, ErrorCodes } from '@aion/extension-api';
import type { EventEnvelope, PublishOptions, SinkStatus, StoredEvent } from './api.js';
import type { EventTypeCatalog } from './catalog.js';
import { sinkAccepts, type EventsConfiguration } from './config.js';
import type { SinkDispatcher } from './dispatcher.js';
import { EventIdFactory, UUID_V7 } from './ids.js';
import type { Outbox } from './outbox.js';

const TENANT = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_PAYLOAD_BYTES = 256 * 1024;

/** Publishing (checked, then durable in the outbox) and reading the outbox and the sinks' state. */
export class EventService {
  private readonly ids = new EventIdFactory();

  constructor(
    private readonly outbox: Outbox,
    private readonly catalog: EventTypeCatalog,
    private readonly settings: () => EventsConfiguration,
    private readonly dispatchers: Map<string, SinkDispatcher>,
    /** Why a configured sink cannot run, by name. */
    private readonly sinkProblems: Map<string, string>,
  ) {}

  /** `publisher` is the kernel-verified calling extension; undefined is the kernel itself. */
  async publish(publisher: string | undefined, type: unknown, payload: unknown, options: PublishOptions = {}): Promise<string> {
    this.catalog.check(publisher, type, payload);
    const tenant = options?.tenantId ?? 'default';
    if (typeof tenant !== 'string' || !TENANT.test(tenant)) {
      throw new AionError(
        ErrorCodes.VALIDATION_FAILED,
        `tenantId is 1 to 64 letters, digits, _ or - (it is a NATS subject token); got ${JSON.stringify(tenant)}`,
      );
    }
    const key = options?.key ?? null;
    if (key !== null && (typeof key !== 'string' || key.length > 256))
      throw new AionError(ErrorCodes.VALIDATION_FAILED, 'key is a string of at most 256 characters');
    const data = payload === undefined ? null : payload;
    const size = Buffer.byteLength(JSON.stringify(data));
    if (size > MAX_PAYLOAD_BYTES) {
      throw new AionError(
        ErrorCodes.PAYLOAD_TOO_LARGE,
        `an event payload is at most ${MAX_PAYLOAD_BYTES} bytes of JSON (this one is ${size}); publish a reference to the data instead`,
      );
    }
    const now = Date.now();
    const event: EventEnvelope = {
      id: this.ids.next(now),
      type: type as string,
      source: publisher ?? 'kernel',
      tenant_id: tenant,
      key,
      time: new Date(now).toISOString(),
      data,
    };
    const sinks = Object.entries(this.settings().sinks)
      .filter(([, s]) => sinkAccepts(s, event.type, tenant))
      .map(([name]) => name);
    await this.outbox.append(event, now, sinks);
    for (const name of sinks) this.dispatchers.get(name)?.wake();
    return event.id;
  }

  async list(filter: { after?: unknown; type?: unknown; limit?: unknown } = {}): Promise<StoredEvent[]> {
    const after = filter.after === undefined || filter.after === '' ? undefined : filter.after;
    if (after !== undefined && (typeof after !== 'string' || !UUID_V7.test(after)))
      throw new AionError(ErrorCodes.VALIDATION_FAILED, 'after is an event id (a UUIDv7, as publish returns it)');
    const type = filter.type === undefined || filter.type === '' ? undefined : filter.type;
    if (type !== undefined && (typeof type !== 'string' || !/^[a-z0-9_.*-]{1,128}$/.test(type)))
      throw new AionError(ErrorCodes.VALIDATION_FAILED, 'type is an event type id, or a prefix ending in .*');
    const limit = filter.limit === undefined || filter.limit === '' ? 100 : Number(filter.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new AionError(ErrorCodes.VALIDATION_FAILED, 'limit is an integer from 1 to 500');
    return this.outbox.list({ after: after as string | undefined, type: type as string | undefined, limit });
  }

  async sinks(): Promise<SinkStatus[]> {
    const configured = this.settings().sinks;
    const names = Object.keys(configured);
    const states = await this.outbox.sinkStatus(names);
    return names.map((name) => {
      const s = configured[name]!;
      const state = states.get(name);
      const problem = this.sinkProblems.get(name);
      return {
        name,
        type: s.type,
        enabled: s.enabled && !problem,
        backlog: state?.backlog ?? 0,
        dead: state?.dead ?? 0,
        delivered: state?.delivered ?? 0,
        last_delivered_id: state?.last_delivered_id ?? null,
        last_delivered_at: state?.last_delivered_at ?? null,
        attempts: state?.attempts ?? 0,
        last_error: problem ?? state?.last_error ?? null,
        last_attempt_at: state?.last_attempt_at ?? null,
        next_attempt_at: state?.next_attempt_at ?? null,
      };
    });
  }
}
