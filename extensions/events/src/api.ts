/** What other extensions see of aion.events: `await aion.extensions.getApi<EventsApi>('aion.events')`. */

export const EventsErrorCodes = {
  /** The type is not contributed by any installed extension (`contributes.eventTypes`). */
  EVENT_TYPE_UNKNOWN: 'EVENT_TYPE_UNKNOWN',
  /** The caller may not publish this type: it neither contributes it nor is named a publisher, and the type is not public. */
  EVENT_PUBLISH_DENIED: 'EVENT_PUBLISH_DENIED',
  /** The payload does not match the type's JSON schema. */
  EVENT_PAYLOAD_INVALID: 'EVENT_PAYLOAD_INVALID',
  /** A sink is configured with a type nobody contributes, or without what its type needs. */
  EVENT_SINK_INVALID: 'EVENT_SINK_INVALID',
} as const;

/** One event as sinks receive it (the webhook body, the NATS message data). */
export interface EventEnvelope {
  /** UUIDv7: ids sort in publish order. */
  id: string;
  type: string;
  /** The publishing extension (`kernel` for the kernel itself). */
  source: string;
  tenant_id: string;
  /** A publisher's key (an entity id, for consumers that partition or compact). */
  key: string | null;
  /** ISO 8601 publish time. */
  time: string;
  data: unknown;
}

export interface PublishOptions {
  /** The tenant the event belongs to (default `default`); NATS subjects carry it. */
  tenantId?: string;
  key?: string;
}

export interface SinkStatus {
  name: string;
  type: string;
  enabled: boolean;
  /** Events waiting for this sink. */
  backlog: number;
  /** Events set aside after deadLetterAfterAttempts failed tries. */
  dead: number;
  delivered: number;
  last_delivered_id: string | null;
  last_delivered_at: string | null;
  /** Tries of the event at the head of the backlog. */
  attempts: number;
  last_error: string | null;
  last_attempt_at: string | null;
  next_attempt_at: string | null;
}

export interface DeliveryState {
  sink: string;
  status: 'pending' | 'delivered' | 'dead';
  attempts: number;
  last_error: string | null;
  delivered_at: string | null;
}

export interface StoredEvent extends EventEnvelope {
  deliveries: DeliveryState[];
}

export interface EventTypeInfo {
  id: string;
  description: string;
  owner: string;
  public: boolean;
  publishers: string[];
  schema: Record<string, unknown> | null;
}

/** What a contributed sink registers with `contributions.register('eventSinks', id, impl)`. */
export interface EventSinkImplementation {
  /** Resolves once the event is stored downstream; throws to have it retried (the same event, until it succeeds). */
  deliver(event: EventEnvelope, options: Record<string, unknown>): Promise<unknown>;
}

export interface EventsApi {
  /** Stores the event in the outbox (durable when this resolves) and returns its id. */
  publish(type: string, payload: unknown, options?: PublishOptions): Promise<string>;
  types(): Promise<EventTypeInfo[]>;
  /** The outbox, oldest first (privileged). */
  list(filter?: { after?: string; type?: string; limit?: number }): Promise<StoredEvent[]>;
  /** Each sink's delivery state (privileged). */
  sinks(): Promise<SinkStatus[]>;
}
