export interface S3Configuration {
  bucket: string;
  region: string;
  endpoint?: string;
  forcePathStyle: boolean;
  retries: number;
  retryDelayMs: number;
}

export interface PreviewConfiguration {
  tokenTtlSeconds: number;
  tokenVersion: number;
  maxTimeoutMs: number;
  storage: { backend: 'filesystem' | 's3'; s3?: S3Configuration };
  builders: Record<string, Record<string, unknown>>;
  bundleRetentionMs: number;
  logRetentionMs: number;
  staleTempAfterMs: number;
  cleanupIntervalMs: number;
  npmPath: string;
  gitPath: string;
}

/** The section with defaults filled in; `PREVIEW_MAX_TIMEOUT_MS` in the kernel's environment wins over `maxTimeoutMs`. */
export function readConfiguration(section: Record<string, any> = {}, env: NodeJS.ProcessEnv = process.env): PreviewConfiguration {
  const fromEnv = Number(env.PREVIEW_MAX_TIMEOUT_MS);
  const s3 = section.storage?.s3;
  return {
    tokenTtlSeconds: section.tokenTtlSeconds ?? 300,
    tokenVersion: section.tokenVersion ?? 1,
    maxTimeoutMs: Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : (section.maxTimeoutMs ?? 900_000),
    storage: {
      backend: section.storage?.backend ?? 'filesystem',
      s3: s3 ? { region: 'us-east-1', forcePathStyle: true, retries: 3, retryDelayMs: 200, ...s3 } : undefined,
    },
    builders: section.builders ?? {},
    bundleRetentionMs: section.bundleRetentionMs ?? 7 * 86_400_000,
    logRetentionMs: section.logRetentionMs ?? 14 * 86_400_000,
    staleTempAfterMs: section.staleTempAfterMs ?? 3_600_000,
    cleanupIntervalMs: section.cleanupIntervalMs ?? 3_600_000,
    npmPath: section.npmPath ?? 'npm',
    gitPath: section.gitPath ?? 'git',
  };
}
