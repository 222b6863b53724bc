import type { EventEnvelope } from '../api.js';

/** Where a dispatcher delivers: resolves once the event is stored downstream, throws to have it retried. */
export interface Sink {
  deliver(event: EventEnvelope): Promise<void>;
  close(): Promise<void>;
}

/** A delivery failure whose message names the sink's answer (status, timeout, refusal). */
export class DeliveryError extends Error {}
