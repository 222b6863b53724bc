import { mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { startTestKernel, type TestKernel } from '@aion/core';
import { AUTH_EXTENSION_DIR, call } from '@aion/ext-auth/testing';
import { STORAGE_EXTENSION_DIR } from '@aion/ext-storage/testing';
import { PROJECTS_EXTENSION_DIR } from '@aion/ext-projects/testing';
import type { RecordedRequest } from '@aion/ext-provider-openai/testing';

const require = createRequire(import.meta.url);
const dirOf = (pkg: string) => dirname(require.resolve(`${pkg}/package.json`));

export const AI_DOCS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const JOBS_DIR = dirOf('@aion/ext-jobs');
export const ROUTER_DIR = dirOf('@aion/ext-router');
export const OPENAI_DIR = dirOf('@aion/ext-provider-openai');
export const ANTHROPIC_DIR = dirOf('@aion/ext-provider-anthropic');
export const OLLAMA_DIR = dirOf('@aion/ext-provider-ollama');

export interface Upstreams {
  openai: string;
  anthropic: string;
  ollama?: string;
}

/** storage, auth, jobs, router with the OpenAI and Anthropic providers (and Ollama when given), projects and ai-docs. */
export function startAiDocsKernel(
  upstreams: Upstreams,
  options: { localRoots: string[]; router?: Record<string, unknown>; aiDocs?: Record<string, unknown> },
): Promise<TestKernel> {
  const secretsFile = join(mkdtempSync(join(tmpdir(), 'aion-ai-docs-secrets-')), 'secrets.json');
  writeFileSync(
    secretsFile,
    JSON.stringify({ 'aion.provider-anthropic': { ANTHROPIC_API_KEY: 'sk-ant-test' }, 'aion.provider-openai': { OPENAI_API_KEY: 'sk-test' } }),
  );
  const extensions = [STORAGE_EXTENSION_DIR, AUTH_EXTENSION_DIR, JOBS_DIR, ROUTER_DIR, OPENAI_DIR, ANTHROPIC_DIR, PROJECTS_EXTENSION_DIR, AI_DOCS_DIR];
  if (upstreams.ollama) extensions.push(OLLAMA_DIR);
  return startTestKernel({
    extensions,
    config: {
      secretsFile,
      extensions: {
        'aion.auth': { scryptCost: 1024, rateLimits: { enabled: false } },
        'aion.jobs': { inProcessWorkers: { startDelayMs: 0 }, pollIntervalMs: 20 },
        'aion.router': { circuitBreaker: { failureThreshold: 1000 }, ...options.router },
        'aion.provider-openai': { baseUrl: upstreams.openai, timeoutMs: 5000 },
        'aion.provider-anthropic': { baseUrl: upstreams.anthropic, timeoutMs: 5000 },
        ...(upstreams.ollama ? { 'aion.provider-ollama': { baseUrl: upstreams.ollama, timeoutMs: 5000 } } : {}),
        'aion.projects': { localRoots: options.localRoots },
        'aion.ai-docs': { maxFileBytes: 2048, ...options.aiDocs },
      },
    },
  });
}

export async function api(kernel: TestKernel, method: string, path: string, token: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await call(kernel, method, path, { token, body });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** Polls the result until the job is final. */
export async function result(kernel: TestKernel, token: string, jobId: string, ms = 30_000): Promise<any> {
  const end = Date.now() + ms;
  for (;;) {
    const res = await api(kernel, 'GET', `/v1/ai/result/${jobId}`, token);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    if (['success', 'failed', 'canceled'].includes(res.body.status)) return res.body;
    if (Date.now() > end) throw new Error(`job ${jobId} still ${res.body.status} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The text of every message of a recorded chat request, whichever vendor's format it is in. */
export function promptOf(request: RecordedRequest): string {
  const body = (request.body ?? {}) as { system?: unknown; messages?: Array<{ content?: unknown }> };
  const parts: string[] = [];
  if (typeof body.system === 'string') parts.push(body.system);
  else if (Array.isArray(body.system)) for (const b of body.system as Array<{ text?: string }>) parts.push(b.text ?? '');
  for (const m of body.messages ?? []) {
    if (typeof m.content === 'string') parts.push(m.content);
    else if (Array.isArray(m.content)) for (const b of m.content as Array<{ text?: string }>) parts.push(b.text ?? '');
  }
  return parts.join('\n');
}

/**
 * What a well-behaved model answers to the prompt, by the task it names; markers in the file steer a
 * vendor: `[openai:500]` fails that vendor, `[ollama:hang]` makes it never answer, `[ai:garbage]` makes every vendor answer prose,
 * `[ai:fixable]` answers prose until the prompt says the previous answer was refused.
 */
export function modelAnswer(prompt: string, vendor: string): { status?: number; text?: string; hang?: boolean } {
  if (prompt.includes(`[${vendor}:hang]`)) return { hang: true };
  if (new RegExp(`\\[${vendor}:(\\d{3})\\]`).test(prompt)) return { status: Number(new RegExp(`\\[${vendor}:(\\d{3})\\]`).exec(prompt)![1]) };
  const refusedBefore = prompt.includes('Your previous answer was refused');
  if (prompt.includes('[ai:garbage]') || (prompt.includes('[ai:fixable]') && !refusedBefore)) return { text: `Sure! This file is great (${vendor}).` };
  const kind = /Task: ([a-z-]+)/.exec(prompt)?.[1];
  const path = /File: (\S+)/.exec(prompt)?.[1] ?? '?';
  if (kind === 'file-summary')
    return { text: JSON.stringify({ summary: `${vendor} summary of ${path}`, key_points: ['exports answer'], language: 'typescript' }) };
  if (kind === 'inline-comment') {
    const first = Number(/^\s*(\d+) \| /m.exec(prompt.slice(prompt.indexOf('<<<FILE')))?.[1] ?? 1);
    return { text: '```json\n' + JSON.stringify({ comments: [{ line: first, comment: `${vendor} explains line ${first}` }] }) + '\n```' };
  }
  if (kind === 'rename-suggestions') {
    const symbol = /symbol `([^`]+)`/.exec(prompt)?.[1] ?? 'x';
    return { text: JSON.stringify({ suggestions: [{ from: symbol, to: `${symbol}Renamed`, reason: `${vendor} thinks so` }] }) };
  }
  return { text: 'I do not know this task.' };
}
