import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { inject, injectable } from 'inversify';
import { Redis } from 'ioredis';
import { AionError, ErrorCodes, maskUrlPassword, type KernelMember } from '@aion/extension-api';
import type { AionConfig } from '../config/configuration.js';
import type { Logger } from '../logging.js';
import { TYPES } from '../tokens.js';

const KEY_PREFIX = 'aion:kernels:';
const CONNECT_TIMEOUT_MS = 5_000;

/**
 * The kernels that share this server's Redis: each keeps a key with an expiry and renews it every
 * `server.cluster.heartbeatMs`; a kernel that stops renewing (crashed, killed, cut off) drops out
 * after `server.cluster.livenessMs`. Without `server.redisUrl` the cluster is this kernel alone.
 */
@injectable()
export class ClusterMembership {
  readonly self: KernelMember = {
    id: `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`,
    host: hostname(),
    pid: process.pid,
    startedAt: new Date().toISOString(),
  };
  private redis?: Redis;
  private heartbeat?: NodeJS.Timeout;

  constructor(
    @inject(TYPES.KernelOptions) private readonly config: AionConfig,
    @inject(TYPES.Logger) private readonly logger: Logger,
  ) {}

  private get key(): string {
    return KEY_PREFIX + this.self.id;
  }

  /** Announces this kernel; refuses to start when the configured Redis does not answer. */
  async join(): Promise<void> {
    const url = this.config.server.redisUrl;
    if (!url || this.redis) return;
    const { heartbeatMs, livenessMs } = this.config.server.cluster;
    const redis = new Redis(url, { lazyConnect: true, connectTimeout: CONNECT_TIMEOUT_MS, maxRetriesPerRequest: 2 });
    redis.on('error', (err: Error) => this.logger.warn({ err: err.message, redis: maskUrlPassword(url) }, 'cluster Redis connection error; retrying'));
    try {
      await redis.connect();
      await redis.set(this.key, JSON.stringify(this.self), 'PX', livenessMs);
    } catch (err) {
      redis.disconnect();
      throw new AionError(
        ErrorCodes.CONFIG_INVALID,
        `server.redisUrl ${maskUrlPassword(url)} does not answer (${(err as Error).message}): start Redis or remove the setting (AION_REDIS_URL)`,
        { status: 503 },
      );
    }
    this.redis = redis;
    this.heartbeat = setInterval(() => {
      redis
        .set(this.key, JSON.stringify(this.self), 'PX', livenessMs)
        .catch((err: Error) => this.logger.warn({ err: err.message }, 'cluster presence not renewed'));
    }, heartbeatMs);
    this.heartbeat.unref();
  }

  /** The live kernels; null without Redis, where a kernel cannot know its peers. */
  async members(): Promise<KernelMember[] | null> {
    const redis = this.redis;
    if (!redis) return null;
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${KEY_PREFIX}*`, 'COUNT', 200);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    const values = keys.length > 0 ? await redis.mget(...keys) : [];
    const members = values.flatMap((v) => (v ? [JSON.parse(v) as KernelMember] : []));
    // This kernel is alive while it answers, whatever Redis said a moment ago.
    if (!members.some((m) => m.id === this.self.id)) members.push(this.self);
    return members;
  }

  /** Leaves at once on a clean stop, so peers need not wait out the liveness window. */
  async leave(): Promise<void> {
    clearInterval(this.heartbeat);
    const redis = this.redis;
    this.redis = undefined;
    if (!redis) return;
    await redis.del(this.key).catch(() => undefined);
    await redis.quit().catch(() => undefined);
  }
}
