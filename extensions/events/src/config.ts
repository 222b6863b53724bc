export interface SinkConfiguration {
  type: string;
  enabled: boolean;
  types?: string[];
  tenants?: string[];
  url?: string;
  secret?: string;
  headers?: Record<string, string>;
  servers?: string[];
  subjectPrefix?: string;
  timeoutMs: number;
  options?: Record<string, unknown>;
}

export interface EventsConfiguration {
  sinks: Record<string, SinkConfiguration>;
  retry: { initialDelayMs: number; maxDelayMs: number };
  deadLetterAfterAttempts: number;
  retentionMs: number;
  batchSize: number;
  pollIntervalMs: number;
  leaseMs: number;
}

/** The kernel validated the section against the manifest schema; this fills in the defaults of nested objects. */
export function readConfiguration(raw: Record<string, unknown> | undefined): EventsConfiguration {
  const c = (raw ?? {}) as Partial<EventsConfiguration> & { sinks?: Record<string, Partial<SinkConfiguration>> };
  const sinks: Record<string, SinkConfiguration> = {};
  for (const [name, s] of Object.entries(c.sinks ?? {})) sinks[name] = { ...s, type: s.type!, enabled: s.enabled ?? true, timeoutMs: s.timeoutMs ?? 10_000 };
  return {
    sinks,
    retry: { initialDelayMs: c.retry?.initialDelayMs ?? 500, maxDelayMs: c.retry?.maxDelayMs ?? 60_000 },
    deadLetterAfterAttempts: c.deadLetterAfterAttempts ?? 0,
    retentionMs: c.retentionMs ?? 7 * 24 * 3_600_000,
    batchSize: c.batchSize ?? 100,
    pollIntervalMs: c.pollIntervalMs ?? 1000,
    leaseMs: c.leaseMs ?? 30_000,
  };
}

/** Whether a sink's filters let an event through: types are exact ids or prefixes ending in `.*`. */
export function sinkAccepts(sink: SinkConfiguration, type: string, tenant: string): boolean {
  if (sink.tenants && !sink.tenants.includes(tenant)) return false;
  if (!sink.types) return true;
  return sink.types.some((t) => t === '*' || t === type || (t.endsWith('.*') && type.startsWith(t.slice(0, -1))));
}

/** Capped exponential backoff with a little jitter, so many kernels do not retry in step. */
export function backoffDelay(attempts: number, retry: { initialDelayMs: number; maxDelayMs: number }): number {
  const base = Math.min(retry.maxDelayMs, retry.initialDelayMs * 2 ** Math.min(30, Math.max(0, attempts - 1)));
  return Math.round(base * (0.8 + Math.random() * 0.2));
}
