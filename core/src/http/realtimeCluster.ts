import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import type { Server as SocketServer } from 'socket.io';
import { AionError, ErrorCodes, maskUrlPassword } from '@aion/extension-api';
import type { Logger } from '../logging.js';

const CONNECT_TIMEOUT_MS = 5_000;

/**
 * Joins this kernel's socket.io server to the others on the same Redis, so a publication made on one
 * kernel reaches clients connected to any (`@socket.io/redis-adapter`: one pub and one sub connection).
 * Refuses to start when Redis does not answer: several kernels silently not sharing is worse than none.
 */
export async function joinRealtimeCluster(io: SocketServer, url: string, logger: Logger): Promise<{ close(): Promise<void> }> {
  const masked = maskUrlPassword(url);
  const pub = new Redis(url, { lazyConnect: true, connectTimeout: CONNECT_TIMEOUT_MS, maxRetriesPerRequest: 2 });
  const sub = pub.duplicate();
  for (const client of [pub, sub])
    client.on('error', (err: Error) => logger.warn({ err: err.message, redis: masked }, 'realtime Redis connection error; retrying'));
  try {
    await Promise.all([pub.connect(), sub.connect()]);
  } catch (err) {
    pub.disconnect();
    sub.disconnect();
    throw new AionError(
      ErrorCodes.CONFIG_INVALID,
      `server.redisUrl ${masked} does not answer (${(err as Error).message}): start Redis or remove the setting (AION_REDIS_URL)`,
      { status: 503 },
    );
  }
  io.adapter(createAdapter(pub, sub, { key: 'aion:realtime' }));
  logger.info({ redis: masked }, 'socket.io publications are shared through Redis');
  return {
    close: async () => {
      await Promise.allSettled([pub.quit(), sub.quit()]);
    },
  };
}
