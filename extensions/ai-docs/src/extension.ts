import * as aion from '@aion/extension-api';
import { AionError, ErrorCodes, type HttpRequestData, type Principal } from '@aion/extension-api';
import { processQueue, jobsApi } from '@aion/ext-jobs/client';
import type { JobView } from '@aion/ext-jobs';
import type { ProjectsApi, ProjectUser } from '@aion/ext-projects';
import { checkRelativePath } from '@aion/ext-projects/paths';
import type { RouterApi } from '@aion/ext-router';
import type { AiDocsKind } from './api.js';
import { aiDocsError } from './errors.js';
import { checkRequest } from './request.js';
import { runAiDocsJob, type AiDocsConfiguration, type AiDocsPayload } from './worker.js';

const QUEUE = 'ai_jobs';
const KINDS: AiDocsKind[] = ['file-summary', 'inline-comment', 'rename-suggestions'];

/** Who a principal acts for: devices and API keys for their owner. */
function ownerOf(p: Principal): { sub: string; tenant_id: string } {
  return { sub: typeof p.owner === 'string' ? p.owner : p.sub, tenant_id: p.tenant_id };
}

/** The part of the principal the worker needs to read the project as this user. */
function userOf(req: HttpRequestData): ProjectUser {
  const p = req.principal;
  if (!p) throw new AionError(ErrorCodes.UNAUTHENTICATED, 'sign in first');
  return { sub: p.sub, tenant_id: p.tenant_id, scopes: p.scopes, ...(typeof p.owner === 'string' ? { owner: p.owner } : {}) };
}

export async function activate(ctx: aion.ExtensionContext) {
  const config = ctx.configuration.get<AiDocsConfiguration>();
  const projects = await aion.extensions.getApi<ProjectsApi>('aion.projects');
  const router = await aion.extensions.getApi<RouterApi>('aion.router');
  const jobs = await jobsApi();

  const submit = async (kind: AiDocsKind, req: HttpRequestData) => {
    const user = userOf(req);
    const request = checkRequest(req.body);
    // A path the worker would refuse anyway is refused before a job exists.
    checkRelativePath(request.path);
    // Fails now with PROJECT_NOT_FOUND when the project is not the caller's, before a job exists.
    await projects.get(request.project_id, { for: user });
    const payload: AiDocsPayload = { kind, request, user };
    const job = await jobs.enqueue(QUEUE, payload, { owner: ownerOf(req.principal!), tags: [kind, `project:${request.project_id}`] });
    return { status: 202, headers: { location: `/v1/ai/result/${job.id}` }, body: { job_id: job.id, status: job.status } };
  };

  /** The caller's documentation job; anyone else's reads as missing. */
  const ownJob = async (req: HttpRequestData): Promise<JobView> => {
    const id = req.params.job!;
    const job = await jobs.get(id);
    const owner = ownerOf(req.principal!);
    if (!job || job.queue !== QUEUE || !job.owner || job.owner.sub !== owner.sub || job.owner.tenant_id !== owner.tenant_id) {
      throw aiDocsError('AI_JOB_NOT_FOUND', `there is no documentation job ${id}`);
    }
    return job;
  };

  ctx.subscriptions.push(
    ...KINDS.map((kind) => aion.http.handle(`POST /v1/ai/${kind}`, (req) => submit(kind, req))),
    aion.http.handle('GET /v1/ai/result/:job', async (req) => {
      const job = await ownJob(req);
      const body: Record<string, unknown> = {
        job_id: job.id,
        kind: (job.payload as AiDocsPayload | null)?.kind ?? null,
        status: job.status,
        progress: job.progress,
        stage: job.stage,
      };
      if (job.status === 'success' && job.result) {
        const r = job.result as Awaited<ReturnType<typeof runAiDocsJob>>;
        Object.assign(body, { result: r.output, engine: r.engine, usage: r.usage, task_id: r.task_id, tasks: r.tasks, file: r.file });
      }
      if (job.error) body.error = job.error;
      return { body };
    }),
    processQueue(QUEUE, (job, { progress, token }) => runAiDocsJob(job.payload as AiDocsPayload, { projects, router, config, progress, token })),
  );
}

export function deactivate() {}
