import type { ProviderSettings } from './providers/catalog.js';
import type { CircuitOptions } from './providers/health.js';
import type { ScoringWeights } from './decision/decision.js';
import type { Priority, Privacy } from './types.js';

/** `extensions["aion.router"]`, with every default filled in. */
export interface RouterConfiguration {
  policyFile?: string;
  policies?: unknown;
  defaults: { intent: string; privacy: Privacy; priority: Priority; timeoutMs: number; maxTimeoutMs: number; maxWaitMs: number; outputTokens: number };
  limits: { providerConcurrency: number; keyConcurrency: number; maxRunningTasks: number; maxQueuedTasks: number; retryAfterSeconds: number };
  circuitBreaker: CircuitOptions;
  scoring: ScoringWeights;
  providers: Record<string, ProviderSettings>;
  autoDetect: { enabled: boolean; probeTimeoutMs: number; reprobeMs: number };
  /** Skills as tools: the tool loop's step limit (default and ceiling of a request's max_steps) and how many skills one request may offer. */
  skills: { maxSteps: number; maxTools: number };
  idempotencyTtlMs: number;
  eventRetentionMs: number;
  taskRetentionMs: number;
  /** Redis shared by several kernels: live task events and cancels reach every kernel. */
  redisUrl?: string;
  /** Prefix of the Redis keys and channel, one per deployment on a shared Redis. */
  redisPrefix: string;
  /** How often a kernel looks for unfinished tasks of kernels that stopped (`aion.cluster`); 0 turns durable tasks off. */
  durableTasks: { checkIntervalMs: number };
  /** With `redisUrl`: how often each kernel shares the latencies it measured; 0 keeps them to itself. */
  latencyShareMs: number;
}

export function readConfiguration(raw: Record<string, any> | undefined): RouterConfiguration {
  const c = raw ?? {};
  const d = c.defaults ?? {};
  const l = c.limits ?? {};
  const b = c.circuitBreaker ?? {};
  const s = c.scoring ?? {};
  const a = c.autoDetect ?? {};
  const k = c.skills ?? {};
  return {
    policyFile: c.policyFile,
    policies: c.policies,
    defaults: {
      intent: d.intent ?? 'chat',
      privacy: d.privacy ?? 'hybrid',
      priority: d.priority ?? 'normal',
      timeoutMs: d.timeoutMs ?? 120_000,
      maxTimeoutMs: d.maxTimeoutMs ?? 600_000,
      maxWaitMs: d.maxWaitMs ?? 300_000,
      outputTokens: d.outputTokens ?? 512,
    },
    limits: {
      providerConcurrency: l.providerConcurrency ?? 256,
      keyConcurrency: l.keyConcurrency ?? 0,
      maxRunningTasks: l.maxRunningTasks ?? 1024,
      maxQueuedTasks: l.maxQueuedTasks ?? 4096,
      retryAfterSeconds: l.retryAfterSeconds ?? 1,
    },
    circuitBreaker: { failureThreshold: b.failureThreshold ?? 5, openMs: b.openMs ?? 30_000, maxOpenMs: b.maxOpenMs ?? 300_000 },
    scoring: { capability: s.capability ?? 0.4, cost: s.cost ?? 0.2, latency: s.latency ?? 0.2, tier: s.tier ?? 0.2 },
    providers: c.providers ?? {},
    autoDetect: { enabled: a.enabled ?? true, probeTimeoutMs: a.probeTimeoutMs ?? 3_000, reprobeMs: a.reprobeMs ?? 60_000 },
    skills: { maxSteps: k.maxSteps ?? 8, maxTools: k.maxTools ?? 64 },
    idempotencyTtlMs: c.idempotencyTtlMs ?? 900_000,
    eventRetentionMs: c.eventRetentionMs ?? 900_000,
    taskRetentionMs: c.taskRetentionMs ?? 7 * 24 * 3_600_000,
    redisUrl: c.redisUrl,
    redisPrefix: c.redisPrefix ?? 'aion:router',
    durableTasks: { checkIntervalMs: c.durableTasks?.checkIntervalMs ?? 5_000 },
    latencyShareMs: c.latencyShareMs ?? 1_000,
  };
}
