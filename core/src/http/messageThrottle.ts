import { AionError, ErrorCodes } from '@aion/extension-api';
import type { ServerConfig } from '../config/configuration.js';

/** `rate` tokens a second, holding at most `capacity`. */
class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly rate: number,
    private readonly capacity: number,
    now: number,
  ) {
    this.tokens = capacity;
    this.last = now;
  }

  take(now: number): boolean {
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  msUntilNext(): number {
    return Math.max(0, Math.ceil(((1 - this.tokens) / this.rate) * 1000));
  }
}

export type ThrottleVerdict = 'accept' | 'refuse' | 'disconnect';

/**
 * Message limits of one realtime connection (`server.realtime`): past the rate a message is refused;
 * a client refused `refusalsBeforeDisconnect` times within about a minute is cut off.
 */
export class MessageThrottle {
  private readonly messages: TokenBucket;
  private readonly tolerance: TokenBucket;

  constructor(
    private readonly limits: Pick<ServerConfig['realtime'], 'messagesPerSecond' | 'burst' | 'refusalsBeforeDisconnect'>,
    now = performance.now(),
  ) {
    this.messages = new TokenBucket(limits.messagesPerSecond, limits.burst, now);
    this.tolerance = new TokenBucket(limits.refusalsBeforeDisconnect / 60, limits.refusalsBeforeDisconnect, now);
  }

  check(now = performance.now()): ThrottleVerdict {
    if (this.messages.take(now)) return 'accept';
    return this.tolerance.take(now) ? 'refuse' : 'disconnect';
  }

  refusal(verdict: ThrottleVerdict): AionError {
    const retryAfterMs = this.messages.msUntilNext();
    const message =
      verdict === 'disconnect'
        ? `too many messages: more than ${this.limits.messagesPerSecond} a second, refused ${this.limits.refusalsBeforeDisconnect} times; disconnecting`
        : `too many messages: this connection may send ${this.limits.messagesPerSecond} a second (bursts of ${this.limits.burst}); retry in ${retryAfterMs} ms`;
    return new AionError(ErrorCodes.RATE_LIMITED, message, {
      details: { retryAfterMs, messagesPerSecond: this.limits.messagesPerSecond, burst: this.limits.burst },
    });
  }
}
