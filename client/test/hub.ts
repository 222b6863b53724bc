/** A real hub for the client's tests: SQLite storage, auth, router + fake OpenAI upstream, sessions, skills, jobs. */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestKernel, type TestKernel } from '@aion/core';
import { AUTH_EXTENSION_DIR, initialAdmin } from '@aion/ext-auth/testing';
import { startFakeOpenAI, type FakeOpenAI } from '@aion/ext-provider-openai/testing';

const require = createRequire(import.meta.url);
const dir = (pkg: string) => dirname(require.resolve(`${pkg}/package.json`));
export const CLIENT_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TEXT_PACK_DIR = resolve(CLIENT_DIR, '..', 'samples', 'skill-pack-text');

export interface Hub {
  kernel: TestKernel;
  url: string;
  openai: FakeOpenAI;
  admin: { username: string; password: string };
  stop(): Promise<void>;
}

/** What the fake model answers an AI-documentation prompt (`Task: <kind>` and `File: <path>` in it), as JSON. */
function aiDocsAnswer(prompt: string): string | undefined {
  const kind = /Task: ([a-z-]+)/.exec(prompt)?.[1];
  const path = /File: (\S+)/.exec(prompt)?.[1] ?? '?';
  if (kind === 'file-summary') return JSON.stringify({ summary: `summary of ${path}`, key_points: ['adds numbers'], language: 'typescript' });
  if (kind === 'inline-comment') return JSON.stringify({ comments: [{ line: 1, comment: 'declares add' }] });
  if (kind === 'rename-suggestions') return JSON.stringify({ suggestions: [{ from: 'add', to: 'sum', reason: 'clearer' }] });
  return undefined;
}

/**
 * `[hang]` in a message: the upstream never answers; an AI-documentation prompt gets its JSON;
 * otherwise it streams "Hello from the hub". `workspace` adds projects (folders under `localRoots`),
 * preview builds and AI documentation; `devices` the hub side of devices.
 */
export async function startHub(
  options: { chunkDelayMs?: number; extensions?: Record<string, Record<string, unknown>>; workspace?: { localRoots: string[] }; devices?: boolean } = {},
): Promise<Hub> {
  const openai = await startFakeOpenAI({
    chunkDelayMs: options.chunkDelayMs,
    reply: (request) => {
      const prompt = JSON.stringify(request.body?.messages ?? []);
      if (prompt.includes('[hang]')) return { kind: 'hang' };
      const json = aiDocsAnswer(
        JSON.parse(prompt)
          .map((m: { content?: unknown }) => (typeof m.content === 'string' ? m.content : ''))
          .join('\n'),
      );
      if (json) return { kind: 'answer', text: json, usage: { prompt_tokens: 50, completion_tokens: 20 } };
      return { kind: 'answer', text: ['Hello', ' from', ' the', ' hub'], usage: { prompt_tokens: 5, completion_tokens: 4 } };
    },
  });
  const workspace = options.workspace ? [dir('@aion/ext-projects'), dir('@aion/ext-preview'), dir('@aion/ext-ai-docs')] : [];
  if (options.devices) workspace.push(dir('@aion/ext-devices'));
  const kernel = await startTestKernel({
    extensions: [
      dir('@aion/ext-storage'),
      AUTH_EXTENSION_DIR,
      dir('@aion/ext-router'),
      dir('@aion/ext-provider-openai'),
      dir('@aion/ext-sessions'),
      dir('@aion/ext-skills'),
      TEXT_PACK_DIR,
      dir('@aion/ext-jobs'),
      ...workspace,
    ],
    config: {
      extensions: {
        'aion.router': { providers: { openai: { enabled: true } }, defaults: { privacy: 'allow-api' } },
        'aion.provider-openai': { baseUrl: openai.url, apiKeySecret: '', timeoutMs: 30_000 },
        ...(options.workspace
          ? { 'aion.projects': { localRoots: options.workspace.localRoots }, 'aion.jobs': { inProcessWorkers: { startDelayMs: 0 }, pollIntervalMs: 20 } }
          : {}),
        ...options.extensions,
      },
    },
  });
  return {
    kernel,
    url: kernel.url,
    openai,
    admin: initialAdmin(kernel),
    stop: async () => {
      await kernel.stop();
      await openai.close();
    },
  };
}

export type ProxyPlan = (
  req: IncomingMessage,
  n: number,
) => 'pass' | 'cut-after-first-event' | { status: number; headers?: Record<string, string>; body?: unknown };

/** A real HTTP hop in front of the hub that misbehaves on purpose: fails requests, or cuts streams. */
export async function startProxy(target: string, plan: ProxyPlan): Promise<{ url: string; seen: string[]; close(): Promise<void> }> {
  const seen: string[] = [];
  const upstream = new URL(target);
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    seen.push(`${req.method} ${req.url} ${req.headers['last-event-id'] ?? ''}`.trim());
    const decision = plan(req, seen.length);
    if (typeof decision === 'object') {
      res.writeHead(decision.status, { 'content-type': 'application/json', ...decision.headers });
      res.end(JSON.stringify(decision.body ?? { error: { code: 'SATURATED', message: 'busy' } }));
      return;
    }
    const forward = httpRequest({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      if (decision === 'cut-after-first-event') {
        let buffered = '';
        answer.on('data', (chunk: Buffer) => {
          buffered += chunk.toString();
          // Cut right after the first event that carries an id, mid-stream.
          const match = /(^|\n)id: [^\n]*\n(?:[^\n]+\n)*\n/.exec(buffered);
          if (match) {
            answer.destroy();
            res.end(buffered.slice(0, match.index + match[0].length), () => res.destroy());
          }
        });
        return;
      }
      answer.pipe(res);
    });
    req.pipe(forward);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
