import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { startTestKernel, type TestKernel } from '@aion/core';
import { io } from 'socket.io-client';
import type { JobsHealth, JobView } from '../src/api.js';
import { FIXTURES, forEachBackend, waitFor } from './helpers.js';

const ADA = { authorization: 'Bearer ada' };
const ADMIN = { authorization: 'Bearer admin' };

forEachBackend('aion.jobs', (backend) => {
  let kernel: TestKernel;
  const enqueue = (queue: string, payload: unknown, options?: unknown) => kernel.executeCommand<JobView>('reports.enqueue', queue, payload, options);
  const get = (id: string) => kernel.executeCommand<JobView>('reports.get', id);
  const final = (id: string) =>
    waitFor(`job ${id} to finish`, async () => {
      const job = await get(id);
      return ['success', 'failed', 'canceled'].includes(job.status) && job;
    });
  const attack = (name: string, arg?: unknown) => kernel.executeCommand<{ ok: boolean; code?: string; value?: unknown }>('intruder.try', name, arg);

  before(async () => {
    kernel = await startTestKernel({
      builtins: ['aion.storage', 'aion.jobs'],
      extensions: [resolve(FIXTURES, 'reports'), resolve(FIXTURES, 'intruder'), resolve(FIXTURES, 'jobs-auth')],
      config: {
        permissions: { grants: { 'fixtures.jobs-auth': { kernelHost: true } } },
        extensions: { 'aion.jobs': backend.jobsConfig({ inProcessWorkers: { startDelayMs: 0 }, pollIntervalMs: 20, heartbeatIntervalMs: 200 }) },
      },
    });
  });
  after(async () => kernel?.stop());

  it('runs a job to success, with stages, progress and logs readable by its owner over HTTP', async () => {
    const res = await kernel.request('/v1/reports', {
      method: 'POST',
      headers: { ...ADA, 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'steps', ms: 100 }),
    });
    assert.equal(res.status, 202);
    const queued = (await res.json()) as JobView;
    assert.equal(queued.queue, 'reports');
    assert.deepEqual(queued.owner, { sub: 'ada', tenant_id: 'default' });
    const seen = await waitFor('the render stage', async () => {
      const job = (await (await kernel.request(`/v1/jobs/${queued.id}`, { headers: ADA })).json()) as JobView;
      return (job.stage === 'render' || job.status === 'success') && job;
    });
    assert.ok(seen.progress >= 0.75);
    const done = await final(queued.id);
    assert.equal(done.status, 'success');
    assert.deepEqual(done.result, { pages: 3 });
    assert.equal(done.progress, 1);
    assert.deepEqual(done.attempts, { made: 1, max: 1 });
    assert.ok(done.started_at && done.finished_at);
    const logs = (await (await kernel.request(`/v1/jobs/${queued.id}/logs`, { headers: ADA })).json()) as { logs: Array<{ line: string }> };
    assert.deepEqual(
      logs.logs.map((l) => l.line),
      ['starting', 'done'],
    );
  });

  it('streams progress over SSE until done', async () => {
    const res = await kernel.request('/v1/reports', {
      method: 'POST',
      headers: { ...ADA, 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'steps', ms: 300 }),
    });
    const { id } = (await res.json()) as JobView;
    const sse = await kernel.request(`/v1/jobs/${id}/events`, { headers: ADA });
    assert.equal(sse.status, 200);
    const text = await sse.text();
    const events = [...text.matchAll(/event: (\w+)\ndata: (.*)\n/g)].map((m) => ({ event: m[1], job: JSON.parse(m[2]!) as JobView }));
    assert.equal(events.at(-1)!.event, 'done');
    assert.equal(events.at(-1)!.job.status, 'success');
    assert.ok(
      events.some((e) => e.event === 'progress' && e.job.status === 'running'),
      text,
    );
  });

  it('publishes a job to its socket.io room, for those who may read it', async () => {
    const res = await kernel.request('/v1/reports', {
      method: 'POST',
      headers: { ...ADA, 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'steps', ms: 400 }),
    });
    const { id } = (await res.json()) as JobView;
    const bob = io(kernel.url, { auth: { token: 'bob' }, transports: ['websocket'] });
    const ada = io(kernel.url, { auth: { token: 'ada' }, transports: ['websocket'] });
    try {
      const denied = await bob.emitWithAck('subscribe', { room: `job:${id}` });
      assert.equal(denied.ok, false);
      const updates: JobView[] = [];
      const finished = new Promise<void>((resolveDone) => ada.on('job', (job: JobView) => (updates.push(job), job.status === 'success' && resolveDone())));
      const allowed = await ada.emitWithAck('subscribe', { room: `job:${id}` });
      assert.equal(allowed.ok, true);
      await finished;
      assert.ok(updates.every((u) => u.id === id));
    } finally {
      bob.close();
      ada.close();
    }
  });

  it("keeps a handler's error code; retries with backoff until a try succeeds", async () => {
    const failed = await final((await enqueue('reports', { action: 'fail' })).id);
    assert.equal(failed.status, 'failed');
    assert.equal(failed.error?.code, 'REPORT_BROKEN');
    const flaky = await final((await enqueue('slow', { action: 'flaky', succeedOn: 3 }, { attempts: 3, backoff: { type: 'fixed', delayMs: 20 } })).id);
    assert.equal(flaky.status, 'success');
    assert.deepEqual(flaky.result, { attempt: 3 });
    assert.equal(flaky.attempts.made, 3);
  });

  it("fails a try that runs past its timeout with JOB_TIMEOUT and cancels the handler's token", async () => {
    const job = await enqueue('slow', { action: 'hang' }, { timeoutMs: 300 });
    const done = await final(job.id);
    assert.equal(done.status, 'failed');
    assert.equal(done.error?.code, 'JOB_TIMEOUT');
    assert.equal(await waitFor('the token', () => kernel.executeCommand<boolean>('reports.tokenCancelled', job.id)), true);
  });

  it("cancels a running job (the handler's token fires) and a queued one, over HTTP", async () => {
    const running = await enqueue('slow', { action: 'hang' }, { owner: { sub: 'ada' } });
    const queued = await enqueue('slow', { action: 'echo' }, { owner: { sub: 'ada' } });
    await waitFor('the job to run', async () => (await get(running.id)).status === 'running');
    const res = await kernel.request(`/v1/jobs/${running.id}/cancel`, { method: 'POST', headers: ADA });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as JobView).status, 'canceled');
    assert.equal(await waitFor('the token', () => kernel.executeCommand<boolean>('reports.tokenCancelled', running.id)), true);
    const second = (await (await kernel.request(`/v1/jobs/${queued.id}/cancel`, { method: 'POST', headers: ADA })).json()) as JobView;
    assert.ok(['canceled', 'success'].includes(second.status));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await get(running.id)).status, 'canceled', 'a handler that ignored its token does not turn a canceled job into a success');
    assert.equal((await get(running.id)).error?.code, 'JOB_CANCELED');
  });

  it('runs higher priorities first', async () => {
    const blocker = await enqueue('slow', { action: 'sleep', ms: 400 });
    await waitFor('the blocker to run', async () => (await get(blocker.id)).status === 'running');
    const low = await enqueue('slow', { action: 'echo' }, { priority: 1 });
    const high = await enqueue('slow', { action: 'echo' }, { priority: 900 });
    await final(low.id);
    const order = await kernel.executeCommand<string[]>('reports.started');
    assert.ok(order.indexOf(high.id) < order.indexOf(low.id), 'the high-priority job started first');
  });

  it('keeps queues apart: a backlog on one queue does not delay another', async () => {
    const backlog = await Promise.all(Array.from({ length: 5 }, () => enqueue('slow', { action: 'sleep', ms: 300 })));
    const quick = await final((await enqueue('fast', { action: 'echo', value: 1 })).id);
    assert.equal(quick.status, 'success');
    const last = await get(backlog.at(-1)!.id);
    assert.notEqual(last.status, 'success', 'the fast job finished while the slow backlog was still waiting');
    for (const b of backlog) await kernel.executeCommand('reports.cancel', b.id);
  });

  it('treats jobId as an idempotency key, and refuses it across extensions with CONFLICT', async () => {
    const a = await enqueue('inbox', { value: 1, when: new Date(0), gone: undefined }, { jobId: `inbox-${backend.name}-1` });
    const stored = await get(a.id);
    const fixed = (j: JobView) => ({
      ...j,
      status: 'queued',
      progress: 0,
      stage: null,
      result: null,
      error: null,
      worker: null,
      started_at: null,
      finished_at: null,
      updated_at: null,
      attempts: { ...j.attempts, made: 0 },
    });
    assert.deepEqual(fixed(a), fixed(stored), 'enqueue answers the job as stored (a worker may have taken it since)');
    assert.equal(a.status, 'queued');
    const b = await enqueue('inbox', { value: 2 }, { jobId: `inbox-${backend.name}-1` });
    assert.equal(b.id, a.id);
    assert.deepEqual(b.payload, { value: 1, when: '1970-01-01T00:00:00.000Z' });
    const bad = await kernel.executeCommand<JobView>('reports.enqueue', 'inbox', {}, { jobId: '../etc' }).catch((e) => e);
    assert.equal(bad.code, 'VALIDATION_FAILED');
  });

  it("refuses enqueue beyond the queue's maximum with QUEUE_FULL, 429 and Retry-After, creating nothing", async () => {
    const held = [await enqueue('reports', { action: 'hang' }), await enqueue('reports', { action: 'hang' }), await enqueue('reports', { action: 'hang' })];
    const res = await kernel.request('/v1/reports', {
      method: 'POST',
      headers: { ...ADA, 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'echo' }),
    });
    assert.equal(res.status, 429);
    assert.ok(Number(res.headers.get('retry-after')) >= 1);
    const body = (await res.json()) as { error: { code: string; details: { maxSize: number } } };
    assert.equal(body.error.code, 'QUEUE_FULL');
    assert.equal(body.error.details.maxSize, 3);
    const listed = (await (await kernel.request('/v1/jobs?queue=reports&status=queued', { headers: ADMIN })).json()) as { jobs: JobView[] };
    const running = (await (await kernel.request('/v1/jobs?queue=reports&status=running', { headers: ADMIN })).json()) as { jobs: JobView[] };
    assert.equal(listed.jobs.length + running.jobs.length, 3);
    for (const j of held) await kernel.executeCommand('reports.cancel', j.id);
    const again = await enqueue('reports', { action: 'echo' });
    assert.equal((await final(again.id)).status, 'success');
  });

  it("refuses a hostile extension: privileged queues, others' jobs, progress, admin calls, squatting and handler hijack", async () => {
    assert.equal((await attack('enqueuePrivileged')).code, 'FORBIDDEN');
    const pub = await attack('enqueuePublic');
    assert.equal(pub.ok, true, JSON.stringify(pub));
    assert.equal((await attack('enqueueBuiltin')).code, 'FORBIDDEN', 'preview_build is reserved for aion.preview');
    assert.equal((await attack('list')).code, 'FORBIDDEN');
    assert.equal((await attack('scale')).code, 'FORBIDDEN');
    const victim = await enqueue('slow', { action: 'hang' });
    await waitFor('the victim to run', async () => (await get(victim.id)).status === 'running');
    assert.deepEqual(await attack('read', victim.id), { ok: true, value: null });
    assert.deepEqual(await attack('cancel', victim.id), { ok: true, value: null });
    assert.equal((await attack('progress', victim.id)).code, 'FORBIDDEN');
    assert.equal((await attack('log', victim.id)).code, 'FORBIDDEN');
    assert.equal((await get(victim.id)).status, 'running');
    await kernel.executeCommand('reports.cancel', victim.id);
    await attack('hijack');
    const after = await final((await enqueue('reports', { value: 'mine' })).id);
    assert.deepEqual(after.result, { echo: 'mine' }, `the owner's handler ran, not the intruder's: ${JSON.stringify(after)}`);
  });

  it('limits HTTP readers: owners read their jobs, listing needs jobs:admin, bad filters are 400', async () => {
    const res = await kernel.request('/v1/reports', {
      method: 'POST',
      headers: { ...ADA, 'content-type': 'application/json' },
      body: JSON.stringify({ value: 1 }),
    });
    const { id } = (await res.json()) as JobView;
    assert.equal((await kernel.request(`/v1/jobs/${id}`, { headers: { authorization: 'Bearer bob' } })).status, 404);
    assert.equal((await kernel.request(`/v1/jobs/${id}/cancel`, { method: 'POST', headers: { authorization: 'Bearer bob' } })).status, 404);
    assert.equal((await kernel.request(`/v1/jobs/${id}`)).status, 401);
    assert.equal((await kernel.request('/v1/jobs', { headers: ADA })).status, 403);
    assert.equal((await kernel.request(`/v1/jobs/${id}`, { headers: ADMIN })).status, 200);
    const bad = await kernel.request('/v1/jobs?status=exploded', { headers: ADMIN });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'VALIDATION_FAILED');
    assert.equal((await kernel.request('/v1/jobs?queue=nope', { headers: ADMIN })).status, 404);
  });

  it("reports health: backend, every queue's depth and oldest waiting age, worker heartbeats", async () => {
    const res = await kernel.request('/v1/jobs/health', { headers: ADMIN });
    const health = (await res.json()) as JobsHealth;
    assert.equal(health.backend.kind, backend.name);
    assert.equal(health.backend.ok, true);
    for (const q of ['ai_jobs', 'preview_build', 'cleanup', 'gpu_ai_jobs', 'reports'])
      assert.ok(
        health.queues.some((x) => x.id === q),
        q,
      );
    const reports = health.queues.find((q) => q.id === 'reports')!;
    assert.equal(reports.owner, 'acme.reports');
    assert.equal(reports.max_size, 3);
    const hub = health.workers.find((w) => w.queues.includes('reports'))!;
    assert.equal(hub.state, 'ok');
    assert.equal(hub.type, 'cpu');
    assert.ok(hub.concurrency >= 2);
    assert.ok(
      health.workers.some((w) => w.queues.includes('cleanup')),
      'one worker holds the cleanup lock',
    );
    assert.ok(health.problems.some((p) => p.includes('evil.intruder') && p.includes('preview_build')));
  });
});
