import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { TestKernel } from '@aion/core';
import { probeRedis, REDIS_URL } from '@aion/ext-auth/testing';
import { startFakeOpenAI, type FakeOpenAI } from '@aion/ext-provider-openai/testing';
import { dropSchema, newSchemaName, POSTGRES_TEST_URL, probePostgres, requireServer } from '@aion/ext-storage/testing';
import {
  AUTH_FIXTURE,
  chatRequests,
  client,
  OPENAI_DIR,
  readSse,
  ROUTER_DIR,
  signedTextPack,
  SKILLS_DIR,
  STORAGE_DIR,
  startRouterKernel,
  TEXT_PACK_DIR,
  TOKENS,
  until,
} from './helpers.js';

const CLI = resolve(ROUTER_DIR, '..', '..', 'core', 'dist', 'src', 'cli', 'main.js');
/** Short liveness, so a killed kernel is missed within about a second. */
const CLUSTER = { heartbeatMs: 250, livenessMs: 1_000 };

/**
 * Durable tasks: kernel A (a child process) runs a task and is killed with SIGKILL; kernel B, on the
 * same PostgreSQL and Redis, sees A leave the cluster and takes the task over.
 */
describe('durable tasks: a kernel that dies hands its tasks to another', function () {
  this.timeout(180_000);
  let openai: FakeOpenAI;
  let work: string;
  let schema: string | undefined;
  let b: TestKernel;
  let config: Record<string, Record<string, unknown>>;
  const words = Array.from({ length: 20 }, (_, i) => `w${i} `);

  before(async function () {
    requireServer(this, `PostgreSQL at ${POSTGRES_TEST_URL}`, await probePostgres());
    requireServer(this, `Redis at ${REDIS_URL}`, await probeRedis());
    schema = newSchemaName();
    work = await mkdtemp(join(tmpdir(), 'aion-durable-'));
    // Streams slowly, so A is killed mid-answer.
    openai = await startFakeOpenAI({ chunkDelayMs: 100, reply: () => ({ kind: 'answer', text: words }) });
    config = {
      'routertest.test-auth': { tokens: TOKENS },
      'aion.storage': { databaseUrl: POSTGRES_TEST_URL, postgres: { schema } },
      'aion.router': {
        providers: { openai: { enabled: true } },
        defaults: { privacy: 'allow-api' },
        redisUrl: REDIS_URL,
        redisPrefix: `aion-test:${schema}`,
        durableTasks: { checkIntervalMs: 300 },
      },
      'aion.provider-openai': { baseUrl: openai.url, apiKeySecret: '' },
      'aion.skills': await signedTextPack(join(work, 'packs'), join(work, 'quarantine')),
    };
    const { 'routertest.test-auth': _auth, ...sections } = config;
    b = await startRouterKernel({
      extensions: [STORAGE_DIR, OPENAI_DIR, SKILLS_DIR, TEXT_PACK_DIR],
      config: sections,
      configOverrides: { server: { redisUrl: REDIS_URL, cluster: CLUSTER } },
    });
  });
  after(async () => {
    await b?.stop();
    await openai?.close();
    if (schema) await dropSchema(schema);
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** `aion serve` in a child process on the same PostgreSQL and Redis. */
  async function startKernelA(): Promise<{ child: ChildProcess; url: string }> {
    const dataDir = await mkdtemp(join(work, 'a-'));
    const file = join(dataDir, 'config.json');
    await writeFile(file, JSON.stringify({ server: { redisUrl: REDIS_URL, cluster: CLUSTER }, extensions: config }));
    const child = spawn(
      process.execPath,
      [
        CLI,
        'serve',
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--data-dir',
        dataDir,
        '--config',
        file,
        '--builtins',
        'aion.storage,aion.router,aion.provider-openai,aion.skills',
        '--extensions-dir',
        AUTH_FIXTURE,
        '--extensions-dir',
        TEXT_PACK_DIR,
        '--log-level',
        'info',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c));
    child.stderr!.on('data', (c: Buffer) => (out += c));
    let url: string | undefined;
    await until(() => (url = /Aion is listening on (http:\/\/\S+)/.exec(out)?.[1]) !== undefined, 60_000, `kernel A to listen\n${out}`).catch((err) => {
      child.kill('SIGKILL');
      throw err;
    });
    return { child, url: url! };
  }

  const api = (url: string, token = 'test-token') => ({
    post: (path: string, body: unknown) =>
      fetch(url + path, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    get: (path: string, headers: Record<string, string> = {}) => fetch(url + path, { headers: { authorization: `Bearer ${token}`, ...headers } }),
  });
  const killed = (child: ChildProcess) =>
    new Promise<void>((r) => {
      child.once('exit', () => r());
      child.kill('SIGKILL');
    });

  it('runs a task without skills again on B, from the start, with the switch in its record and its stream going on', async () => {
    const a = await startKernelA();
    const created = await api(a.url).post('/v1/tasks', { input: 'stream something', preferred_engine: 'openai/gpt-4o-mini' });
    assert.equal(created.status, 202, await created.clone().text());
    const taskId = ((await created.json()) as { task_id: string }).task_id;
    const seen = await readSse(await api(a.url).get(`/v1/stream/${taskId}`), (events) => events.filter((e) => e.event === 'token').length >= 3);
    const lastSeen = Number(seen.at(-1)!.id);
    const callsBefore = chatRequests(openai.requests).length;
    await killed(a.child);

    // The client comes back to B with the last id it saw on A.
    const rest = await readSse(await client(b).get(`/v1/stream/${taskId}`, { 'last-event-id': String(lastSeen) }));
    assert.ok(Number(rest[0]!.id) > lastSeen, `ids go on after ${lastSeen}: ${rest[0]!.id}`);
    assert.deepEqual(rest[0]!.data, { kind: 'restart', reason: 'KERNEL_LOST', from_kernel: rest[0]!.data.from_kernel });
    assert.match(rest[0]!.data.from_kernel, new RegExp(`-${a.child.pid}-`), 'the restart names the kernel that stopped');
    assert.equal(rest.at(-1)!.event, 'done');
    const text = rest
      .filter((e) => e.event === 'token')
      .map((e) => (e.data as { text: string }).text)
      .join('');
    assert.equal(text, words.join(''), 'the whole answer, from the start, after the restart event');

    const { body } = await client(b).json(client(b).get(`/v1/tasks/${taskId}`));
    assert.equal(body.status, 'OK');
    assert.equal(body.result.text, words.join(''));
    assert.equal(body.recoveries.length, 1);
    assert.equal(body.recoveries[0].retried, true);
    assert.match(body.recoveries[0].from_kernel, new RegExp(`-${a.child.pid}-`));
    assert.notEqual(body.recoveries[0].to_kernel, body.recoveries[0].from_kernel);
    assert.equal(chatRequests(openai.requests).length, callsBefore + 1, 'B called the upstream once more');
  });

  it('fails a task that called skills with KERNEL_LOST instead of running it twice', async () => {
    const a = await startKernelA();
    const calls = chatRequests(openai.requests).length;
    const created = await api(a.url, 'skills-token').post('/v1/tasks', {
      input: 'slugify something',
      preferred_engine: 'openai/gpt-4o-mini',
      skills: ['text.slugify'],
    });
    assert.equal(created.status, 202, await created.clone().text());
    const taskId = ((await created.json()) as { task_id: string }).task_id;
    // A has asked the model: the task is running there.
    await until(() => chatRequests(openai.requests).length > calls, 10_000, 'A to call the model');
    await killed(a.child);
    let task: any;
    await until(
      async () => {
        task = (await client(b, 'skills-token').json(client(b, 'skills-token').get(`/v1/tasks/${taskId}`))).body;
        return task.status !== 'RUNNING' && task.status !== 'QUEUED';
      },
      15_000,
      'B to take the task over',
    );
    assert.equal(task.status, 'ERROR');
    assert.equal(task.error.code, 'KERNEL_LOST');
    assert.match(task.error.message, /not run again/);
    assert.equal(task.recoveries[0].retried, false);
    assert.equal(chatRequests(openai.requests).length, calls + 1, 'nobody called the model for it again');
  });

  it('leaves the tasks of a kernel that is alive alone', async () => {
    const a = await startKernelA();
    try {
      const created = await api(a.url).post('/v1/tasks', { input: 'stream something', preferred_engine: 'openai/gpt-4o-mini' });
      const taskId = ((await created.json()) as { task_id: string }).task_id;
      const events = await readSse(await api(a.url).get(`/v1/stream/${taskId}`));
      assert.equal(events.at(-1)!.event, 'done');
      assert.ok(!events.some((e) => e.data?.kind === 'restart'), 'never restarted');
      const { body } = await client(b).json(client(b).get(`/v1/tasks/${taskId}`));
      assert.equal(body.status, 'OK');
      assert.equal(body.recoveries, undefined);
    } finally {
      a.child.kill('SIGTERM');
      await new Promise((r) => a.child.once('exit', r));
    }
  });
});
