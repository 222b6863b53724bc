/**
 * The public API of `aion.preview` and the `builders` contract, for `import type` by other extensions:
 *
 *   // package.json: "contributes": { "builders": [{ "id": "acme-vite", "platforms": ["web"], "priority": 50 }] }
 *   aion.contributions.register('builders', 'acme-vite', { detect, build } satisfies PreviewBuilder);
 */

export type PreviewPlatform = 'ios' | 'android' | 'web';
export const PREVIEW_PLATFORMS: readonly PreviewPlatform[] = ['ios', 'android', 'web'];

/** What a builder is asked: the checked-out project, the platform, where to put its output. */
export interface BuildRequest {
  jobId: string;
  projectId: string;
  /** Absolute path of the checked-out sources (dependencies already restored when `needsDependencies`). */
  projectDir: string;
  /** An empty folder: everything written here ends up in the bundle under `artifacts/`. */
  outputDir: string;
  platform: PreviewPlatform;
  /** `extensions["aion.preview"].builders.<id>` from the configuration. */
  options: Record<string, unknown>;
  /** Epoch ms past which the build is killed (`PREVIEW_TIMEOUT`). */
  deadline: number;
  /** A file the builder appends its tools' output to; it becomes `build.log` in the bundle. */
  logFile: string;
}

/** The implementation a `builders` entry registers. Only data crosses: paths, not handles. */
export interface PreviewBuilder {
  /** Whether this builder recognises the project (called in the entries' priority order; the first yes wins). */
  detect(input: { projectDir: string; platform: PreviewPlatform }): boolean | Promise<boolean>;
  /** Writes the artifacts into `outputDir`; throws an AionError with one of PreviewErrorCodes. */
  build(request: BuildRequest, token?: unknown): void | Promise<void>;
}

/** A `builders` manifest entry. */
export interface BuilderEntry {
  id: string;
  description?: string;
  platforms: PreviewPlatform[];
  /** Higher is asked first (the built-ins: expo 40, react-native 30, npm-script 20, static 0). */
  priority?: number;
  /** Whether `node_modules` must be restored before `build` (default false). */
  needsDependencies?: boolean;
}

export type PreviewBuildStatus = 'queued' | 'running' | 'success' | 'failed' | 'canceled';

export interface PreviewStatus {
  job_id: string;
  project_id: string;
  platform: PreviewPlatform;
  status: PreviewBuildStatus;
  stage: string | null;
  progress: number;
  error: { code: string; message: string } | null;
  builder: string | null;
  bundle: { size: number; sha256: string; files: number } | null;
  /** Milliseconds per stage of a successful build. */
  timings: BuildTimings | null;
  created_at: string;
  finished_at: string | null;
}

export interface BuildTimings {
  checkout_ms: number;
  dependencies_ms: number;
  build_ms: number;
  zip_ms: number;
  upload_ms: number;
  total_ms: number;
}

/** `metadata.json` inside every bundle. */
export interface BundleMetadata {
  job_id: string;
  project_id: string;
  platform: PreviewPlatform;
  /** null when the build timed out before a builder was chosen. */
  builder: string | null;
  built_at: string;
  token_version: number;
  timeout: boolean;
  git_ref: string | null;
  commit: string | null;
}

export interface PreviewApi {
  /** Issues a token as `POST /v1/preview/token` does, for the given user (privileged). */
  issueToken(input: { project_id: string; platform: PreviewPlatform; user_id: string; tenant_id?: string }): Promise<{ token: string; expires_at: string }>;
  /** The counters behind `preview_*` metrics. */
  metrics(): PreviewMetricsSnapshot;
}

export interface PreviewMetricsSnapshot {
  build_success_total: number;
  build_failures_total: Record<string, number>;
  upload_failures_total: number;
  /** Build durations in seconds (`preview_build_time_seconds` has the histogram). */
  build_time_seconds: { sum: number; count: number };
}

/** The `preview.telemetry` event (aion.observability exports it as `aion_preview_*`): what happened since the last one. */
export interface PreviewTelemetry {
  builds: Array<{ seconds: number; outcome: 'success' | 'failure'; code: string | null }>;
  uploadFailures: number;
}

export const PreviewErrorCodes = {
  PREVIEW_TOKEN_INVALID: 'PREVIEW_TOKEN_INVALID',
  PREVIEW_TOKEN_EXPIRED: 'PREVIEW_TOKEN_EXPIRED',
  PREVIEW_TOKEN_WRONG_PLATFORM: 'PREVIEW_TOKEN_WRONG_PLATFORM',
  PREVIEW_TOKEN_MISMATCH: 'PREVIEW_TOKEN_MISMATCH',
  PREVIEW_NOT_CONFIGURED: 'PREVIEW_NOT_CONFIGURED',
  PREVIEW_TIMEOUT: 'PREVIEW_TIMEOUT',
  PREVIEW_BUILD_FAILED: 'PREVIEW_BUILD_FAILED',
  MISSING_DEPENDENCIES: 'MISSING_DEPENDENCIES',
  INVALID_PROJECT_STRUCTURE: 'INVALID_PROJECT_STRUCTURE',
  INVALID_GIT_REF: 'INVALID_GIT_REF',
  STORAGE_UPLOAD_FAILED: 'STORAGE_UPLOAD_FAILED',
  BUNDLE_NOT_READY: 'BUNDLE_NOT_READY',
  RANGE_NOT_SATISFIABLE: 'RANGE_NOT_SATISFIABLE',
} as const;

/** The HTTP status of each code, in one place. */
export const PreviewErrorStatus: Record<string, number> = {
  PREVIEW_TOKEN_INVALID: 401,
  PREVIEW_TOKEN_EXPIRED: 401,
  PREVIEW_TOKEN_WRONG_PLATFORM: 401,
  PREVIEW_TOKEN_MISMATCH: 401,
  PREVIEW_NOT_CONFIGURED: 503,
  PREVIEW_TIMEOUT: 504,
  PREVIEW_BUILD_FAILED: 422,
  MISSING_DEPENDENCIES: 422,
  INVALID_PROJECT_STRUCTURE: 422,
  INVALID_GIT_REF: 400,
  STORAGE_UPLOAD_FAILED: 502,
  BUNDLE_NOT_READY: 409,
  RANGE_NOT_SATISFIABLE: 416,
};
