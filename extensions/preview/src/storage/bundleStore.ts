import { PreviewErrorCodes } from '../api.js';
import { previewError } from '../errors.js';

export interface StoredBundle {
  key: string;
  size: number;
  /** Epoch ms. */
  modifiedAt: number;
}

/** Where bundles live: the filesystem under the data directory by default, or S3. */
export interface BundleStore {
  readonly kind: 'filesystem' | 's3';
  /** Stores a local file under `key`: all or nothing (no partial object is left behind). */
  put(key: string, file: string): Promise<StoredBundle>;
  stat(key: string): Promise<StoredBundle | undefined>;
  /** Bytes `start`..`end` inclusive (the whole object without a range). */
  read(key: string, range?: { start: number; end: number }): Promise<Buffer>;
  delete(key: string): Promise<boolean>;
  list(prefix: string): Promise<StoredBundle[]>;
  close?(): void;
}

const SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

/** `previews/<project>/<job>/bundle.zip`; ids that could leave their folder are refused. */
export function bundleKey(projectId: string, jobId: string): string {
  for (const [what, value] of [
    ['project id', projectId],
    ['job id', jobId],
  ] as const) {
    if (!SEGMENT.test(value))
      throw previewError(PreviewErrorCodes.INVALID_PROJECT_STRUCTURE, `the ${what} ${JSON.stringify(value.slice(0, 64))} cannot name a storage folder`);
  }
  return `previews/${projectId}/${jobId}/bundle.zip`;
}

/** The project and job a bundle key names, or undefined for anything else under the prefix. */
export function parseBundleKey(key: string): { projectId: string; jobId: string } | undefined {
  const m = /^previews\/([^/]+)\/([^/]+)\/bundle\.zip$/.exec(key);
  return m ? { projectId: m[1]!, jobId: m[2]! } : undefined;
}
