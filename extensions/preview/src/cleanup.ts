import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { JobView } from '@aion/ext-jobs';
import { logFileOf } from './buildService.js';
import type { PreviewConfiguration } from './config.js';
import { parseBundleKey, type BundleStore } from './storage/bundleStore.js';

export interface CleanupReport {
  expired_bundles: number;
  orphaned_objects: number;
  stale_temp_dirs: number;
  old_logs: number;
}

const FINAL = new Set(['success', 'failed', 'canceled']);

/**
 * Housekeeping, run on the `preview_cleanup` queue: bundles past `bundleRetentionMs`, bundles whose job
 * is gone (orphans), temp folders of jobs that are no longer running, build logs past `logRetentionMs`.
 */
export async function cleanUp(options: {
  dataDir: string;
  config: PreviewConfiguration;
  store: BundleStore;
  job: (id: string) => Promise<JobView | null>;
  now?: number;
}): Promise<CleanupReport> {
  const { dataDir, config, store, job } = options;
  const now = options.now ?? Date.now();
  const report: CleanupReport = { expired_bundles: 0, orphaned_objects: 0, stale_temp_dirs: 0, old_logs: 0 };

  for (const object of await store.list('previews/')) {
    const parsed = parseBundleKey(object.key);
    if (object.modifiedAt < now - config.bundleRetentionMs) {
      if (await store.delete(object.key)) report.expired_bundles++;
    } else if (!parsed || (await job(parsed.jobId)) === null) {
      if (await store.delete(object.key)) report.orphaned_objects++;
    }
  }

  const tmp = join(dataDir, 'tmp');
  for (const name of await readdir(tmp).catch(() => [] as string[])) {
    const m = /^preview-job-(.+)$/.exec(name);
    if (!m) continue;
    const view = await job(m[1]!);
    const path = join(tmp, name);
    const age =
      now -
      (await stat(path).then(
        (s) => s.mtimeMs,
        () => now,
      ));
    // A running job's folder stays, unless it has not been touched for far longer than a build may take.
    const dead = view === null || FINAL.has(view.status) || view.status === 'queued' || age > Math.max(config.staleTempAfterMs, config.maxTimeoutMs * 2);
    if (dead) {
      await rm(path, { recursive: true, force: true });
      report.stale_temp_dirs++;
    }
  }

  const logs = join(dataDir, 'logs', 'preview');
  for (const name of await readdir(logs).catch(() => [] as string[])) {
    if (!name.endsWith('.log')) continue;
    const path = logFileOf(dataDir, name.slice(0, -'.log'.length));
    const mtime = await stat(path).then(
      (s) => s.mtimeMs,
      () => now,
    );
    if (mtime < now - config.logRetentionMs) {
      await rm(path, { force: true });
      report.old_logs++;
    }
  }
  return report;
}
