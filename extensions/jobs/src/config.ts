import type { BackendKind, WorkerType } from './api.js';
import type { ScalePolicy } from './autoscaler.js';
import type { QueueOverride } from './queues.js';

export interface JobsConfiguration {
  backend: BackendKind;
  redisUrl?: string;
  redisPrefix: string;
  inProcessWorkers: { enabled: boolean; types: WorkerType[]; startDelayMs: number };
  queues: Record<string, QueueOverride>;
  enqueueGrants: Record<string, string[]>;
  leaseMs: number;
  pollIntervalMs: number;
  heartbeatIntervalMs: number;
  unresponsiveAfterMs: number;
  retentionMs: number;
  maxLogLines: number;
  retryAfterSeconds: number;
  autoscaler: ScalePolicy & { enabled: boolean; action: string; pollIntervalMs: number; queues?: string[]; concurrency: number };
}

/** The section as the kernel validated it (schema defaults applied), with the same defaults again for safety. */
export function readConfiguration(raw: Record<string, unknown> | undefined): JobsConfiguration {
  const c = (raw ?? {}) as Partial<JobsConfiguration>;
  const workers = (c.inProcessWorkers ?? {}) as Partial<JobsConfiguration['inProcessWorkers']>;
  const scaler = (c.autoscaler ?? {}) as Partial<JobsConfiguration['autoscaler']>;
  return {
    backend: c.backend ?? 'embedded',
    redisUrl: c.redisUrl,
    redisPrefix: c.redisPrefix ?? 'aion',
    inProcessWorkers: { enabled: workers.enabled ?? true, types: workers.types ?? ['cpu', 'cleanup'], startDelayMs: workers.startDelayMs ?? 1000 },
    queues: c.queues ?? {},
    enqueueGrants: c.enqueueGrants ?? {},
    leaseMs: c.leaseMs ?? 30_000,
    pollIntervalMs: c.pollIntervalMs ?? 200,
    heartbeatIntervalMs: c.heartbeatIntervalMs ?? 5000,
    unresponsiveAfterMs: c.unresponsiveAfterMs ?? 120_000,
    retentionMs: c.retentionMs ?? 604_800_000,
    maxLogLines: c.maxLogLines ?? 1000,
    retryAfterSeconds: c.retryAfterSeconds ?? 5,
    autoscaler: {
      enabled: scaler.enabled ?? false,
      action: scaler.action ?? 'local',
      pollIntervalMs: scaler.pollIntervalMs ?? 15_000,
      minWorkers: scaler.minWorkers ?? 0,
      maxWorkers: scaler.maxWorkers ?? 4,
      scaleUpDepth: scaler.scaleUpDepth ?? 20,
      scaleDownDepth: scaler.scaleDownDepth ?? 2,
      queues: scaler.queues,
      concurrency: scaler.concurrency ?? 2,
    },
  };
}
