/**
 * The editor commands' logic: the workspace folder as a project on the hub, AI documentation jobs on
 * its files with progress, and preview builds that end in a download link.
 */
import type { AiDocsJob, AionClient, PreviewPlatform, PreviewStatus } from '@aion/client';
import { realpathSync } from 'node:fs';
import { relative, sep } from 'node:path';

export interface Progress {
  /** 0..1 and a line to show, e.g. in a notification. */
  report(fraction: number, message: string): void;
}

/** The project of this workspace folder on the hub: found by its path, or registered once. */
export async function projectFor(client: AionClient, folder: string, name: string): Promise<string> {
  const real = realpathSync(folder);
  const { projects } = await client.projects.list({ limit: 200 });
  const existing = projects.find((p) => p.path === real);
  if (existing) return existing.id;
  return (await client.projects.create({ name, repository: real })).id;
}

/** A file's path as the hub's project names it (forward slashes, relative to the folder). */
export function projectPath(folder: string, file: string): string {
  const rel = relative(realpathSync(folder), realpathSync(file));
  if (rel.startsWith('..')) throw Object.assign(new Error(`${file} is not inside the workspace folder ${folder}`), { code: 'PATH_OUTSIDE_WORKSPACE' });
  return rel.split(sep).join('/');
}

const progressOf = (progress?: Progress) => (job: AiDocsJob) => progress?.report(job.progress ?? 0, job.stage ? `${job.status}: ${job.stage}` : job.status);

export async function summarizeFile(
  client: AionClient,
  projectId: string,
  path: string,
  options: { privacy?: 'local-only' | 'hybrid' | 'allow-api'; progress?: Progress; signal?: AbortSignal } = {},
): Promise<{ summary: string; keyPoints: string[] }> {
  const job = await client.aiDocs.summarizeFile(
    { project_id: projectId, path, privacy: options.privacy },
    { onProgress: progressOf(options.progress), signal: options.signal },
  );
  return { summary: job.result!.summary, keyPoints: job.result!.key_points ?? [] };
}

export async function suggestRenames(
  client: AionClient,
  projectId: string,
  path: string,
  options: { symbol?: string; privacy?: 'local-only' | 'hybrid' | 'allow-api'; progress?: Progress; signal?: AbortSignal } = {},
) {
  const job = await client.aiDocs.suggestRenames(
    { project_id: projectId, path, symbol: options.symbol, privacy: options.privacy },
    { onProgress: progressOf(options.progress), signal: options.signal },
  );
  return job.result!.suggestions;
}

/** Comments for the selected lines (1-based, inclusive), as the editor inserts them above each line. */
export async function commentSelection(
  client: AionClient,
  projectId: string,
  path: string,
  lines: { start: number; end: number },
  options: { privacy?: 'local-only' | 'hybrid' | 'allow-api'; progress?: Progress; signal?: AbortSignal } = {},
) {
  const job = await client.aiDocs.commentLines(
    { project_id: projectId, path, range: { start_line: lines.start, end_line: lines.end }, privacy: options.privacy },
    { onProgress: progressOf(options.progress), signal: options.signal },
  );
  // Bottom first, so inserting one comment does not move the lines of the next.
  return [...job.result!.comments].sort((a, b) => b.line - a.line);
}

/** token → build → progress → the bundle's link. */
export async function buildPreview(
  client: AionClient,
  projectId: string,
  platform: PreviewPlatform,
  options: { progress?: Progress; signal?: AbortSignal } = {},
): Promise<{ jobId: string; downloadUrl: string; size: number; builder?: string }> {
  const done = await client.preview.buildProject(
    { project_id: projectId, platform },
    { signal: options.signal, onProgress: (s: PreviewStatus) => options.progress?.report(s.progress, s.stage ? `${s.stage}` : s.status) },
  );
  return { jobId: done.job_id, downloadUrl: done.download_url, size: done.bundle?.size ?? 0, builder: done.builder };
}
