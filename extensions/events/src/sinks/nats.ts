import { connect, JSONCodec, type JetStreamClient, type NatsConnection } from 'nats';
import type { EventEnvelope } from '../api.js';
import { DeliveryError, type Sink } from './sink.js';

const codec = JSONCodec<EventEnvelope>();

/** The subject an event goes to: `<prefix>.<tenant>.<type>` (tenant ids and types are subject-safe tokens). */
export function natsSubject(prefix: string, event: Pick<EventEnvelope, 'tenant_id' | 'type'>): string {
  return `${prefix}.${event.tenant_id}.${event.type}`;
}

/**
 * Publishes to NATS JetStream with `msgID` = the event id, so the server drops a re-sent event within
 * the stream's duplicate window. A stream must capture the subjects; without one the publish fails and
 * is retried. A failed connection is dropped and made again on the next try.
 */
export class NatsSink implements Sink {
  private connection: Promise<{ nc: NatsConnection; js: JetStreamClient }> | undefined;

  constructor(private readonly options: { servers: string[]; subjectPrefix: string; timeoutMs: number }) {}

  private connect(): Promise<{ nc: NatsConnection; js: JetStreamClient }> {
    this.connection ??= connect({ servers: this.options.servers, timeout: this.options.timeoutMs, reconnect: false, name: 'aion.events' }).then((nc) => {
      void nc.closed().then(() => (this.connection = undefined));
      return { nc, js: nc.jetstream({ timeout: this.options.timeoutMs }) };
    });
    return this.connection;
  }

  async deliver(event: EventEnvelope): Promise<void> {
    let js: JetStreamClient;
    try {
      ({ js } = await this.connect());
    } catch (err) {
      this.connection = undefined;
      throw new DeliveryError(`NATS at ${this.options.servers.join(', ')} cannot be reached: ${(err as Error).message}`);
    }
    const subject = natsSubject(this.options.subjectPrefix, event);
    try {
      await js.publish(subject, codec.encode(event), { msgID: event.id, timeout: this.options.timeoutMs });
    } catch (err) {
      const message = (err as Error).message;
      throw new DeliveryError(
        /503|no responders/i.test(message) ? `no JetStream stream captures ${subject} (${message})` : `JetStream publish to ${subject} failed: ${message}`,
      );
    }
  }

  async close(): Promise<void> {
    const pending = this.connection;
    this.connection = undefined;
    const c = await pending?.catch(() => undefined);
    await c?.nc.drain().catch(() => c.nc.close());
  }
}
