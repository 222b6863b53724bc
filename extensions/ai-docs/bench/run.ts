/**
 * What the job machinery adds to one model call: a file summary end to end (POST, queue, worker,
 * file read through aion.projects, router task, validation, result read by polling) against the
 * baseline of the same router task submitted directly (`POST /v1/tasks` with `wait: true`), same
 * kernel, same fake OpenAI upstream, alternating, in one run.
 *
 *   npm run bench            (node dist/bench/run.js [--requests 60])
 */
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { signInAdmin } from '@aion/ext-auth/testing';
import { createGitRepo } from '@aion/ext-projects/testing';
import { startFakeAnthropic } from '@aion/ext-provider-anthropic/testing';
import { startFakeOpenAI } from '@aion/ext-provider-openai/testing';
import { buildMessages } from '../src/prompts.js';
import { api, modelAnswer, promptOf, startAiDocsKernel } from '../test/helpers.js';

const { values } = parseArgs({ options: { requests: { type: 'string', default: '60' } } });
const requests = Number(values.requests);
const SOURCE = 'export function add(a: number, b: number) {\n  return a + b;\n}\n'.repeat(20);

const openai = await startFakeOpenAI({
  reply: (r) => ({ kind: 'answer', text: modelAnswer(promptOf(r), 'openai').text, usage: { prompt_tokens: 100, completion_tokens: 20 } }),
});
const anthropic = await startFakeAnthropic({ replies: [{ kind: 'status', status: 500 }] });
const root = realpathSync(mkdtempSync(join(tmpdir(), 'aion-ai-docs-bench-')));
const repo = await createGitRepo({ 'src/math.ts': SOURCE }, { parent: root });
const kernel = await startAiDocsKernel(
  { openai: openai.url, anthropic: anthropic.url },
  { localRoots: [root], router: { providers: { anthropic: { enabled: false } } } },
);
try {
  const token = (await signInAdmin(kernel)).access_token;
  const projectId = (await api(kernel, 'POST', '/v1/projects', token, { name: 'bench', repository: repo.path })).body.id;
  const messages = buildMessages('file-summary', { path: 'src/math.ts', content: SOURCE, range: null, symbol: null });

  const direct = async () => {
    const res = await api(kernel, 'POST', '/v1/tasks', token, { intent: 'summarize', messages, max_tokens: 2048, temperature: 0, wait: true });
    if (res.body.status !== 'OK') throw new Error(`task: ${JSON.stringify(res.body)}`);
  };
  const job = async () => {
    const accepted = await api(kernel, 'POST', '/v1/ai/file-summary', token, { project_id: projectId, path: 'src/math.ts' });
    for (;;) {
      const res = await api(kernel, 'GET', `/v1/ai/result/${accepted.body.job_id}`, token);
      if (res.body.status === 'success') return;
      if (res.body.status === 'failed') throw new Error(`job: ${JSON.stringify(res.body.error)}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const times = { direct: [] as number[], job: [] as number[] };
  for (let i = 0; i < 5; i++) await Promise.all([direct(), job()]);
  for (let i = 0; i < requests; i++) {
    for (const [name, fn] of (i % 2 === 0
      ? [
          ['direct', direct],
          ['job', job],
        ]
      : [
          ['job', job],
          ['direct', direct],
        ]) as Array<['direct' | 'job', () => Promise<void>]>) {
      const t = performance.now();
      await fn();
      times[name].push(performance.now() - t);
    }
  }
  const q = (xs: number[], f: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(f * xs.length))]!;
  console.log(`${requests} sequential requests each, alternating; fake OpenAI upstream; a 1.3 KB file`);
  console.log('| path | p50 ms | p90 ms | max ms |');
  console.log('|---|---|---|---|');
  console.log(
    `| POST /v1/tasks wait:true (baseline) | ${q(times.direct, 0.5).toFixed(1)} | ${q(times.direct, 0.9).toFixed(1)} | ${Math.max(...times.direct).toFixed(1)} |`,
  );
  console.log(
    `| POST /v1/ai/file-summary → result (poll 5 ms) | ${q(times.job, 0.5).toFixed(1)} | ${q(times.job, 0.9).toFixed(1)} | ${Math.max(...times.job).toFixed(1)} |`,
  );
  console.log(`job p50 / baseline p50: ${(q(times.job, 0.5) / q(times.direct, 0.5)).toFixed(2)}`);
} finally {
  await kernel.stop();
  await Promise.all([openai.close(), anthropic.close()]);
  rmSync(root, { recursive: true, force: true });
}
