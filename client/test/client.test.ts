import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AionApiError, AionClient, MemorySessionStore, type SessionMessage, type TaskEvent } from '../src/index.js';
import { CLIENT_DIR, startHub, startProxy, type Hub } from './hub.js';

const ask = (content: string) => ({ intent: 'chat', messages: [{ role: 'user' as const, content }] });

async function rejects(promise: Promise<unknown>): Promise<AionApiError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof AionApiError, `expected an AionApiError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}

describe('@aion/client against a real hub (SQLite, auth, router with a fake OpenAI upstream, sessions, skills, jobs)', function () {
  this.timeout(120_000);
  let hub: Hub;
  let aion: AionClient;

  before(async () => {
    hub = await startHub({ chunkDelayMs: 20 });
    aion = new AionClient({ baseUrl: hub.url, retry: { minDelayMs: 10 } });
    await aion.auth.login(hub.admin.username, hub.admin.password);
  });
  after(async () => {
    aion?.close();
    await hub?.stop();
  });

  describe('auth', () => {
    it('signs in and sees itself; a wrong password is a typed UNAUTHENTICATED', async () => {
      const me = await aion.auth.me();
      assert.ok(me.scopes.includes('*'));
      assert.equal(me.user.username, hub.admin.username);
      const other = new AionClient({ baseUrl: hub.url });
      const err = await rejects(other.auth.login(hub.admin.username, 'wrong-password-123'));
      assert.equal(err.code, 'UNAUTHENTICATED');
      assert.equal(err.status, 401);
      const anonymous = await rejects(other.tasks.get('task_x'));
      assert.equal(anonymous.code, 'UNAUTHENTICATED');
    });

    it('rotates the refresh token; the old one presented again ends the sign-in (REFRESH_TOKEN_REUSED)', async () => {
      const c = new AionClient({ baseUrl: hub.url });
      await c.auth.login(hub.admin.username, hub.admin.password);
      const before = (await c.auth.tokens())!;
      const after = await c.auth.refresh();
      assert.notEqual(after.refreshToken, before.refreshToken);
      assert.notEqual(after.accessToken, before.accessToken);
      assert.ok((await c.auth.me()).sub);
      const replay = await rejects(
        fetch(`${hub.url}/v1/auth/refresh`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ refresh_token: before.refreshToken }),
        }).then(async (r) => {
          if (!r.ok) throw new AionApiError(((await r.json()) as any).error.code, 'refused', { status: r.status });
        }),
      );
      assert.equal(replay.code, 'REFRESH_TOKEN_REUSED');
      // The family is revoked: this client's own refresh now fails and it forgets the sign-in.
      const ended = await rejects(c.auth.refresh());
      assert.equal(ended.status, 401);
      assert.equal(await c.auth.tokens(), undefined);
    });

    it('refreshes an access token about to expire before using it', async () => {
      let saved: any;
      const store = { load: () => saved, save: (t: any) => void (saved = t) };
      const c = new AionClient({ baseUrl: hub.url, tokenStore: store });
      await c.auth.login(hub.admin.username, hub.admin.password);
      const first = saved.accessToken;
      saved = { ...saved, expiresAt: Date.now() + 1_000 };
      await c.auth.me();
      assert.notEqual(saved.accessToken, first, 'a new access token was fetched');
    });

    it('creates, lists and revokes API keys; a client with a key works until it is revoked', async () => {
      const key = await aion.auth.apiKeys.create({ name: 'sdk-test', scopes: ['tasks:read', 'tasks:write'] });
      assert.match(key.key, /^aion_/);
      assert.ok((await aion.auth.apiKeys.list()).some((k) => k.id === key.id));
      const byKey = new AionClient({ baseUrl: hub.url, apiKey: key.key });
      assert.equal((await byKey.tasks.submit(ask('by key'), { wait: true })).status, 'OK');
      await aion.auth.apiKeys.revoke(key.id);
      const err = await rejects(byKey.tasks.get('task_x'));
      assert.equal(err.status, 401);
    });
  });

  describe('tasks', () => {
    it('submits and waits for the canonical result', async () => {
      const task = await aion.tasks.submit(ask('hello'), { wait: true });
      assert.equal(task.status, 'OK');
      assert.equal(task.result?.text, 'Hello from the hub');
      assert.equal(task.engine?.provider, 'openai');
      assert.deepEqual(task.usage.tokens, { input: 5, output: 4, total: 9 });
      assert.equal((await aion.tasks.get(task.task_id)).status, 'OK');
    });

    it('a repeated idempotency key answers the same task; another body with it is IDEMPOTENCY_KEY_REUSED', async () => {
      const a = await aion.tasks.submit(ask('once'), { idempotencyKey: 'sdk-key-1' });
      const b = await aion.tasks.submit(ask('once'), { idempotencyKey: 'sdk-key-1' });
      assert.equal(b.task_id, a.task_id);
      const err = await rejects(aion.tasks.submit(ask('other'), { idempotencyKey: 'sdk-key-1' }));
      assert.equal(err.code, 'IDEMPOTENCY_KEY_REUSED');
      assert.equal(err.status, 422);
    });

    it('streams tokens then done, and resumes after lastEventId', async () => {
      const task = await aion.tasks.submit(ask('stream'));
      const events: TaskEvent[] = [];
      for await (const e of aion.tasks.stream(task.task_id)) events.push(e);
      assert.deepEqual(
        events.filter((e) => e.event === 'token').map((e) => (e.data as { text: string }).text),
        ['Hello', ' from', ' the', ' hub'],
      );
      assert.equal(events.at(-1)!.event, 'done');
      const firstToken = events.find((e) => e.event === 'token')!;
      const resumed: TaskEvent[] = [];
      for await (const e of aion.tasks.stream(task.task_id, { lastEventId: firstToken.id })) resumed.push(e);
      assert.deepEqual(
        resumed.map((e) => e.id),
        events.map((e) => e.id).filter((id) => id > firstToken.id),
      );
    });

    it('reconnects a cut stream with Last-Event-ID: every event once, in order', async () => {
      const proxy = await startProxy(hub.url, (req) => (req.url?.startsWith('/v1/stream/') ? 'cut-after-first-event' : 'pass'));
      try {
        const c = new AionClient({ baseUrl: proxy.url, accessToken: (await aion.auth.tokens())!.accessToken, retry: { minDelayMs: 5 } });
        const task = await c.tasks.submit(ask('cut me'));
        const events: TaskEvent[] = [];
        for await (const e of c.tasks.stream(task.task_id, { reconnects: 20 })) events.push(e);
        const ids = events.map((e) => e.id);
        assert.deepEqual(
          ids,
          [...new Set(ids)].sort((x, y) => x - y),
          'no event repeated, none out of order',
        );
        assert.equal(events.at(-1)!.event, 'done');
        assert.equal(
          events
            .filter((e) => e.event === 'token')
            .map((e) => (e.data as { text: string }).text)
            .join(''),
          'Hello from the hub',
        );
        const resumes = proxy.seen.filter((s) => s.startsWith('GET /v1/stream/'));
        assert.ok(resumes.length > 1);
        assert.ok(
          resumes.slice(1).every((s) => /\d+$/.test(s)),
          `resumed with Last-Event-ID: ${resumes.join(' | ')}`,
        );
      } finally {
        await proxy.close();
      }
    });

    it('run() follows a task to the end; aborting its signal cancels the task', async () => {
      const tokens: string[] = [];
      const done = await aion.tasks.run(ask('run'), { onToken: (t) => tokens.push(t) });
      assert.equal(done.status, 'OK');
      assert.equal(tokens.join(''), 'Hello from the hub');
      const controller = new AbortController();
      let taskId = '';
      const running = aion.tasks.run(ask('[hang]'), { signal: controller.signal, onEvent: () => undefined, idempotencyKey: 'sdk-abort-1' });
      setTimeout(() => controller.abort(), 500);
      const err = await rejects(running);
      assert.equal(err.code, 'ABORTED');
      taskId = (await aion.tasks.submit(ask('[hang]'), { idempotencyKey: 'sdk-abort-1' })).task_id;
      for (let i = 0; i < 100 && (await aion.tasks.get(taskId)).status !== 'CANCELED'; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal((await aion.tasks.get(taskId)).status, 'CANCELED');
    });

    it('an unknown task is a typed NOT_FOUND; an aborted call is ABORTED', async () => {
      const err = await rejects(aion.tasks.get('task_does_not_exist'));
      assert.equal(err.code, 'NOT_FOUND');
      assert.equal(err.status, 404);
      const controller = new AbortController();
      controller.abort();
      assert.equal((await rejects(aion.tasks.get('task_x', { signal: controller.signal }))).code, 'ABORTED');
    });
  });

  describe('retries', () => {
    it('retries idempotent calls through 503 with Retry-After, and never a call that could run twice', async () => {
      const proxy = await startProxy(hub.url, (_req, n) =>
        n <= 2 ? { status: 503, headers: { 'retry-after': '0' }, body: { error: { code: 'SATURATED', message: 'busy' } } } : 'pass',
      );
      try {
        const c = new AionClient({ baseUrl: proxy.url, accessToken: (await aion.auth.tokens())!.accessToken, retry: { minDelayMs: 5 } });
        const task = await c.tasks.submit(ask('retried'), { wait: true });
        assert.equal(task.status, 'OK');
        assert.equal(proxy.seen.filter((s) => s.startsWith('POST /v1/tasks')).length, 3, 'twice refused, then accepted');
      } finally {
        await proxy.close();
      }
      const strict = await startProxy(hub.url, () => ({ status: 503, headers: { 'retry-after': '7' } }));
      try {
        const c = new AionClient({ baseUrl: strict.url, accessToken: (await aion.auth.tokens())!.accessToken, retry: { minDelayMs: 5 } });
        const err = await rejects(c.sessions.create({ title: 'no id: not safe to repeat' }));
        assert.equal(err.code, 'SATURATED');
        assert.equal(err.retryAfter, 7);
        assert.equal(strict.seen.length, 1, 'sent once');
      } finally {
        await strict.close();
      }
    });
  });

  describe('sessions', () => {
    it('creates, appends, lists and gets', async () => {
      const s = await aion.sessions.create({ id: 'sdk-s1', title: 'SDK' });
      assert.equal(s.id, 'sdk-s1');
      // The hub answers times as milliseconds since the epoch, as the types say.
      assert.equal(typeof s.created_at, 'number');
      assert.ok(Math.abs(s.created_at - Date.now()) < 60_000);
      const written = await aion.sessions.append('sdk-s1', { id: 'sdk-m1', role: 'user', content: 'hi', created_at: Date.now() - 1_000 });
      assert.equal(typeof written.created_at, 'number');
      const again = await aion.sessions.append('sdk-s1', { id: 'sdk-m1', role: 'user', content: 'hi' });
      assert.equal(again.id, 'sdk-m1');
      const got = await aion.sessions.get('sdk-s1');
      assert.equal(got.message_count, 1);
      assert.deepEqual(
        got.messages.map((m) => m.content),
        ['hi'],
      );
      const ids: string[] = [];
      for await (const session of aion.sessions.all({ pageSize: 1 })) ids.push(session.id);
      assert.ok(ids.includes('sdk-s1'));
      assert.equal((await rejects(aion.sessions.get('nope'))).code, 'NOT_FOUND');
    });

    it('delivers live updates of a session appended by another client', async () => {
      await aion.sessions.create({ id: 'sdk-live' });
      const received: SessionMessage[] = [];
      const stop = await aion.sessions.subscribe('sdk-live', { onMessage: (m) => received.push(m) });
      const writer = new AionClient({ baseUrl: hub.url });
      await writer.auth.login(hub.admin.username, hub.admin.password);
      await writer.sessions.append('sdk-live', { role: 'user', content: 'live!' });
      for (let i = 0; i < 100 && received.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      stop();
      assert.equal(received[0]?.content, 'live!');
      const outsider = new AionClient({ baseUrl: hub.url, accessToken: 'not-a-token' });
      const refused = await rejects(outsider.sessions.subscribe('sdk-live', {}));
      assert.equal(refused.code, 'UNAUTHENTICATED');
      outsider.close();
    });

    it('syncs a local store written offline: pushes once, pulls the hub changes, repeats harmlessly', async () => {
      await aion.sessions.create({ id: 'sdk-hub-side', title: 'from the hub' });
      const store = new MemorySessionStore();
      store.createSession({ id: 'sdk-offline', title: 'written offline' });
      store.appendMessage({ id: 'sdk-off-m1', session_id: 'sdk-offline', role: 'user', content: 'while away' });
      const first = await aion.sessions.sync(store, { limit: 2 });
      assert.ok(first.pages > 1, 'paged');
      assert.ok(store.sessions.has('sdk-offline') && store.sessions.has('sdk-hub-side'));
      assert.ok(store.messages.has('sdk-off-m1'));
      assert.equal(store.pending().messages.length, 0);
      assert.equal((await aion.sessions.get('sdk-offline')).message_count, 1);
      store.appendMessage({ id: 'sdk-off-m1', session_id: 'sdk-offline', role: 'user', content: 'while away' });
      await aion.sessions.sync(store);
      assert.equal((await aion.sessions.get('sdk-offline')).message_count, 1, 'a repeated batch creates nothing');
    });
  });

  describe('skills, jobs, health', () => {
    it('searches and executes a skill', async () => {
      const found = await aion.skills.search({ q: 'wrap' });
      assert.ok(found.skills.some((s) => s.id === 'text.wrap'));
      const run = await aion.skills.execute<any>('text.wrap', { text: 'aaaa bbbb cccc dddd', width: 9 });
      assert.ok(run.result !== undefined);
      assert.equal((await rejects(aion.skills.execute('no.such', {}))).status, 404);
    });

    it('reads a job as a typed NOT_FOUND when there is none', async () => {
      const err = await rejects(aion.jobs.get('job_missing'));
      assert.equal(err.code, 'NOT_FOUND');
    });

    it('reads health and capabilities', async () => {
      const live = await aion.health.live();
      assert.ok(live.status);
      const caps = await aion.health.capabilities();
      assert.deepEqual(caps.api_versions, ['v1']);
      assert.ok(Array.isArray(caps.providers));
    });
  });
});

describe('@aion/client browser bundle', () => {
  it('exists, and imports nothing from node:', () => {
    const bundle = readFileSync(join(CLIENT_DIR, 'dist', 'browser', 'aion-client.js'), 'utf8');
    assert.ok(bundle.length > 1000);
    assert.doesNotMatch(bundle, /["']node:[a-z_/]+["']/);
    assert.doesNotMatch(bundle, /require\(["'](fs|path|http|https|net|tls|crypto|child_process)["']\)/);
    assert.match(bundle, /AionApiError/);
  });
});
