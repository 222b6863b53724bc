import type { BackendKind, WorkerType } from './api.js';
import type { ScalePolicy } from './autoscaler.js';
import type { QueueOverride } from './queues.js';

/**
 * This extension's section as the kernel hands it over: validated against the manifest's schema, which
 * fills in every default (one home for them; `aion config` and the docs read the same).
 */
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
