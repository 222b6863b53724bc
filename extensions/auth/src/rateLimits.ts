import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { BucketConfig, WindowConfig } from './config.js';

/** The answer of one bucket: whether the request may pass, and what to tell the client. */
export interface BucketDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Until the next token, when refused. */
  retryAfterMs: number;
  /** Until the bucket is full again. */
  resetMs: number;
  policy: string;
}

/** Token bucket state keepers: this process's memory, or Redis for every instance at once. */
interface BucketStore {
  take(key: string, capacity: number, refillPerMs: number): Promise<{ allowed: boolean; tokens: number; retryAfterMs: number }>;
}

class MemoryBucketStore implements BucketStore {
  private readonly buckets = new Map<string, { tokens: number; at: number; fullAt: number }>();
  private readonly sweeper: NodeJS.Timeout;

  constructor() {
    // Full buckets carry no information; forget them so idle keys do not pile up.
    this.sweeper = setInterval(() => {
      const now = Date.now();
      for (const [key, b] of this.buckets) if (b.fullAt <= now) this.buckets.delete(key);
    }, 60_000);
    this.sweeper.unref();
  }

  async take(key: string, capacity: number, refillPerMs: number) {
    const now = Date.now();
    const b = this.buckets.get(key);
    let tokens = b ? Math.min(capacity, b.tokens + (now - b.at) * refillPerMs) : capacity;
    const allowed = tokens >= 1;
    if (allowed) tokens -= 1;
    this.buckets.set(key, { tokens, at: now, fullAt: now + (capacity - tokens) / refillPerMs });
    return { allowed, tokens, retryAfterMs: allowed ? 0 : (1 - tokens) / refillPerMs };
  }

  dispose(): void {
    clearInterval(this.sweeper);
  }
}

/** One atomic script per request: refill by Redis's clock (shared by every instance), then take a token. */
const TAKE_SCRIPT = `
local capacity = tonumber(ARGV[1])
local refill = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil then tokens = capacity; at = now end
tokens = math.min(capacity, tokens + math.max(0, now - at) * refill)
local allowed = 0
local retry = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry = math.ceil((1 - tokens) / refill)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / refill) + 1000)
return { allowed, tostring(tokens), retry }
`;

class RedisBucketStore implements BucketStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {
    redis.defineCommand('aionTakeToken', { numberOfKeys: 1, lua: TAKE_SCRIPT });
  }

  async take(key: string, capacity: number, refillPerMs: number) {
    const [allowed, tokens, retry] = (await (
      this.redis as unknown as { aionTakeToken(k: string, c: number, r: string): Promise<[number, string, number]> }
    ).aionTakeToken(this.prefix + key, capacity, String(refillPerMs))) as [number, string, number];
    return { allowed: allowed === 1, tokens: Number(tokens), retryAfterMs: Number(retry) };
  }
}

export interface RateLimiterOptions {
  perApiKey: BucketConfig;
  perPrincipal: BucketConfig;
  perIp: BucketConfig;
  login: { perAccount: WindowConfig; perIp: WindowConfig };
  redis?: Redis;
  keyPrefix: string;
  onStoreError(err: unknown): void;
}

/**
 * Request limits are token buckets (`burst` tokens, refilled at `perMinute`), in memory on one
 * instance or in Redis shared by all. Login attempts are counted per account and per IP in fixed
 * windows with rate-limiter-flexible. When Redis fails, this instance's memory answers instead.
 */
export class RateLimiter {
  private readonly memory = new MemoryBucketStore();
  private readonly shared?: RedisBucketStore;
  private readonly loginAccount: RateLimiterAbstract;
  private readonly loginIp: RateLimiterAbstract;

  constructor(private readonly options: RateLimiterOptions) {
    if (options.redis) this.shared = new RedisBucketStore(options.redis, options.keyPrefix);
    const window = (name: string, w: WindowConfig): RateLimiterAbstract => {
      const base = { keyPrefix: `${options.keyPrefix}${name}`, points: w.attempts, duration: w.windowSeconds };
      const memory = new RateLimiterMemory(base);
      return options.redis ? new RateLimiterRedis({ ...base, storeClient: options.redis, insuranceLimiter: memory, rejectIfRedisNotReady: true }) : memory;
    };
    this.loginAccount = window('login-account', options.login.perAccount);
    this.loginIp = window('login-ip', options.login.perIp);
  }

  private async take(kind: 'key' | 'principal' | 'ip', id: string, config: BucketConfig): Promise<BucketDecision> {
    const capacity = config.burst;
    const refillPerMs = config.perMinute / 60_000;
    const key = `${kind}:${id}`;
    let result: Awaited<ReturnType<typeof this.memory.take>>;
    try {
      result = this.shared ? await this.shared.take(key, capacity, refillPerMs) : await this.memory.take(key, capacity, refillPerMs);
    } catch (err) {
      this.options.onStoreError(err);
      result = await this.memory.take(key, capacity, refillPerMs);
    }
    return {
      allowed: result.allowed,
      limit: capacity,
      remaining: Math.floor(result.tokens),
      retryAfterMs: result.retryAfterMs,
      resetMs: Math.ceil((capacity - result.tokens) / refillPerMs),
      policy: `${config.perMinute};w=60;burst=${capacity}`,
    };
  }

  forApiKey(keyId: string): Promise<BucketDecision> {
    return this.take('key', keyId, this.options.perApiKey);
  }

  /** A signed-in user or device, wherever its requests come from. */
  forPrincipal(subject: string): Promise<BucketDecision> {
    return this.take('principal', subject, this.options.perPrincipal);
  }

  /** Requests without credentials or with bad ones. */
  forIp(ip: string): Promise<BucketDecision> {
    return this.take('ip', ip, this.options.perIp);
  }

  /** Before checking a password: milliseconds to wait when this account or IP has failed too often, else 0. */
  async loginBlockedFor(account: string, ip: string): Promise<number> {
    const [a, i] = await Promise.all([this.loginAccount.get(account), this.loginIp.get(ip)]);
    const blocked = (res: RateLimiterRes | null, limiter: RateLimiterAbstract) => (res && res.consumedPoints >= limiter.points ? res.msBeforeNext : 0);
    return Math.max(blocked(a, this.loginAccount), blocked(i, this.loginIp));
  }

  async loginFailed(account: string, ip: string): Promise<void> {
    await Promise.all([this.loginAccount.penalty(account, 1), this.loginIp.penalty(ip, 1)]);
  }

  async loginSucceeded(account: string): Promise<void> {
    await this.loginAccount.delete(account);
  }

  dispose(): void {
    this.memory.dispose();
  }
}

/** IETF RateLimit header fields for a bucket decision. */
export function rateLimitHeaders(d: BucketDecision): Record<string, string> {
  return {
    'RateLimit-Limit': String(d.limit),
    'RateLimit-Remaining': String(d.remaining),
    'RateLimit-Reset': String(Math.ceil(d.resetMs / 1000)),
    'RateLimit-Policy': d.policy,
  };
}

export function retryAfterSeconds(ms: number): string {
  return String(Math.max(1, Math.ceil(ms / 1000)));
}
