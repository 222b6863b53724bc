import { Redis } from 'ioredis';

export const REDIS_URL = process.env.AION_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Why Redis cannot be reached, or undefined when it answers. */
export async function probeRedis(): Promise<string | undefined> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 2_000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  let cause: Error | undefined;
  redis.on('error', (err: Error) => (cause ??= err));
  try {
    await redis.connect();
    await redis.ping();
    return undefined;
  } catch (err) {
    return (cause ?? (err as Error)).message || String(err);
  } finally {
    redis.disconnect();
  }
}
