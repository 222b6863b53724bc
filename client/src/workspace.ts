/** Projects, preview builds and AI documentation: what an IDE does with a folder of code on the hub. */
import { AionApiError } from './errors.js';
import { sleep, type Transport } from './transport.js';

type Signal = { signal?: AbortSignal };

/** A project as `/v1/projects` answers it. */
export interface Project {
  id: string;
  /** `local`: a folder on the hub used in place; `clone`: a git URL the hub cloned under its data directory. */
  kind: 'local' | 'clone';
  name: string;
  /** As registered: an absolute folder on the hub's machine or a git URL. */
  repository: string;
  /** The working folder on the hub. */
  path: string;
  created_at: string | number;
  owner: { sub: string; tenant_id: string };
}

export class ProjectsApi {
  constructor(private readonly transport: Transport) {}

  /** `repository`: an absolute folder on the hub's machine, or a git URL the hub clones. */
  create(body: { name: string; repository: string }, options: Signal = {}): Promise<Project> {
    return this.transport.json('POST', '/v1/projects', body, options);
  }

  list(options: { limit?: number } & Signal = {}): Promise<{ projects: Project[] }> {
    return this.transport.json('GET', '/v1/projects', undefined, { signal: options.signal, query: { limit: options.limit } });
  }

  get(id: string, options: Signal = {}): Promise<Project> {
    return this.transport.json('GET', `/v1/projects/${encodeURIComponent(id)}`, undefined, options);
  }

  delete(id: string, options: Signal = {}): Promise<void> {
    return this.transport.json('DELETE', `/v1/projects/${encodeURIComponent(id)}`, undefined, options);
  }
}

export type PreviewPlatform = 'web' | 'ios' | 'android';

export interface PreviewStatus {
  job_id: string;
  project_id: string;
  platform: PreviewPlatform;
  status: 'queued' | 'running' | 'success' | 'failed' | 'canceled';
  stage?: string;
  progress: number;
  error?: { code: string; message: string };
  builder?: string;
  bundle?: { size: number; sha256: string; files: number };
  timings?: Record<string, number>;
  created_at?: string | number;
  finished_at?: string | number | null;
}

/** What `wait` reports on every change and answers at the end. */
export interface WaitOptions<T> extends Signal {
  /** Called with each new status (stage or progress changed). */
  onProgress?: (status: T) => void;
  /** Between two looks at the status (default 500 ms). */
  intervalMs?: number;
}

const FINISHED = new Set(['success', 'failed', 'canceled']);

/** Polls `read` until the job finishes, reporting each change; a failed or canceled job throws its own code. */
async function waitForJob<T extends { status: string; progress?: number; stage?: string; error?: { code: string; message: string } }>(
  read: () => Promise<T>,
  what: string,
  options: WaitOptions<T>,
): Promise<T> {
  let last = '';
  for (;;) {
    const status = await read();
    const seen = `${status.status}/${status.stage ?? ''}/${status.progress ?? ''}`;
    if (seen !== last) {
      last = seen;
      options.onProgress?.(status);
    }
    if (FINISHED.has(status.status)) {
      if (status.status === 'success') return status;
      const error = status.error ?? { code: status.status === 'canceled' ? 'JOB_CANCELED' : 'JOB_FAILED', message: `${what} ${status.status}` };
      throw new AionApiError(error.code, error.message, { details: status });
    }
    await sleep(options.intervalMs ?? 500, options.signal);
  }
}

export class PreviewApi {
  constructor(private readonly transport: Transport) {}

  /** A short-lived token (valid 300 s) that alone starts a build of one project for one platform. */
  token(body: { project_id: string; platform: PreviewPlatform }, options: Signal = {}): Promise<{ token: string; expires_at: string }> {
    return this.transport.json('POST', '/v1/preview/token', body, options);
  }

  /** Starts a build with a token (no other credentials needed); answers the job at once. */
  build(body: { token: string; git_ref?: string; platform?: PreviewPlatform }, options: Signal = {}): Promise<{ job_id: string; status: string }> {
    return this.transport.json('POST', '/v1/preview/build', body, { ...options, anonymous: true });
  }

  /** The build's status; with `token`, readable by whoever holds a live token of the same project. */
  status(jobId: string, options: { token?: string } & Signal = {}): Promise<PreviewStatus> {
    return this.transport.json('GET', `/v1/preview/status/${encodeURIComponent(jobId)}`, undefined, { signal: options.signal, ...tokenHeader(options.token) });
  }

  /** Polls the status until the build ends; `onProgress` sees every stage. A failed build throws its code (`PREVIEW_BUILD_FAILED`, …). */
  wait(jobId: string, options: { token?: string } & WaitOptions<PreviewStatus> = {}): Promise<PreviewStatus> {
    return waitForJob(() => this.status(jobId, options), `preview build ${jobId}`, options);
  }

  /** token → build → wait: the whole flow of a "build preview" button. */
  async buildProject(
    body: { project_id: string; platform: PreviewPlatform; git_ref?: string },
    options: WaitOptions<PreviewStatus> = {},
  ): Promise<PreviewStatus & { token: string; download_url: string }> {
    const { token } = await this.token({ project_id: body.project_id, platform: body.platform }, options);
    const { job_id } = await this.build({ token, git_ref: body.git_ref }, options);
    const done = await this.wait(job_id, { ...options, token });
    return { ...done, token, download_url: this.transport.url(`/v1/preview/download/${encodeURIComponent(job_id)}`, { token }) };
  }

  /** The bundle (a zip), or a part of it with `range` (`{ start, end }`, inclusive). */
  async download(
    jobId: string,
    options: { token?: string; range?: { start: number; end?: number } } & Signal = {},
  ): Promise<{ bytes: Uint8Array; contentRange?: string; status: number }> {
    const headers: Record<string, string> = { accept: 'application/zip' };
    if (options.token) headers['x-preview-token'] = options.token;
    if (options.range) headers.range = `bytes=${options.range.start}-${options.range.end ?? ''}`;
    const res = await this.transport.send('GET', `/v1/preview/download/${encodeURIComponent(jobId)}`, undefined, {
      signal: options.signal,
      headers,
      anonymous: options.token !== undefined,
    });
    return { bytes: new Uint8Array(await res.arrayBuffer()), contentRange: res.headers.get('content-range') ?? undefined, status: res.status };
  }

  /** The build log as text, also while the build runs. */
  async logs(jobId: string, options: { token?: string } & Signal = {}): Promise<string> {
    const res = await this.transport.send('GET', `/v1/preview/logs/${encodeURIComponent(jobId)}`, undefined, {
      signal: options.signal,
      ...tokenHeader(options.token, 'text/plain'),
    });
    return res.text();
  }
}

function tokenHeader(token: string | undefined, accept = 'application/json'): { headers?: Record<string, string>; anonymous?: boolean } {
  return token ? { headers: { accept, 'x-preview-token': token }, anonymous: true } : { headers: { accept } };
}

export type AiDocsKind = 'file-summary' | 'inline-comment' | 'rename-suggestions';

export interface AiDocsRequest {
  project_id: string;
  /** The file, relative to the project's folder. */
  path: string;
  /** 1-based, inclusive: only those lines are sent to the model. */
  range?: { start_line: number; end_line: number };
  symbol?: string;
  privacy?: 'local-only' | 'allow-api' | 'hybrid';
}

export interface AiDocsResults {
  'file-summary': { summary: string; key_points?: string[]; language?: string };
  'inline-comment': { comments: Array<{ line: number; comment: string }> };
  'rename-suggestions': { suggestions: Array<{ from: string; to: string; reason?: string }> };
}

export interface AiDocsJob<K extends AiDocsKind = AiDocsKind> {
  job_id: string;
  kind: K;
  status: 'queued' | 'running' | 'success' | 'failed' | 'canceled';
  progress: number;
  stage?: string;
  result?: AiDocsResults[K];
  engine?: { route: string; provider: string; model: string; chosen_by?: string; reason?: string };
  usage?: Record<string, unknown>;
  task_id?: string;
  error?: { code: string; message: string };
}

export class AiDocsApi {
  constructor(private readonly transport: Transport) {}

  /** Starts a job (202); read it with `result` or `wait`. */
  start(kind: AiDocsKind, body: AiDocsRequest, options: Signal = {}): Promise<{ job_id: string; status: string }> {
    return this.transport.json('POST', `/v1/ai/${kind}`, body, options);
  }

  result<K extends AiDocsKind>(jobId: string, options: Signal = {}): Promise<AiDocsJob<K>> {
    return this.transport.json('GET', `/v1/ai/result/${encodeURIComponent(jobId)}`, undefined, options);
  }

  /** Polls until the job ends; a failed job throws its code (`AI_OUTPUT_INVALID`, `FILE_TOO_LARGE`, …). */
  wait<K extends AiDocsKind>(jobId: string, options: WaitOptions<AiDocsJob<K>> = {}): Promise<AiDocsJob<K>> {
    return waitForJob(() => this.result<K>(jobId, options), `AI documentation job ${jobId}`, options);
  }

  /** Start and wait: a summary of the file (or of `range`). */
  async summarizeFile(body: AiDocsRequest, options: WaitOptions<AiDocsJob<'file-summary'>> = {}): Promise<AiDocsJob<'file-summary'>> {
    return this.wait<'file-summary'>((await this.start('file-summary', body, options)).job_id, options);
  }

  /** Start and wait: comments for lines of the file (or of `range`). */
  async commentLines(body: AiDocsRequest, options: WaitOptions<AiDocsJob<'inline-comment'>> = {}): Promise<AiDocsJob<'inline-comment'>> {
    return this.wait<'inline-comment'>((await this.start('inline-comment', body, options)).job_id, options);
  }

  /** Start and wait: better names for identifiers of the file (or `symbol`). */
  async suggestRenames(body: AiDocsRequest, options: WaitOptions<AiDocsJob<'rename-suggestions'>> = {}): Promise<AiDocsJob<'rename-suggestions'>> {
    return this.wait<'rename-suggestions'>((await this.start('rename-suggestions', body, options)).job_id, options);
  }
}
