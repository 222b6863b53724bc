import type { EventEnvelope } from '../api.js';
import { signWebhook, WEBHOOK_HEADERS } from './signature.js';
import { DeliveryError, type Sink } from './sink.js';

/** POSTs each event as JSON, signed; any 2xx answer is delivered, anything else (or no answer in time) is retried. */
export class WebhookSink implements Sink {
  constructor(private readonly options: { url: string; secret: string; timeoutMs: number; headers?: Record<string, string> }) {}

  async deliver(event: EventEnvelope): Promise<void> {
    const body = JSON.stringify(event);
    const timestamp = Math.floor(Date.now() / 1000);
    let res: Response;
    try {
      res = await fetch(this.options.url, {
        method: 'POST',
        headers: {
          ...this.options.headers,
          'content-type': 'application/json',
          [WEBHOOK_HEADERS.id]: event.id,
          [WEBHOOK_HEADERS.type]: event.type,
          [WEBHOOK_HEADERS.timestamp]: String(timestamp),
          [WEBHOOK_HEADERS.signature]: signWebhook(this.options.secret, timestamp, body),
        },
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      if (e.name === 'TimeoutError') throw new DeliveryError(`${this.options.url} did not answer within ${this.options.timeoutMs} ms`);
      throw new DeliveryError(`${this.options.url} cannot be reached: ${e.cause?.code ?? e.cause?.message ?? e.message}`);
    }
    // The body is read (and dropped) so the connection goes back to the pool.
    const text = await res.text().catch(() => '');
    if (res.status < 200 || res.status > 299) throw new DeliveryError(`${this.options.url} answered ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}`);
  }

  async close(): Promise<void> {}
}
