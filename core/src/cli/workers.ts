import cluster, { type Worker } from 'node:cluster';
import { withKernelFlags } from './nodeFlags.js';
import { availableParallelism } from 'node:os';
import { AionError, ErrorCodes } from '@aion/extension-api';
import type { Logger } from '../logging.js';

/** The environment variable that tells a worker which one it is (0 owns the local control channel). */
export const WORKER_INDEX_ENV = 'AION_WORKER_INDEX';

const MAX_WORKERS = 256;
/** A worker that exits this often within the window takes the whole server down instead of looping. */
const MAX_CRASHES = 5;
const CRASH_WINDOW_MS = 60_000;
const RESTART_DELAY_MS = 1_000;

/**
 * `--workers N|auto`: how many kernel processes serve the port. Without the flag: one, or every CPU
 * when `NODE_ENV=production`.
 */
export function workerCount(value: unknown, env: NodeJS.ProcessEnv = process.env): number {
  const asked = value ?? (env.NODE_ENV === 'production' ? 'auto' : '1');
  if (asked === 'auto') return availableParallelism();
  const n = Number(asked);
  if (!Number.isInteger(n) || n < 1 || n > MAX_WORKERS)
    throw new AionError(ErrorCodes.CONFIG_INVALID, `--workers must be "auto" or a whole number from 1 to ${MAX_WORKERS}, not "${String(asked)}"`);
  return n;
}

/** Which worker this process is, or undefined outside a cluster. */
export function workerIndex(): number | undefined {
  if (!cluster.isWorker) return undefined;
  return Number(process.env[WORKER_INDEX_ENV] ?? 0);
}

/** What several kernels do not share unless Redis is configured, said once at start so nobody assumes it. */
function sharingNotice(count: number, env: NodeJS.ProcessEnv): string {
  const perWorker = [
    'live task streams and their cancellation unless extensions["aion.router"].redisUrl is set (without it a client that reconnects to another worker gets the final event once the task is stored, and cancel there answers 409)',
    'circuit breakers and latency windows unless the router has its redisUrl',
    'skill rate buckets unless extensions["aion.skills"].rateLimit.redisUrl is set',
    "MCP sessions' GET event streams (the sessions themselves are shared through aion.storage)",
    'durable tasks unless AION_REDIS_URL is set (without it no kernel can tell that another died, so none takes its tasks over)',
    "devices' connections",
  ];
  if (!env.AION_REDIS_URL) perWorker.unshift('rate limits, access-token revocations and socket.io publications (set AION_REDIS_URL to share them)');
  const shared = env.AION_REDIS_URL ? 'the database, and through Redis rate limits, access-token revocations and socket.io publications' : 'the database';
  return `${count} workers serve one port, each with its own extension hosts; they share ${shared}. Kept per worker: ${perWorker.join('; ')}`;
}

/**
 * The primary of `aion serve --workers N`: starts worker 0 first (it runs migrations and creates the
 * first admin, so the others find them done), then the rest; replaces a worker that dies; on SIGTERM or
 * SIGINT lets every worker drain and exits 0 when they have. Resolves once every worker listens.
 */
export async function superviseWorkers(count: number, logger: Logger, announce: (url: string) => void): Promise<void> {
  const env = process.env;
  logger.warn(sharingNotice(count, env));
  let stopping = false;
  const crashes: number[] = [];
  const slots = new Map<Worker, number>();
  cluster.setupPrimary({ execArgv: withKernelFlags(process.execArgv) });

  const fork = (index: number): Promise<{ address: string; port: number }> =>
    new Promise((resolve, reject) => {
      const worker = cluster.fork({ [WORKER_INDEX_ENV]: String(index) });
      slots.set(worker, index);
      worker.once('listening', (address) => resolve({ address: address.address ?? '127.0.0.1', port: address.port }));
      worker.once('exit', (code, signal) => {
        slots.delete(worker);
        reject(new AionError(ErrorCodes.INTERNAL, `worker ${index} exited before it listened (${signal ?? `code ${code}`})`));
        if (stopping) return;
        const now = Date.now();
        crashes.push(now);
        while (crashes.length > 0 && crashes[0]! < now - CRASH_WINDOW_MS) crashes.shift();
        if (crashes.length >= MAX_CRASHES) {
          logger.error(`workers exited ${crashes.length} times within ${CRASH_WINDOW_MS / 1000} s: stopping the server`);
          void stop('crash loop', 1);
          return;
        }
        logger.error({ worker: index, code, signal }, `worker ${index} exited; starting a replacement in ${RESTART_DELAY_MS} ms`);
        setTimeout(() => {
          if (!stopping) fork(index).catch(() => undefined);
        }, RESTART_DELAY_MS).unref();
      });
    });

  const stop = async (why: string, exitCode = 0) => {
    if (stopping) return;
    stopping = true;
    logger.info(`${why}: draining ${slots.size} workers`);
    const exits = [...slots.keys()].map(
      (worker) =>
        new Promise<void>((resolve) => {
          if (worker.isDead()) return resolve();
          worker.once('exit', () => resolve());
          worker.process.kill('SIGTERM');
        }),
    );
    await Promise.all(exits);
    process.exit(exitCode);
  };
  process.on('SIGTERM', () => void stop('SIGTERM received'));
  process.on('SIGINT', () => void stop('SIGINT received'));

  try {
    const first = await fork(0);
    await Promise.all(Array.from({ length: count - 1 }, (_, i) => fork(i + 1)));
    const host = first.address.includes(':') ? `[${first.address}]` : first.address;
    announce(`http://${host}:${first.port}`);
  } catch (err) {
    stopping = true;
    for (const worker of slots.keys()) worker.process.kill('SIGTERM');
    throw err;
  }
}
