import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as aion from '@aion/extension-api';
import { isAionError } from '@aion/extension-api';
import type { JobContext } from '@aion/ext-jobs/client';
import type { JobRun } from '@aion/ext-jobs';
import { PreviewErrorCodes, type BuilderEntry, type BuildTimings, type BundleMetadata, type PreviewBuilder, type PreviewPlatform } from './api.js';
import { writeBundle } from './bundle.js';
import { checkout } from './checkout.js';
import type { PreviewConfiguration } from './config.js';
import { restoreDependencies } from './dependencies.js';
import { previewError } from './errors.js';
import type { PreviewMetrics } from './metrics.js';
import type { ProjectsApi } from '@aion/ext-projects';
import { bundleKey, type BundleStore } from './storage/bundleStore.js';

/** What `POST /v1/preview/build` puts on the `preview_build` queue. */
export interface PreviewJobPayload {
  project_id: string;
  user_id: string;
  tenant_id: string;
  platform: PreviewPlatform;
  git_ref: string | null;
  token_version: number;
}

/** The job's result, read by status and download. */
export interface PreviewJobResult {
  builder: string;
  bundle_key: string;
  size: number;
  sha256: string;
  files: number;
  timeout: boolean;
  /** Milliseconds per stage, and in all. */
  timings: BuildTimings;
}

export const STAGES = { checkout: 0.1, dependencies: 0.25, build: 0.5, bundle: 0.8, done: 1 } as const;

export interface BuildServiceOptions {
  dataDir: string;
  config: () => PreviewConfiguration;
  store: () => BundleStore;
  projects: () => Promise<aion.Remote<ProjectsApi>>;
  builtins: ReadonlyMap<string, PreviewBuilder>;
  metrics: PreviewMetrics;
}

export function tempDirOf(dataDir: string, jobId: string): string {
  return join(dataDir, 'tmp', `preview-job-${jobId}`);
}

export function logFileOf(dataDir: string, jobId: string): string {
  return join(dataDir, 'logs', 'preview', `${jobId}.log`);
}

/** Runs one preview build: checkout, dependencies, builder, bundle.zip, upload — in a temp dir of its own. */
export class BuildService {
  constructor(private readonly options: BuildServiceOptions) {}

  /** The builder for a project: entries in priority order, the first whose detect says yes. */
  async chooseBuilder(projectDir: string, platform: PreviewPlatform): Promise<{ entry: BuilderEntry; builder: PreviewBuilder; builtin: boolean }> {
    const entries = (await aion.contributions.list('builders'))
      .map(({ extensionId, entry }) => ({ extensionId, entry: entry as unknown as BuilderEntry }))
      .filter(({ entry }) => entry.platforms.includes(platform))
      .sort((a, b) => (b.entry.priority ?? 0) - (a.entry.priority ?? 0));
    for (const { extensionId, entry } of entries) {
      const builtin = extensionId === 'aion.preview' ? this.options.builtins.get(entry.id) : undefined;
      const builder = builtin ?? ((await aion.contributions.get<PreviewBuilder & object>('builders', entry.id)) as unknown as PreviewBuilder);
      if (await builder.detect({ projectDir, platform })) return { entry, builder, builtin: builtin !== undefined };
    }
    throw previewError(
      PreviewErrorCodes.INVALID_PROJECT_STRUCTURE,
      platform === 'web'
        ? 'no builder recognises this project for web: add an index.html (static) or a package.json with a "build" script'
        : `no builder recognises this project for ${platform}: a React Native project (react-native in package.json) or an Expo project (app.json with "expo")`,
    );
  }

  async run(job: JobRun, context: JobContext): Promise<PreviewJobResult> {
    const payload = job.payload as PreviewJobPayload;
    const { dataDir, metrics } = this.options;
    const config = this.options.config();
    const started = Date.now();
    const deadline = started + config.maxTimeoutMs;
    const temp = tempDirOf(dataDir, job.id);
    const logFile = logFileOf(dataDir, job.id);
    const abort = new AbortController();
    const cancel = context.token.onCancellationRequested(() => abort.abort());
    const run = { logFile, deadline, signal: abort.signal };
    let failure: string | null = null;
    const timings: BuildTimings = { checkout_ms: 0, dependencies_ms: 0, build_ms: 0, zip_ms: 0, upload_ms: 0, total_ms: 0 };
    let mark = Date.now();
    const lap = (stage: 'checkout' | 'dependencies' | 'build' | 'zip' | 'upload') => {
      const now = Date.now();
      timings[`${stage}_ms`] = now - mark;
      mark = now;
    };
    try {
      await rm(temp, { recursive: true, force: true });
      await mkdir(join(temp, 'out'), { recursive: true });
      await mkdir(join(dataDir, 'logs', 'preview'), { recursive: true });
      await writeFile(
        logFile,
        `preview build ${job.id}: project ${payload.project_id}, ${payload.platform}${payload.git_ref ? `, ${payload.git_ref}` : ''}\n`,
        { mode: 0o600 },
      );
      const source = join(temp, 'src');

      // A timeout in any stage still produces a bundle: the log and metadata with timeout: true.
      let timedOut = false;
      let builderId: string | null = null;
      let commit: string | null = null;
      try {
        await context.progress(STAGES.checkout, 'checkout');
        const project = await (await this.options.projects()).get(payload.project_id);
        ({ commit } = await checkout({ repository: project.path, ref: payload.git_ref ?? undefined, target: source, git: config.gitPath, run }));

        lap('checkout');
        await context.progress(STAGES.dependencies, 'dependencies');
        const { entry, builder, builtin } = await this.chooseBuilder(source, payload.platform);
        builderId = entry.id;
        const note = async (line: string) => (await context.log(line), await writeFile(logFile, `${line}\n`, { flag: 'a' }));
        await note(`builder: ${entry.id}`);
        if (entry.needsDependencies) {
          const restored = await restoreDependencies({ projectDir: source, cacheDir: join(dataDir, 'cache', 'preview_deps'), npm: config.npmPath, run });
          await note(`dependencies: ${restored.source}${restored.key ? ` (${restored.key.slice(0, 12)})` : ''}`);
        }

        lap('dependencies');
        await context.progress(STAGES.build, 'build');
        const request = {
          jobId: job.id,
          projectId: payload.project_id,
          projectDir: source,
          outputDir: join(temp, 'out'),
          platform: payload.platform,
          options: config.builders[entry.id] ?? {},
          deadline,
          logFile,
        };
        await withDeadline(Promise.resolve(builder.build(request, builtin ? { signal: abort.signal } : undefined)), deadline, abort);
      } catch (err) {
        if (!(isAionError(err) && err.code === PreviewErrorCodes.PREVIEW_TIMEOUT)) throw err;
        timedOut = true;
      }

      lap('build');
      await context.progress(STAGES.bundle, 'bundle');
      const metadata: BundleMetadata = {
        job_id: job.id,
        project_id: payload.project_id,
        platform: payload.platform,
        builder: builderId,
        built_at: new Date().toISOString(),
        token_version: payload.token_version,
        timeout: timedOut,
        git_ref: payload.git_ref,
        commit,
      };
      if (timedOut) await writeFile(logFile, `\nPREVIEW_TIMEOUT: the build ran past ${config.maxTimeoutMs} ms; its process group was killed\n`, { flag: 'a' });
      const zip = await writeBundle({ zipPath: join(temp, 'bundle.zip'), artifactsDir: join(temp, 'out'), metadata, logFile });
      lap('zip');
      const key = bundleKey(payload.project_id, job.id);
      try {
        await this.options.store().put(key, zip.path);
      } catch (err) {
        metrics.uploadFailed();
        throw isAionError(err) ? err : previewError(PreviewErrorCodes.STORAGE_UPLOAD_FAILED, `the bundle could not be stored: ${(err as Error).message}`);
      }
      lap('upload');
      if (timedOut)
        throw previewError(
          PreviewErrorCodes.PREVIEW_TIMEOUT,
          `the preview build ran past ${config.maxTimeoutMs} ms (PREVIEW_MAX_TIMEOUT_MS); its processes were killed. The bundle holds the log and metadata with timeout: true`,
        );
      await context.progress(STAGES.done, 'done');
      timings.total_ms = Date.now() - started;
      return { builder: builderId!, bundle_key: key, size: zip.size, sha256: zip.sha256, files: zip.files, timeout: false, timings };
    } catch (err) {
      const error = isAionError(err) ? err : previewError(PreviewErrorCodes.PREVIEW_BUILD_FAILED, `the preview build failed: ${(err as Error).message}`);
      failure = String(error.code);
      await writeFile(logFile, `\n${error.code}: ${error.message}\n`, { flag: 'a' }).catch(() => undefined);
      throw error;
    } finally {
      cancel.dispose();
      abort.abort();
      metrics.buildFinished((Date.now() - started) / 1000, failure);
      await rm(temp, { recursive: true, force: true }).catch(() => undefined);
    }
  }
}

/** A plug-in builder may run in another host and cannot be killed from here: the deadline still ends the build. */
function withDeadline<T>(work: Promise<T>, deadline: number, abort: AbortController): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => {
        abort.abort();
        reject(previewError(PreviewErrorCodes.PREVIEW_TIMEOUT, 'the preview build ran past its time limit'));
      },
      Math.max(0, deadline - Date.now()),
    );
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
