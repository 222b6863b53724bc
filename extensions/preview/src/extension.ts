import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as aion from '@aion/extension-api';
import { AionError, ErrorCodes, type HttpRequestData, type Principal } from '@aion/extension-api';
import type { JobView } from '@aion/ext-jobs';
import { jobsApi, processQueue } from '@aion/ext-jobs/client';
import { PREVIEW_PLATFORMS, PreviewErrorCodes, type PreviewApi, type PreviewBuilder, type PreviewPlatform, type PreviewStatus } from './api.js';
import { expoBuilder } from './builders/expo.js';
import { npmScriptBuilder } from './builders/npmScript.js';
import { reactNativeBuilder } from './builders/reactNative.js';
import { staticBuilder } from './builders/static.js';
import { BuildService, logFileOf, type PreviewJobPayload, type PreviewJobResult } from './buildService.js';
import { validateGitRef } from './checkout.js';
import { cleanUp } from './cleanup.js';
import { readConfiguration, type PreviewConfiguration } from './config.js';
import { parseRange } from './download.js';
import { previewError } from './errors.js';
import { PreviewMetrics } from './metrics.js';
import { projectsApi } from './projects.js';
import { bundleKey, type BundleStore } from './storage/bundleStore.js';
import { FileSystemBundleStore } from './storage/fileSystemStore.js';
import { S3BundleStore } from './storage/s3Store.js';
import { PreviewTokens, type PreviewClaims } from './tokens.js';

const SECRET_NAME = 'AION_PREVIEW_SECRET';

/** The signing secret: AION_PREVIEW_SECRET, else one generated once and kept (0600) in this extension's storage folder. */
async function previewSecret(ctx: aion.ExtensionContext): Promise<Buffer> {
  const configured = await ctx.secrets.get(SECRET_NAME);
  if (configured !== undefined) {
    if (configured.length < 32) throw new AionError(ErrorCodes.CONFIG_INVALID, `${SECRET_NAME} must be at least 32 characters long`);
    return Buffer.from(configured);
  }
  const file = join(ctx.storagePath, 'preview-secret');
  try {
    return Buffer.from((await readFile(file, 'utf8')).trim());
  } catch {
    await mkdir(ctx.storagePath, { recursive: true });
    const secret = randomBytes(32).toString('base64url');
    // 'wx': when two kernels start together, the first write wins and the second reads it.
    await writeFile(file, secret, { mode: 0o600, flag: 'wx' }).catch(() => undefined);
    return Buffer.from((await readFile(file, 'utf8')).trim());
  }
}

async function openStore(ctx: aion.ExtensionContext, config: PreviewConfiguration, dataDir: string): Promise<BundleStore> {
  if (config.storage.backend !== 's3') return new FileSystemBundleStore(dataDir);
  const s3 = config.storage.s3;
  if (!s3?.bucket) throw new AionError(ErrorCodes.CONFIG_INVALID, 'extensions["aion.preview"].storage.backend is "s3" but storage.s3.bucket is not set');
  return new S3BundleStore(
    { ...s3, accessKeyId: await ctx.secrets.get('PREVIEW_S3_ACCESS_KEY_ID'), secretAccessKey: await ctx.secrets.get('PREVIEW_S3_SECRET_ACCESS_KEY') },
    (line) => ctx.logger.warn(line),
  );
}

function bodyOf(req: HttpRequestData): Record<string, unknown> {
  const body = req.body;
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new AionError(ErrorCodes.VALIDATION_FAILED, 'send a JSON object');
  return body as Record<string, unknown>;
}

function platformOf(value: unknown, field: string): PreviewPlatform {
  if (typeof value !== 'string' || !PREVIEW_PLATFORMS.includes(value as PreviewPlatform))
    throw new AionError(ErrorCodes.VALIDATION_FAILED, `${field} is one of ${PREVIEW_PLATFORMS.join(', ')}`);
  return value as PreviewPlatform;
}

const isAdmin = (p: Principal | undefined) => Boolean(p?.scopes?.includes('*') || p?.scopes?.includes('preview:admin'));

export async function activate(ctx: aion.ExtensionContext): Promise<PreviewApi> {
  const config = readConfiguration(ctx.configuration.get<Record<string, unknown>>());
  // storagePath is <data dir>/storage/aion.preview.
  const dataDir = dirname(dirname(ctx.storagePath));
  const tokens = new PreviewTokens(await previewSecret(ctx), { ttlSeconds: () => config.tokenTtlSeconds, tokenVersion: () => config.tokenVersion });
  const store = await openStore(ctx, config, dataDir);
  ctx.subscriptions.push({ dispose: () => store.close?.() });
  const metrics = new PreviewMetrics((delta) => aion.events.emit('preview.telemetry', delta));
  const node = () => process.execPath;
  const builtins = new Map<string, PreviewBuilder>([
    ['static', staticBuilder],
    ['npm-script', npmScriptBuilder(() => config.npmPath)],
    ['react-native', reactNativeBuilder(node)],
    ['expo', expoBuilder(node)],
  ]);
  const service = new BuildService({ dataDir, config: () => config, store: () => store, projects: projectsApi, builtins, metrics });
  const jobs = await jobsApi();

  ctx.subscriptions.push(
    processQueue('preview_build', (job, context) => service.run(job, context)),
    processQueue('preview_cleanup', () => cleanUp({ dataDir, config, store, job: (id) => jobs.get(id) })),
  );
  // Every kernel asks; the job id per period makes it one job per period across kernels.
  const schedule = setInterval(() => {
    const slot = Math.floor(Date.now() / config.cleanupIntervalMs);
    void jobs.enqueue('preview_cleanup', { task: 'cleanup' }, { jobId: `preview-cleanup-${slot}` }).catch(() => undefined);
  }, config.cleanupIntervalMs);
  schedule.unref();
  ctx.subscriptions.push({ dispose: () => clearInterval(schedule) });

  const issue = (claims: { project_id: string; platform: PreviewPlatform; user_id: string; tenant_id: string }) => {
    const { token, claims: issued } = tokens.issue(claims);
    return { token, expires_at: new Date(issued.expiry * 1000).toISOString() };
  };

  /** The preview job for `id`, if the caller may see it: its user (or an admin) signed in, or a live preview token of its project and user. */
  const authorizedJob = async (req: HttpRequestData): Promise<{ job: JobView; payload: PreviewJobPayload }> => {
    const id = req.params.job ?? '';
    const job = await jobs.get(id);
    const notFound = () => new AionError(ErrorCodes.NOT_FOUND, `no preview build ${id.slice(0, 64)} that you may see`);
    const raw = req.headers['x-preview-token'] ?? (typeof req.query.token === 'string' ? req.query.token : undefined);
    const principal = req.principal;
    if (raw === undefined && !principal) throw new AionError(ErrorCodes.UNAUTHENTICATED, 'sign in, or send the preview token as X-Preview-Token');
    const claims: PreviewClaims | undefined = raw !== undefined ? tokens.verify(raw) : undefined;
    if (job?.queue !== 'preview_build') throw notFound();
    const payload = job.payload as PreviewJobPayload;
    if (claims) {
      if (
        claims.project_id !== payload.project_id ||
        claims.user_id !== payload.user_id ||
        claims.tenant_id !== payload.tenant_id ||
        claims.platform !== payload.platform
      ) {
        throw previewError(PreviewErrorCodes.PREVIEW_TOKEN_MISMATCH, 'this preview token is for another project, user or platform than this build');
      }
      return { job, payload };
    }
    if (isAdmin(principal) || (principal!.sub === payload.user_id && principal!.tenant_id === payload.tenant_id)) return { job, payload };
    throw notFound();
  };

  const statusOf = (job: JobView, payload: PreviewJobPayload): PreviewStatus => {
    const result = job.result as PreviewJobResult | null;
    return {
      job_id: job.id,
      project_id: payload.project_id,
      platform: payload.platform,
      status: job.status,
      stage: job.stage,
      progress: job.progress,
      error: job.error,
      builder: result?.builder ?? null,
      bundle: result ? { size: result.size, sha256: result.sha256, files: result.files } : null,
      timings: result?.timings ?? null,
      created_at: job.created_at,
      finished_at: job.finished_at,
    };
  };

  ctx.subscriptions.push(
    aion.http.handle('POST /v1/preview/token', async (req) => {
      const body = bodyOf(req);
      const principal = req.principal!;
      if (typeof body.project_id !== 'string' || body.project_id === '')
        throw new AionError(ErrorCodes.VALIDATION_FAILED, 'project_id is the id of a registered project');
      const platform = platformOf(body.platform, 'platform');
      const project = await (await projectsApi()).get(body.project_id, { for: principal });
      return { status: 201, body: issue({ project_id: project.id, platform, user_id: principal.sub, tenant_id: principal.tenant_id }) };
    }),
    aion.http.handle('POST /v1/preview/build', async (req) => {
      const body = bodyOf(req);
      const claims = tokens.verify(body.token, body.platform === undefined ? {} : { platform: platformOf(body.platform, 'platform') });
      const gitRef = body.git_ref === undefined || body.git_ref === null ? null : validateGitRef(body.git_ref);
      // The project must still exist in the token's tenant (access was checked when the token was issued).
      const project = await (await projectsApi()).get(claims.project_id);
      if (project.tenantId !== claims.tenant_id)
        throw previewError(PreviewErrorCodes.PREVIEW_TOKEN_MISMATCH, 'the preview token is for a project of another tenant');
      const payload: PreviewJobPayload = {
        project_id: claims.project_id,
        user_id: claims.user_id,
        tenant_id: claims.tenant_id,
        platform: claims.platform,
        git_ref: gitRef,
        token_version: claims.token_version,
      };
      const job = await jobs.enqueue('preview_build', payload, { owner: { sub: claims.user_id, tenant_id: claims.tenant_id }, tags: [claims.platform] });
      return { status: 202, body: { job_id: job.id, status: job.status } };
    }),
    aion.http.handle('GET /v1/preview/status/:job', async (req) => {
      const { job, payload } = await authorizedJob(req);
      return { body: statusOf(job, payload) };
    }),
    aion.http.handle('GET /v1/preview/logs/:job', async (req) => {
      const { job } = await authorizedJob(req);
      const text = await readFile(logFileOf(dataDir, job.id), 'utf8').catch(() => '');
      return { status: 200, headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }, body: text };
    }),
    aion.http.handle('GET /v1/preview/download/:job', async (req) => {
      const { job, payload } = await authorizedJob(req);
      const key = bundleKey(payload.project_id, job.id);
      const stored = await store.stat(key);
      if (!stored) {
        if (job.status === 'queued' || job.status === 'running')
          throw previewError(
            PreviewErrorCodes.BUNDLE_NOT_READY,
            `the build is ${job.status} (${job.stage ?? 'waiting'}); download once its status is success`,
            { headers: { 'Retry-After': '5' } },
          );
        throw new AionError(
          ErrorCodes.NOT_FOUND,
          job.status === 'success'
            ? 'the bundle has expired and was removed; build again'
            : `the build ${job.status}${job.error ? ` (${job.error.code})` : ''} and left no bundle`,
        );
      }
      const header = req.headers.range;
      const range = parseRange(typeof header === 'string' ? header : undefined, stored.size);
      const data = await store.read(key, range);
      const headers: Record<string, string> = {
        'content-type': 'application/zip',
        'content-disposition': `attachment; filename="preview-${job.id}.zip"`,
        'accept-ranges': 'bytes',
        'cache-control': 'private, no-store',
      };
      if (!range) return { status: 200, headers, body: data };
      return { status: 206, headers: { ...headers, 'content-range': `bytes ${range.start}-${range.start + data.length - 1}/${stored.size}` }, body: data };
    }),
    aion.commands.register('preview.cleanup', () => cleanUp({ dataDir, config, store, job: (id) => jobs.get(id) })),
  );

  return {
    issueToken: async (input) =>
      issue({
        project_id: input.project_id,
        platform: platformOf(input.platform, 'platform'),
        user_id: input.user_id,
        tenant_id: input.tenant_id ?? 'default',
      }),
    metrics: () => metrics.snapshot(),
  };
}
