import assert from 'node:assert/strict';
import { mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestKernel } from '@aion/core';
import { createUser, signInAdmin, type Tokens } from '@aion/ext-auth/testing';
import { createGitRepo, type TestRepo } from '@aion/ext-projects/testing';
import { startFakeAnthropic, type FakeAnthropic } from '@aion/ext-provider-anthropic/testing';
import { startFakeOllama, type FakeOllama } from '@aion/ext-provider-ollama/testing';
import { startFakeOpenAI, type FakeOpenAI } from '@aion/ext-provider-openai/testing';
import { api, modelAnswer, promptOf, result, startAiDocsKernel } from './helpers.js';

type User = Tokens & { id: string };
const AI_USER_SCOPES = ['projects:read', 'projects:write', 'ai:read', 'ai:write', 'jobs:read', 'jobs:write'];

const SOURCE = ['export function add(a: number, b: number) {', '  return a + b;', '}', '', 'export const answer = add(40, 2);', ''].join('\n');

/** Fake OpenAI, Anthropic and (optionally) Ollama servers that answer the prompt as a model would. */
async function startUpstreams(withOllama: boolean) {
  const openai = await startFakeOpenAI({
    reply: (r) => {
      const a = modelAnswer(promptOf(r), 'openai');
      return a.status ? { kind: 'status', status: a.status } : { kind: 'answer', text: a.text, usage: { prompt_tokens: 120, completion_tokens: 30 } };
    },
  });
  const anthropic = await startFakeAnthropic({
    models: ['claude-sonnet-4-5', 'claude-haiku-4-5'],
    reply: (r) => {
      const a = modelAnswer(promptOf(r), 'anthropic');
      return a.status ? { kind: 'status', status: a.status } : { kind: 'answer', text: a.text, inputTokens: 130, outputTokens: 40 };
    },
  });
  const ollama = withOllama
    ? await startFakeOllama({
        reply: (r) => {
          const a = modelAnswer(promptOf(r), 'ollama');
          return a.hang
            ? { kind: 'hang' }
            : a.status
              ? { kind: 'status', status: a.status }
              : { kind: 'answer', text: a.text, promptEvalCount: 100, evalCount: 20 };
        },
      })
    : undefined;
  return { openai, anthropic, ollama };
}

describe('aion.ai-docs with a local model, against fake vendor servers', function () {
  // Starting a kernel with nine extensions and four hosts takes longer than the suite's default on a loaded machine.
  this.timeout(120_000);
  let kernel: TestKernel;
  let openai: FakeOpenAI;
  let anthropic: FakeAnthropic;
  let ollama: FakeOllama | undefined;
  let root: string;
  let outside: string;
  let repo: TestRepo;
  let alice: User;
  let bob: User;
  let projectId: string;

  before(async () => {
    ({ openai, anthropic, ollama } = await startUpstreams(true));
    root = realpathSync(mkdtempSync(join(tmpdir(), 'aion-ai-docs-root-')));
    outside = realpathSync(mkdtempSync(join(tmpdir(), 'aion-ai-docs-outside-')));
    writeFileSync(join(outside, 'secret.ts'), 'export const password = "hunter2";\n');
    repo = await createGitRepo(
      {
        'src/math.ts': SOURCE,
        'src/fallback.ts': `// [ollama:500]\n${SOURCE}`,
        'src/fallback-twice.ts': `// [ollama:500] [openai:500]\n${SOURCE}`,
        'src/garbage.ts': `// [ai:garbage]\n${SOURCE}`,
        'src/fixable.ts': `// [ai:fixable]\n${SOURCE}`,
        'src/big.ts': `// ${'x'.repeat(4000)}\n`,
        'src/hang.ts': `// [ollama:hang]\n${SOURCE}`,
      },
      { parent: root },
    );
    symlinkSync(join(outside, 'secret.ts'), join(repo.path, 'src', 'leak.ts'));
    kernel = await startAiDocsKernel({ openai: openai.url, anthropic: anthropic.url, ollama: ollama!.url }, { localRoots: [root] });
    const admin = await signInAdmin(kernel);
    alice = await createUser(kernel, admin.access_token, 'alice', { scopes: AI_USER_SCOPES });
    bob = await createUser(kernel, admin.access_token, 'bob', { scopes: AI_USER_SCOPES });
    const created = await api(kernel, 'POST', '/v1/projects', alice.access_token, { name: 'demo', repository: repo.path });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    projectId = created.body.id;
  });
  after(async () => {
    await kernel?.stop();
    await Promise.all([openai?.close(), anthropic?.close(), ollama?.close()]);
    rmSync(root, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });

  const submit = (kind: string, body: Record<string, unknown>, token = alice.access_token) => api(kernel, 'POST', `/v1/ai/${kind}`, token, body);
  async function run(kind: string, body: Record<string, unknown>) {
    const accepted = await submit(kind, { project_id: projectId, ...body });
    assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
    assert.equal(typeof accepted.body.job_id, 'string');
    return result(kernel, alice.access_token, accepted.body.job_id);
  }

  it('file-summary: reads the file, asks the local model first with intent summarize, stores the validated answer with engine and usage', async () => {
    const before = ollama!.requests.length;
    const done = await run('file-summary', { path: 'src/math.ts' });
    assert.equal(done.status, 'success', JSON.stringify(done.error));
    assert.equal(done.kind, 'file-summary');
    assert.deepEqual(done.result, { summary: 'ollama summary of src/math.ts', key_points: ['exports answer'], language: 'typescript' });
    assert.equal(done.engine.provider, 'ollama');
    assert.equal(done.engine.route, 'local');
    assert.deepEqual(done.usage.tokens, { input: 100, output: 20, total: 120 });
    assert.match(done.task_id, /^task_/);
    assert.deepEqual(done.file, { path: 'src/math.ts', size: Buffer.byteLength(SOURCE), range: null });
    const sent = promptOf(ollama!.requests.slice(before).find((r) => r.method === 'POST')!);
    assert.match(sent, /"required":\["summary"\]/, 'the prompt carries the schema');
    assert.match(sent, /1 \| export function add/, 'and the numbered file');
  });

  it('inline-comment: only the asked range is sent, and comments must fall inside it', async () => {
    const before = ollama!.requests.length;
    const done = await run('inline-comment', { path: 'src/math.ts', range: { start_line: 2, end_line: 3 } });
    assert.equal(done.status, 'success', JSON.stringify(done.error));
    assert.deepEqual(done.result, { comments: [{ line: 2, comment: 'ollama explains line 2' }] });
    const sent = promptOf(ollama!.requests.slice(before).find((r) => r.method === 'POST')!);
    assert.ok(!sent.includes('export function add'), 'line 1 is not sent');
    assert.match(sent, /2 \| {3}return a \+ b;/);
    const outOfFile = await run('inline-comment', { path: 'src/math.ts', range: { start_line: 50, end_line: 60 } });
    assert.equal(outOfFile.status, 'failed');
    assert.equal(outOfFile.error.code, 'INVALID_AI_REQUEST');
  });

  it('rename-suggestions: the symbol reaches the prompt and the answer is validated', async () => {
    const done = await run('rename-suggestions', { path: 'src/math.ts', symbol: 'add' });
    assert.equal(done.status, 'success', JSON.stringify(done.error));
    assert.deepEqual(done.result, { suggestions: [{ from: 'add', to: 'addRenamed', reason: 'ollama thinks so' }] });
  });

  it('falls back: the local model fails → the primary provider; it fails too → the next provider', async () => {
    const once = await run('file-summary', { path: 'src/fallback.ts' });
    assert.equal(once.status, 'success', JSON.stringify(once.error));
    assert.equal(once.engine.provider, 'openai');
    assert.equal(once.result.summary, 'openai summary of src/fallback.ts');
    assert.deepEqual(once.usage.tokens, { input: 120, output: 30, total: 150 });
    const twice = await run('file-summary', { path: 'src/fallback-twice.ts' });
    assert.equal(twice.status, 'success', JSON.stringify(twice.error));
    assert.equal(twice.engine.provider, 'anthropic');
    assert.equal(twice.result.summary, 'anthropic summary of src/fallback-twice.ts');
  });

  it('privacy local-only keeps the job on the local model', async () => {
    const done = await run('inline-comment', { path: 'src/math.ts', privacy: 'local-only' });
    assert.equal(done.status, 'success', JSON.stringify(done.error));
    assert.equal(done.engine.route, 'local');
  });

  it('canceling the job cancels its model call: the upstream request is closed', async () => {
    const before = ollama!.requests.length;
    const accepted = await submit('file-summary', { project_id: projectId, path: 'src/hang.ts' });
    assert.equal(accepted.status, 202);
    const end = Date.now() + 10_000;
    while (!ollama!.requests.slice(before).some((r) => r.method === 'POST')) {
      assert.ok(Date.now() < end, 'the model was asked');
      await new Promise((r) => setTimeout(r, 20));
    }
    const call = ollama!.requests.slice(before).find((r) => r.method === 'POST')!;
    const canceled = await api(kernel, 'POST', `/v1/jobs/${accepted.body.job_id}/cancel`, alice.access_token);
    assert.equal(canceled.status, 200, JSON.stringify(canceled.body));
    const done = await result(kernel, alice.access_token, accepted.body.job_id);
    assert.equal(done.status, 'canceled');
    await Promise.race([
      call.disconnected,
      new Promise((_, reject) => setTimeout(() => reject(new Error('the upstream call was not closed within 3 s')), 3000)),
    ]);
  });

  it('an answer that is not valid JSON is asked again, then the job fails with AI_RESULT_INVALID', async () => {
    const fixed = await run('file-summary', { path: 'src/fixable.ts' });
    assert.equal(fixed.status, 'success', JSON.stringify(fixed.error));
    assert.equal(fixed.tasks, 2, 'the second task, told what was wrong, answered valid JSON');
    const garbage = await run('file-summary', { path: 'src/garbage.ts' });
    assert.equal(garbage.status, 'failed');
    assert.equal(garbage.error.code, 'AI_RESULT_INVALID');
    assert.match(garbage.error.message, /not JSON/);
  });

  it('refuses paths out of the project: `..`, absolute and .git at once, a symlink out in the worker; size cap and missing files', async () => {
    for (const path of ['../outside.ts', 'src/../../x', '/etc/passwd', join(outside, 'secret.ts'), '.git/config']) {
      const res = await submit('file-summary', { project_id: projectId, path });
      assert.equal(res.status, 400, path);
      assert.equal(res.body.error.code, 'PATH_OUTSIDE_PROJECT', path);
    }
    const before = [openai, anthropic, ollama!].map((s) => s.requests.length);
    for (const [path, code] of [
      ['src/leak.ts', 'PATH_OUTSIDE_PROJECT'],
      ['src/big.ts', 'FILE_TOO_LARGE'],
      ['src/none.ts', 'FILE_NOT_FOUND'],
    ]) {
      const done = await run('file-summary', { path });
      assert.equal(done.status, 'failed', path);
      assert.equal(done.error.code, code, `${path}: ${done.error.message}`);
    }
    assert.deepEqual(
      [openai, anthropic, ollama!].map((s) => s.requests.length),
      before,
      'no model saw any of it',
    );
  });

  it("refuses another user's project, and shows a job's result only to its owner", async () => {
    const before = await api(kernel, 'GET', '/v1/jobs?queue=ai_jobs&limit=500', alice.access_token);
    const asBob = await submit('file-summary', { project_id: projectId, path: 'src/math.ts' }, bob.access_token);
    assert.equal(asBob.status, 404);
    assert.equal(asBob.body.error.code, 'PROJECT_NOT_FOUND');
    assert.equal(before.status, 403, 'listing jobs needs jobs:admin');
    const accepted = await submit('file-summary', { project_id: projectId, path: 'src/math.ts' });
    const done = await result(kernel, alice.access_token, accepted.body.job_id);
    assert.equal(done.status, 'success');
    const peek = await api(kernel, 'GET', `/v1/ai/result/${accepted.body.job_id}`, bob.access_token);
    assert.equal(peek.status, 404);
    assert.equal(peek.body.error.code, 'AI_JOB_NOT_FOUND');
    assert.ok(!JSON.stringify(peek.body).includes('summary of'), 'nothing of the result leaks');
    assert.equal((await api(kernel, 'GET', '/v1/ai/result/not-a-job', alice.access_token)).body.error.code, 'AI_JOB_NOT_FOUND');
  });

  it('validates requests with stable codes, and the routes need the ai scopes', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ path: 'src/math.ts' }, /project_id is required/],
      [{ project_id: projectId }, /path is required/],
      [{ project_id: projectId, path: 'src/math.ts', range: { start_line: 3, end_line: 1 } }, /range is/],
      [{ project_id: projectId, path: 'src/math.ts', range: { start_line: 0, end_line: 1 } }, /range is/],
      [{ project_id: projectId, path: 'src/math.ts', symbol: '' }, /symbol/],
      [{ project_id: projectId, path: 'src/math.ts', privacy: 'public' }, /privacy/],
      [{ project_id: projectId, path: 'src/math.ts', prompt: 'ignore' }, /unknown field prompt/],
      [[1], /JSON object/],
    ];
    for (const [body, message] of cases) {
      const res = await api(kernel, 'POST', '/v1/ai/inline-comment', alice.access_token, body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.body.error.code, 'INVALID_AI_REQUEST', JSON.stringify(body));
      assert.match(res.body.error.message, message);
    }
    const admin = await signInAdmin(kernel);
    const noScopes = await createUser(kernel, admin.access_token, 'carol', { scopes: ['projects:read'] });
    const refused = await submit('file-summary', { project_id: projectId, path: 'src/math.ts' }, noScopes.access_token);
    assert.equal(refused.status, 403);
  });
});

describe('aion.ai-docs without a local model', function () {
  this.timeout(120_000);
  let kernel: TestKernel;
  let upstreams: Awaited<ReturnType<typeof startUpstreams>>;
  let root: string;
  let alice: User;
  let projectId: string;

  before(async () => {
    upstreams = await startUpstreams(false);
    root = realpathSync(mkdtempSync(join(tmpdir(), 'aion-ai-docs-root-')));
    const repo = await createGitRepo({ 'src/math.ts': SOURCE }, { parent: root });
    // The policy makes every summary local-only; other intents stay hybrid.
    kernel = await startAiDocsKernel(
      { openai: upstreams.openai.url, anthropic: upstreams.anthropic.url },
      { localRoots: [root], router: { policies: { intents: { summarize: { privacy: 'local-only' } } } } },
    );
    const admin = await signInAdmin(kernel);
    alice = await createUser(kernel, admin.access_token, 'alice', { scopes: AI_USER_SCOPES });
    projectId = (await api(kernel, 'POST', '/v1/projects', alice.access_token, { name: 'demo', repository: repo.path })).body.id;
  });
  after(async () => {
    await kernel?.stop();
    await Promise.all([upstreams?.openai.close(), upstreams?.anthropic.close()]);
    rmSync(root, { recursive: true, force: true });
  });

  it('local-only (by policy or by request) with no local model is refused with a clear reason, and no vendor is called', async () => {
    const chats = () => [...upstreams.openai.requests, ...upstreams.anthropic.requests].filter((r) => r.method === 'POST').length;
    const before = chats();
    const byPolicy = await api(kernel, 'POST', '/v1/ai/file-summary', alice.access_token, { project_id: projectId, path: 'src/math.ts' });
    const done = await result(kernel, alice.access_token, byPolicy.body.job_id);
    assert.equal(done.status, 'failed');
    assert.equal(done.error.code, 'NO_ROUTE', done.error.message);
    assert.match(done.error.message, /privacy local-only/);
    assert.match(done.error.message, /residency/);
    const byRequest = await api(kernel, 'POST', '/v1/ai/rename-suggestions', alice.access_token, {
      project_id: projectId,
      path: 'src/math.ts',
      privacy: 'local-only',
    });
    const refused = await result(kernel, alice.access_token, byRequest.body.job_id);
    assert.equal(refused.error?.code, 'NO_ROUTE');
    assert.equal(chats(), before, 'no vendor was asked');
  });

  it('without local-only, the primary provider answers', async () => {
    const accepted = await api(kernel, 'POST', '/v1/ai/rename-suggestions', alice.access_token, {
      project_id: projectId,
      path: 'src/math.ts',
      symbol: 'answer',
    });
    const done = await result(kernel, alice.access_token, accepted.body.job_id);
    assert.equal(done.status, 'success', JSON.stringify(done.error));
    assert.equal(done.engine.route, 'api');
    assert.deepEqual(done.result.suggestions[0].from, 'answer');
  });
});
