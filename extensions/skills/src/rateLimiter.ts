export interface RateLimitOptions {
  enabled: boolean;
  /** Calls a caller may make in a burst. */
  capacity: number;
  /** Calls added back per second, up to `capacity`. */
  refillPerSecond: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * A token bucket per caller. Full buckets are forgotten, so idle callers cost nothing. Hand-written on
 * purpose: rate-limiter-flexible's memory limiter counts fixed windows, which lets a caller burst twice
 * its capacity across a window edge, and answers asynchronously on the gatekeeper's per-call path; this
 * bucket is exact (never more than `capacity` at once) and synchronous.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private sweeps = 0;

  constructor(
    private readonly options: RateLimitOptions,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Takes one token; returns 0 when allowed, or the seconds to wait before the next call can pass. */
  take(key: string): number {
    if (!this.options.enabled) return 0;
    const { capacity, refillPerSecond } = this.options;
    const now = this.now();
    const bucket = this.buckets.get(key) ?? { tokens: capacity, at: now };
    bucket.tokens = Math.min(capacity, bucket.tokens + ((now - bucket.at) / 1000) * refillPerSecond);
    bucket.at = now;
    if ((++this.sweeps & 1023) === 0) this.sweep(now);
    if (bucket.tokens < 1) {
      this.buckets.set(key, bucket);
      return Math.max(1, Math.ceil((1 - bucket.tokens) / refillPerSecond));
    }
    bucket.tokens -= 1;
    this.buckets.set(key, bucket);
    return 0;
  }

  private sweep(now: number): void {
    const { capacity, refillPerSecond } = this.options;
    for (const [key, b] of this.buckets) if (b.tokens + ((now - b.at) / 1000) * refillPerSecond >= capacity) this.buckets.delete(key);
  }
}
