import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestKernel, type TestKernel } from '@aion/core';
import { call, createUser, signInAdmin } from '@aion/ext-auth/testing';
import type { PreviewStatus } from '../src/api.js';

export const PREVIEW_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FIXTURES = join(PREVIEW_DIR, 'test', 'fixtures');
export const BUILTINS = ['aion.storage', 'aion.auth', 'aion.jobs', 'aion.projects'];

export interface PreviewKernel {
  kernel: TestKernel;
  /** Where test projects live (a local root of aion.projects). */
  projectsRoot: string;
  admin: { access_token: string };
  alice: { access_token: string; id: string };
  bob: { access_token: string; id: string };
  stop(): Promise<void>;
}

/** A kernel with storage, auth, jobs, projects and preview, and two users who may register projects and ask for previews. */
export async function startPreviewKernel(
  options: { preview?: Record<string, unknown>; extensions?: string[]; grants?: Record<string, unknown>; secretsFile?: string; builtins?: string[] } = {},
): Promise<PreviewKernel> {
  const projectsRoot = realpathSync(mkdtempSync(join(tmpdir(), 'aion-preview-projects-')));
  const kernel = await startTestKernel({
    builtins: [...BUILTINS, ...(options.builtins ?? [])],
    extensions: [PREVIEW_DIR, ...(options.extensions ?? [])],
    config: {
      permissions: { grants: options.grants ?? {} },
      ...(options.secretsFile ? { secretsFile: options.secretsFile } : {}),
      extensions: {
        'aion.jobs': { inProcessWorkers: { startDelayMs: 0 }, pollIntervalMs: 20, heartbeatIntervalMs: 500 },
        'aion.auth': { rateLimits: { enabled: false } },
        'aion.projects': { localRoots: [projectsRoot] },
        'aion.preview': options.preview ?? {},
      },
    },
  });
  const admin = await signInAdmin(kernel);
  const scopes = ['projects:read', 'projects:write', 'preview:write', 'jobs:read', 'jobs:write'];
  const alice = await createUser(kernel, admin.access_token, 'alice', { scopes });
  const bob = await createUser(kernel, admin.access_token, 'bob', { scopes });
  return {
    kernel,
    projectsRoot,
    admin,
    alice,
    bob,
    stop: async () => {
      await kernel.stop();
      execFileSync('rm', ['-rf', projectsRoot]);
    },
  };
}

export async function registerProject(k: PreviewKernel, token: string, path: string, name = 'demo'): Promise<string> {
  const res = await call(k.kernel, 'POST', '/v1/projects', { token, body: { name, repository: path } });
  assert.equal(res.status, 201, await res.clone().text());
  return ((await res.json()) as { id: string }).id;
}

export async function previewToken(k: PreviewKernel, userToken: string, projectId: string, platform: string): Promise<string> {
  const res = await call(k.kernel, 'POST', '/v1/preview/token', { token: userToken, body: { project_id: projectId, platform } });
  assert.equal(res.status, 201, await res.clone().text());
  return ((await res.json()) as { token: string }).token;
}

export async function startBuild(k: PreviewKernel, token: string, gitRef?: string): Promise<string> {
  const res = await call(k.kernel, 'POST', '/v1/preview/build', { body: { token, ...(gitRef ? { git_ref: gitRef } : {}) } });
  assert.equal(res.status, 202, await res.clone().text());
  return ((await res.json()) as { job_id: string }).job_id;
}

export async function finalStatus(k: PreviewKernel, userToken: string, jobId: string, timeoutMs = 90_000): Promise<PreviewStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await call(k.kernel, 'GET', `/v1/preview/status/${jobId}`, { token: userToken });
    assert.equal(res.status, 200, await res.clone().text());
    const status = (await res.json()) as PreviewStatus;
    if (['success', 'failed', 'canceled'].includes(status.status)) return status;
    if (Date.now() > deadline) throw new Error(`build ${jobId} did not finish: ${JSON.stringify(status)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The entries of a zip (names → content) read with the system's unzip. */
export function unzipList(zipPath: string): string[] {
  return execFileSync('unzip', ['-Z1', zipPath], { encoding: 'utf8' }).split('\n').filter(Boolean).sort();
}

export function unzipFile(zipPath: string, entry: string): string {
  return execFileSync('unzip', ['-p', zipPath, entry], { encoding: 'utf8' });
}
