import { Redis } from 'ioredis';

export interface RateLimitOptions {
  enabled: boolean;
  /** Calls a caller may make in a burst. */
  capacity: number;
  /** Calls added back per second, up to `capacity`. */
  refillPerSecond: number;
  /** Redis shared by several kernels: one bucket per caller across all of them. */
  redisUrl?: string;
  /** Prefix of the buckets' keys, one per deployment on a shared Redis. */
  redisPrefix?: string;
}

/** Takes one call from a caller's bucket: 0 when allowed, else the seconds to wait. */
export interface CallLimiter {
  take(key: string): number | Promise<number>;
  close?(): Promise<void>;
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
export class RateLimiter implements CallLimiter {
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

/**
 * The same bucket kept in Redis, so every kernel sharing it counts one caller's calls together. One
 * Lua script reads, refills and takes atomically, on Redis's clock (no skew between kernels). If Redis
 * stops answering, calls are counted by this kernel's own bucket meanwhile, and that is logged.
 */
export class RedisRateLimiter implements CallLimiter {
  private static readonly SCRIPT = `
    local capacity = tonumber(ARGV[1])
    local refill = tonumber(ARGV[2])
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
    local tokens = tonumber(b[1]) or capacity
    local at = tonumber(b[2]) or now
    tokens = math.min(capacity, tokens + (now - at) / 1000 * refill)
    local wait = 0
    if tokens < 1 then
      wait = math.max(1, math.ceil((1 - tokens) / refill))
    else
      tokens = tokens - 1
    end
    redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
    redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / refill * 1000) + 1000)
    return wait`;
  private readonly redis: Redis;
  private readonly local: RateLimiter;
  private warnedAt = 0;

  constructor(
    private readonly options: RateLimitOptions & { redisUrl: string },
    private readonly warn: (message: string) => void,
  ) {
    this.redis = new Redis(options.redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false });
    this.redis.on('error', () => undefined);
    this.redis.defineCommand('aionTakeToken', { numberOfKeys: 1, lua: RedisRateLimiter.SCRIPT });
    this.local = new RateLimiter(options);
  }

  async take(key: string): Promise<number> {
    if (!this.options.enabled) return 0;
    try {
      const wait = await (this.redis as unknown as { aionTakeToken(key: string, capacity: number, refill: number): Promise<number> }).aionTakeToken(
        `${this.options.redisPrefix ?? 'aion:skills'}:bucket:${key}`,
        this.options.capacity,
        this.options.refillPerSecond,
      );
      return Number(wait);
    } catch (err) {
      if (Date.now() - this.warnedAt > 60_000) {
        this.warnedAt = Date.now();
        this.warn(`skill rate limits fall back to this kernel's own buckets: Redis does not answer (${(err as Error).message})`);
      }
      return this.local.take(key);
    }
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => undefined);
  }
}
