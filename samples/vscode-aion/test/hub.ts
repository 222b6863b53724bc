/**
 * A real hub for the sample's tests: SQLite storage, auth, router with a fake OpenAI upstream, sessions,
 * jobs, projects, preview, AI docs and devices — what the VS Code extension talks to.
 */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { startTestKernel, type TestKernel } from '@aion/core';
import { AUTH_EXTENSION_DIR, initialAdmin } from '@aion/ext-auth/testing';
import { startFakeOpenAI, type FakeOpenAI } from '@aion/ext-provider-openai/testing';

const require = createRequire(import.meta.url);
const dir = (pkg: string) => dirname(require.resolve(`${pkg}/package.json`));

/** The model's answer to an AI-documentation prompt (`Task: <kind>` in it), or a chat greeting. */
function answer(prompt: string): string | string[] {
  const kind = /Task: ([a-z-]+)/.exec(prompt)?.[1];
  const file = /File: (\S+)/.exec(prompt)?.[1] ?? '?';
  if (kind === 'file-summary') return JSON.stringify({ summary: `summary of ${file}`, key_points: ['adds two numbers'] });
  if (kind === 'inline-comment')
    return JSON.stringify({
      comments: [
        { line: 1, comment: 'adds a and b' },
        { line: 2, comment: 'returns the sum' },
      ],
    });
  if (kind === 'rename-suggestions') return JSON.stringify({ suggestions: [{ from: 'add', to: 'sum' }] });
  return ['Hello', ' from', ' the', ' hub'];
}

export interface Hub {
  kernel: TestKernel;
  url: string;
  admin: { username: string; password: string };
  stop(): Promise<void>;
}

export async function startHub(localRoots: string[]): Promise<Hub> {
  const openai: FakeOpenAI = await startFakeOpenAI({
    reply: (request) => {
      const prompt = ((request.body?.messages ?? []) as Array<{ content?: unknown }>).map((m) => (typeof m.content === 'string' ? m.content : '')).join('\n');
      return { kind: 'answer', text: answer(prompt), usage: { prompt_tokens: 20, completion_tokens: 10 } };
    },
  });
  const kernel = await startTestKernel({
    extensions: [
      dir('@aion/ext-storage'),
      AUTH_EXTENSION_DIR,
      dir('@aion/ext-router'),
      dir('@aion/ext-provider-openai'),
      dir('@aion/ext-sessions'),
      dir('@aion/ext-jobs'),
      dir('@aion/ext-projects'),
      dir('@aion/ext-preview'),
      dir('@aion/ext-ai-docs'),
      dir('@aion/ext-devices'),
    ],
    config: {
      extensions: {
        'aion.auth': { scryptCost: 1024, rateLimits: { enabled: false } },
        'aion.router': { providers: { openai: { enabled: true } }, defaults: { privacy: 'allow-api' } },
        'aion.provider-openai': { baseUrl: openai.url, apiKeySecret: '', timeoutMs: 30_000 },
        'aion.jobs': { inProcessWorkers: { startDelayMs: 0 }, pollIntervalMs: 20 },
        'aion.projects': { localRoots },
      },
    },
  });
  return {
    kernel,
    url: kernel.url,
    admin: initialAdmin(kernel),
    stop: async () => {
      await kernel.stop();
      await openai.close();
    },
  };
}
