import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Webhook signatures, for senders and receivers: `import { verifyWebhook } from '@aion/ext-events/webhook'`.
 * The signature is HMAC-SHA256 over `<timestamp>.<raw body>` with the sink's secret, sent as
 * `aion-signature: v1=<hex>` next to `aion-event-timestamp: <unix seconds>`.
 */
export const WEBHOOK_HEADERS = {
  id: 'aion-event-id',
  type: 'aion-event-type',
  timestamp: 'aion-event-timestamp',
  signature: 'aion-signature',
} as const;

export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

export interface WebhookVerification {
  secret: string;
  /** The raw request body, exactly as received (not re-serialized JSON). */
  body: string;
  /** The `aion-event-timestamp` header. */
  timestamp: string | undefined;
  /** The `aion-signature` header. */
  signature: string | undefined;
  /** Refuse timestamps further than this from now (replay window; default 300 s, 0 turns the check off). */
  toleranceSeconds?: number;
  now?: number;
}

/** Whether a webhook request is authentic: constant-time comparison, and a timestamp within the tolerance. */
export function verifyWebhook(v: WebhookVerification): boolean {
  if (!v.timestamp || !/^\d{1,12}$/.test(v.timestamp) || !v.signature) return false;
  const tolerance = v.toleranceSeconds ?? 300;
  const nowSeconds = Math.floor((v.now ?? Date.now()) / 1000);
  if (tolerance > 0 && Math.abs(nowSeconds - Number(v.timestamp)) > tolerance) return false;
  const expected = Buffer.from(signWebhook(v.secret, Number(v.timestamp), v.body));
  const given = Buffer.from(v.signature);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
