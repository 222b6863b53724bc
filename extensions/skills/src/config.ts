import { resolve } from 'node:path';
import type { McpServerConfig } from './mcp/client.js';
import type { QuarantineOptions } from './quarantine.js';
import type { RateLimitOptions } from './rateLimiter.js';
import type { SkillLimits } from './types.js';

export interface SkillsConfig {
  trustedKeys: Array<string | { name?: string; publicKey: string }>;
  packsDir: string;
  quarantineDir: string;
  watch: boolean;
  disabled: string[];
  maxInputBytes: number;
  limits: { defaults: SkillLimits; max: SkillLimits };
  rateLimit: RateLimitOptions;
  wasm: { workers?: number; spareWorkers?: number; workerHeapMb?: number; workerStackMb?: number };
  quarantine: QuarantineOptions;
  mcp: { allowedOrigins: string[]; sessionIdleMs: number; maxSessions: number };
  mcpServers: Record<string, McpServerConfig>;
  apiCallers: string[];
}

export const DEFAULT_LIMITS: SkillLimits = { timeout_ms: 5_000, memory_pages: 256, memory_bytes: 256 * 1024 * 1024, max_output_bytes: 1024 * 1024 };
export const MAX_LIMITS: SkillLimits = { timeout_ms: 120_000, memory_pages: 4096, memory_bytes: 2 * 1024 * 1024 * 1024, max_output_bytes: 16 * 1024 * 1024 };

/**
 * `ctx.storagePath` is `<data dir>/storage/aion.skills`, so the data directory is two levels up:
 * packs live in `<data dir>/skills/<pack>` and refused packs in `<data dir>/quarantine`.
 */
export function dataDirOf(storagePath: string): string {
  return resolve(storagePath, '..', '..');
}

export function resolveConfig(raw: Record<string, any>, storagePath: string): SkillsConfig {
  const dataDir = dataDirOf(storagePath);
  return {
    trustedKeys: raw.trustedKeys ?? [],
    packsDir: resolve(dataDir, raw.packsDir ?? 'skills'),
    quarantineDir: resolve(dataDir, raw.quarantineDir ?? 'quarantine'),
    watch: raw.watch ?? true,
    disabled: raw.disabled ?? [],
    maxInputBytes: raw.maxInputBytes ?? 1024 * 1024,
    limits: {
      defaults: { ...DEFAULT_LIMITS, ...raw.limits?.defaults },
      max: { ...MAX_LIMITS, ...raw.limits?.max },
    },
    rateLimit: {
      enabled: raw.rateLimit?.enabled ?? true,
      capacity: raw.rateLimit?.capacity ?? 120,
      refillPerSecond: raw.rateLimit?.refillPerSecond ?? 20,
      redisUrl: raw.rateLimit?.redisUrl,
      redisPrefix: raw.rateLimit?.redisPrefix ?? 'aion:skills',
    },
    wasm: { ...raw.wasm },
    quarantine: { enabled: raw.quarantine?.enabled ?? true, maxFailures: raw.quarantine?.maxFailures ?? 3, windowMs: raw.quarantine?.windowMs ?? 300_000 },
    mcp: { allowedOrigins: raw.mcp?.allowedOrigins ?? [], sessionIdleMs: raw.mcp?.sessionIdleMs ?? 30 * 60_000, maxSessions: raw.mcp?.maxSessions ?? 1000 },
    mcpServers: raw.mcpServers ?? {},
    apiCallers: raw.apiCallers ?? ['aion.router', 'aion.devices'],
  };
}

/** A skill's limits: its own over the defaults, each capped by the maximum. */
export function effectiveLimits(declared: Partial<SkillLimits> | undefined, config: SkillsConfig['limits']): SkillLimits {
  const out = { ...config.defaults };
  for (const key of Object.keys(out) as Array<keyof SkillLimits>) {
    const value = declared?.[key] ?? config.defaults[key];
    out[key] = Math.min(value, config.max[key]);
  }
  return out;
}
