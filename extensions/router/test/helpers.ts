import { cp, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startTestKernel, type TestKernel, type TestKernelOptions } from '@aion/core';
import type { FakeOpenAIReply, RecordedRequest } from '@aion/ext-provider-openai/testing';
import type { FakeOllamaReply } from '@aion/ext-provider-ollama/testing';

const require = createRequire(import.meta.url);

export const ROUTER_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FIXTURES = join(ROUTER_DIR, 'test', 'fixtures');
export const OPENAI_DIR = dirname(require.resolve('@aion/ext-provider-openai/package.json'));
export const OLLAMA_DIR = dirname(require.resolve('@aion/ext-provider-ollama/package.json'));
export const STORAGE_DIR = resolve(ROUTER_DIR, '..', 'storage');
export const SKILLS_DIR = dirname(require.resolve('@aion/ext-skills/package.json'));
/** The sample text pack: six signed WASM skills, and the extension that contributes the js skill `text.wrap`. */
export const TEXT_PACK_DIR = resolve(ROUTER_DIR, '..', '..', 'samples', 'skill-pack-text');
export const AUTH_FIXTURE = join(FIXTURES, 'test-auth');
export const HOOKS_FIXTURE = join(FIXTURES, 'route-hooks');

/** Bearer tokens the test-auth fixture accepts. */
export const TOKENS = {
  'test-token': { sub: 'tester', scopes: ['tasks:write', 'tasks:read', 'models:read'], api_key_id: 'key-a' },
  'other-token': { sub: 'other', scopes: ['tasks:write', 'tasks:read', 'models:read'], api_key_id: 'key-b' },
  'reader-token': { sub: 'reader', scopes: ['tasks:read'] },
  'admin-token': { sub: 'admin', scopes: ['*'] },
  'skills-token': { sub: 'skiller', scopes: ['tasks:write', 'tasks:read', 'models:read', 'skills:execute'], api_key_id: 'key-s' },
};

/**
 * A kernel with the router and the test authentication, plus `extensions`. `config` holds extension
 * sections by id; `configOverrides` other kernel settings (e.g. `secretsFile`).
 */
export function startRouterKernel(
  options: { extensions?: string[]; config?: Record<string, Record<string, unknown>>; configOverrides?: Record<string, unknown> } & Omit<
    TestKernelOptions,
    'extensions' | 'config'
  > = {},
): Promise<TestKernel> {
  const { extensions = [], config = {}, configOverrides = {}, ...rest } = options;
  return startTestKernel({
    ...rest,
    extensions: [ROUTER_DIR, AUTH_FIXTURE, ...extensions],
    config: { ...configOverrides, extensions: { 'routertest.test-auth': { tokens: TOKENS }, ...config } },
  });
}

/** `[openai:429]` in any message steers the fake OpenAI server; `[ollama:hang]` the fake Ollama. */
export function marker(request: RecordedRequest, vendor: 'openai' | 'ollama'): string | undefined {
  const re = new RegExp(`\\[${vendor}:([\\w-]+)\\]`);
  for (const m of (request.body?.messages ?? []) as Array<{ content?: unknown }>) {
    const found = typeof m.content === 'string' ? re.exec(m.content) : null;
    if (found) return found[1];
  }
  return undefined;
}

export function openaiReply(request: RecordedRequest): FakeOpenAIReply {
  const m = marker(request, 'openai');
  if (m && /^\d{3}$/.test(m)) return { kind: 'status', status: Number(m), headers: m === '429' ? { 'retry-after': '2' } : {} };
  switch (m) {
    case 'hang':
      return { kind: 'hang' };
    case 'cut':
      return { kind: 'cut', text: [] };
    case 'cut-after':
      return { kind: 'cut', text: ['Hel', 'lo'] };
    case 'malformed':
      return { kind: 'malformed', text: [] };
    case 'tools':
      return { kind: 'answer', toolCalls: [{ id: 'call_1', name: 'lookup', arguments: '{"q":"aion"}' }] };
    default:
      return { kind: 'answer', text: ['Hello', ' from', ' openai'], usage: { prompt_tokens: 10, completion_tokens: 3 } };
  }
}

export function ollamaReply(request: RecordedRequest): FakeOllamaReply {
  const m = marker(request, 'ollama');
  if (m && /^\d{3}$/.test(m)) return { kind: 'status', status: Number(m) };
  switch (m) {
    case 'hang':
      return { kind: 'hang' };
    case 'cut':
      return { kind: 'cut', text: [] };
    case 'long':
      return { kind: 'answer', text: Array.from({ length: 12 }, (_, i) => `t${i} `), promptEvalCount: 5, evalCount: 12 };
    default: {
      // Echo the last user message, so a test can see what reached the model.
      const last = [...((request.body?.messages ?? []) as Array<{ role: string; content?: string }>)].reverse().find((x) => x.role === 'user');
      const echo = last?.content?.startsWith('echo:') ? [last.content.slice(5)] : ['Hi', ' from', ' ollama'];
      return { kind: 'answer', text: echo, promptEvalCount: 8, evalCount: 3 };
    }
  }
}

export const chatRequests = (requests: RecordedRequest[]) => requests.filter((r) => r.method === 'POST');

export function client(kernel: TestKernel, token = 'test-token') {
  const headers = (extra: Record<string, string> = {}) => ({ authorization: `Bearer ${token}`, 'content-type': 'application/json', ...extra });
  return {
    post: (path: string, body: unknown, extra?: Record<string, string>) =>
      kernel.request(path, { method: 'POST', headers: headers(extra), body: JSON.stringify(body) }),
    get: (path: string, extra?: Record<string, string>) => kernel.request(path, { headers: headers(extra) }),
    async json<T = any>(res: Response | Promise<Response>): Promise<{ status: number; body: T; headers: Headers }> {
      const r = await res;
      const text = await r.text();
      return { status: r.status, body: (text ? JSON.parse(text) : undefined) as T, headers: r.headers };
    },
  };
}

export interface SseEvent {
  id?: string;
  event?: string;
  data: any;
}

/** Reads server-sent events until the stream ends or `stop` says so (then the connection is dropped). */
export async function readSse(res: Response, stop?: (events: SseEvent[]) => boolean): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let sep: number;
      while ((sep = buffer.indexOf('\n\n')) >= 0) {
        const frame = buffer.slice(0, sep);
        buffer = buffer.slice(sep + 2);
        const e: SseEvent = { data: undefined };
        const data: string[] = [];
        for (const line of frame.split('\n')) {
          if (line.startsWith('id: ')) e.id = line.slice(4);
          else if (line.startsWith('event: ')) e.event = line.slice(7);
          else if (line.startsWith('data: ')) data.push(line.slice(6));
        }
        const text = data.join('\n');
        try {
          e.data = JSON.parse(text);
        } catch {
          e.data = text;
        }
        events.push(e);
        if (stop?.(events)) return events;
      }
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return events;
}

export async function until(check: () => boolean | Promise<boolean>, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`${what} not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms))]);
}

/** A port nothing listens on. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/**
 * Signs a copy of the sample text pack into `<packsDir>/text` (building its WASM modules when they
 * are stale, as the sample's own test does) and answers the `aion.skills` configuration that trusts it.
 */
export async function signedTextPack(packsDir: string, quarantineDir: string): Promise<Record<string, unknown>> {
  const { signPack } = await import('@aion/ext-skills/packs');
  const { buildSkills } = (await import(pathToFileURL(join(TEXT_PACK_DIR, 'build.mjs')).href)) as { buildSkills(o: { onlyStale: boolean }): Promise<string[]> };
  await buildSkills({ onlyStale: true });
  const pack = join(packsDir, 'text');
  for (const part of ['pack.json', 'README.md', 'schemas', 'dist/skills'])
    await cp(join(TEXT_PACK_DIR, part), join(pack, part), { recursive: true, filter: (src) => !src.endsWith('.stamp') });
  await signPack(pack, await readFile(join(TEXT_PACK_DIR, 'keys/sample.key'), 'utf8'));
  return {
    trustedKeys: [{ name: 'sample', publicKey: await readFile(join(TEXT_PACK_DIR, 'keys/sample.pub'), 'utf8') }],
    packsDir,
    quarantineDir,
    watch: false,
    wasm: { workers: 1 },
  };
}
