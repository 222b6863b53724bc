import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { TestKernel } from '@aion/core';
import { createUser, signInAdmin, type Tokens } from '@aion/ext-auth/testing';
import { forEachDatabase } from '@aion/ext-storage/testing';
import { api, startSessionsKernel } from './helpers.js';

interface LocalSession {
  id: string;
  title: string | null;
  title_updated_at: number;
  created_at: number;
  deleted: boolean;
}

interface LocalMessage {
  id: string;
  session_id: string;
  role: string;
  content: string;
  created_at: number;
  seq?: number;
}

/**
 * A device that keeps sessions locally: it writes while the hub is unreachable, queues what it
 * wrote, and syncs when it is back (push the queue, pull since its cursor, apply what came back).
 */
class OfflineDevice {
  readonly sessions = new Map<string, LocalSession>();
  readonly messages = new Map<string, LocalMessage>();
  private outbox = { sessions: new Map<string, LocalSession>(), messages: new Map<string, LocalMessage>(), tombstones: new Set<string>() };
  cursor = 0;
  lastPush?: Record<string, unknown>;

  constructor(
    private readonly kernel: TestKernel,
    private readonly token: string,
  ) {}

  createSession(title: string | null = null): string {
    const now = Date.now();
    const s: LocalSession = { id: randomUUID(), title, title_updated_at: title ? now : 0, created_at: now, deleted: false };
    this.sessions.set(s.id, s);
    this.outbox.sessions.set(s.id, s);
    return s.id;
  }

  rename(id: string, title: string, at = Date.now()): void {
    const s = this.sessions.get(id)!;
    Object.assign(s, { title, title_updated_at: at });
    this.outbox.sessions.set(id, s);
  }

  say(sessionId: string, role: string, content: string): string {
    const m: LocalMessage = { id: randomUUID(), session_id: sessionId, role, content, created_at: Date.now() };
    this.messages.set(m.id, m);
    this.outbox.messages.set(m.id, m);
    return m.id;
  }

  remove(id: string): void {
    this.sessions.get(id)!.deleted = true;
    this.outbox.sessions.delete(id);
    this.outbox.tombstones.add(id);
  }

  /** One request: what the queue holds, and changes since the cursor. */
  async push(body?: Record<string, unknown>, limit?: number): Promise<any> {
    const request = body ?? {
      cursor: this.cursor,
      limit,
      sessions: [...this.outbox.sessions.values()].map(({ id, title, title_updated_at, created_at }) => ({ id, title, title_updated_at, created_at })),
      messages: [...this.outbox.messages.values()].map(({ id, session_id, role, content, created_at }) => ({ id, session_id, role, content, created_at })),
      tombstones: [...this.outbox.tombstones].map((id) => ({ id })),
    };
    this.lastPush = request;
    const res = await api(this.kernel, 'POST', '/v1/sessions/sync', this.token, request);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body;
  }

  apply(answer: any): void {
    for (const s of answer.changes.sessions) {
      if (s.deleted_at) {
        const local = this.sessions.get(s.id);
        if (local) local.deleted = true;
        continue;
      }
      this.sessions.set(s.id, { id: s.id, title: s.title, title_updated_at: s.title_updated_at, created_at: s.created_at, deleted: false });
    }
    for (const m of answer.changes.messages) this.messages.set(m.id, m);
    this.cursor = answer.cursor;
  }

  /** Push the queue and pull until the hub has nothing more. */
  async sync(limit?: number): Promise<any[]> {
    const answers = [];
    let answer = await this.push(undefined, limit);
    this.outbox = { sessions: new Map(), messages: new Map(), tombstones: new Set() };
    this.apply(answer);
    answers.push(answer);
    while (answer.has_more) {
      answer = await this.push(undefined, limit);
      this.apply(answer);
      answers.push(answer);
    }
    return answers;
  }

  live(): string[] {
    return [...this.sessions.values()]
      .filter((s) => !s.deleted)
      .map((s) => s.id)
      .sort();
  }
}

forEachDatabase('aion.sessions offline sync', (db) => {
  let kernel: TestKernel | undefined;
  let alice: Tokens & { id: string };
  let bob: Tokens & { id: string };
  let laptop: OfflineDevice;
  let deviceToken: string;

  before(async () => {
    kernel = await startSessionsKernel(db);
    const admin = await signInAdmin(kernel);
    alice = await createUser(kernel, admin.access_token, 'alice');
    bob = await createUser(kernel, admin.access_token, 'bob');
    deviceToken = (await api(kernel, 'POST', '/v1/devices', alice.access_token, { name: 'laptop' })).body.access_token;
    laptop = new OfflineDevice(kernel, deviceToken);
  });
  after(async () => kernel?.stop());

  it('brings a device that wrote offline in step with the hub, and a second upload of the same batch changes nothing', async () => {
    const k = kernel!;
    const hub = (method: string, path: string, body?: unknown) => api(k, method, path, alice.access_token, body);

    // Online: the hub has two sessions; the laptop pulls them.
    const s1 = (await hub('POST', '/v1/sessions', { title: 'shared plans' })).body.id;
    await hub('POST', `/v1/sessions/${s1}/messages`, { role: 'user', content: 'hello from the hub' });
    const s4 = (await hub('POST', '/v1/sessions', { title: 'to be deleted offline' })).body.id;
    const s5 = (await hub('POST', '/v1/sessions', { title: 'renamed on the hub later' })).body.id;
    await laptop.sync();
    assert.deepEqual(laptop.live(), [s1, s4, s5].sort());
    assert.equal([...laptop.messages.values()].filter((m) => m.session_id === s1).length, 1);
    const cursorBefore = laptop.cursor;

    // Offline: the hub moves on…
    await hub('PATCH', `/v1/sessions/${s1}`, { title: 'hub title' });
    await hub('POST', `/v1/sessions/${s1}/messages`, { role: 'assistant', content: 'written on the hub' });
    await hub('POST', `/v1/sessions/${s4}/messages`, { role: 'user', content: 'the hub wrote to a session the laptop deletes' });
    // …and so does the laptop.
    const s2 = laptop.createSession();
    const m1 = laptop.say(s2, 'user', 'What is the capital of Portugal?');
    laptop.say(s2, 'assistant', 'Lisbon.');
    const s3 = laptop.createSession('created and deleted offline');
    laptop.say(s3, 'user', 'gone soon');
    laptop.remove(s3);
    laptop.remove(s4);
    laptop.rename(s1, 'laptop title', Date.now() + 1_000);
    laptop.rename(s5, 'stale laptop title', Date.now() - 60_000);
    await hub('PATCH', `/v1/sessions/${s5}`, { title: 'hub wins' });

    // Back online.
    const [first] = await laptop.sync();
    const batch = laptop.lastPush!;
    assert.deepEqual(first.rejected, []);
    assert.deepEqual(first.pushed.messages, { created: 2, duplicates: 0, ignored: 1 });
    assert.deepEqual(first.pushed.tombstones, { applied: 2 });
    assert.equal(first.pushed.sessions.created, 1);
    assert.equal(first.pushed.sessions.updated, 1, 'the newer laptop title');

    const got = async (id: string) => hub('GET', `/v1/sessions/${id}`);
    const two = await got(s2);
    assert.equal(two.status, 200);
    assert.equal(two.body.message_count, 2);
    assert.equal(two.body.title, 'What is the capital of Portugal?', 'title from the first user message');
    assert.deepEqual(two.body.messages.map((m: any) => m.id)[0], m1, 'client ids are kept');
    assert.equal((await got(s3)).status, 404, 'created and deleted offline: a tombstone');
    assert.equal((await got(s4)).status, 404, 'the tombstone wins over the hub’s later message');
    assert.equal((await got(s1)).body.title, 'laptop title', 'last writer wins by update time');
    assert.equal((await got(s5)).body.title, 'hub wins', 'an older laptop rename loses');
    assert.equal((await got(s1)).body.message_count, 2);

    // The laptop now holds what the hub wrote while it was away.
    assert.ok([...laptop.messages.values()].some((m) => m.content === 'written on the hub'));
    assert.equal(laptop.sessions.get(s5)!.title, 'hub wins');
    assert.deepEqual(laptop.live(), [s1, s2, s5].sort());
    assert.ok(laptop.cursor > cursorBefore);

    // The answer was lost: the laptop uploads the very same batch again, twice.
    for (let i = 0; i < 2; i++) {
      const again = await laptop.push(batch);
      assert.deepEqual(again.pushed.messages, { created: 0, duplicates: 2, ignored: 1 });
      assert.deepEqual(again.pushed.tombstones, { applied: 0 });
      assert.equal(again.pushed.sessions.created, 0);
      assert.equal(again.pushed.sessions.updated, 0);
    }
    assert.equal((await got(s2)).body.message_count, 2, 'no duplicate messages');
    const all = (await hub('GET', '/v1/sessions?limit=200')).body.sessions.map((s: any) => s.id).sort();
    assert.deepEqual(all, [s1, s2, s5].sort(), 'no duplicate or resurrected sessions');
  });

  it('lets a tombstone win over later writes and hands tombstones to other devices', async () => {
    const k = kernel!;
    const deleted = [...laptop.sessions.values()].filter((s) => s.deleted).map((s) => s.id);
    assert.equal(deleted.length, 2);
    const stale = await api(k, 'POST', '/v1/sessions/sync', deviceToken, {
      sessions: [{ id: deleted[0], title: 'resurrect me', title_updated_at: Date.now() + 10_000 }],
      messages: [{ id: randomUUID(), session_id: deleted[0], role: 'user', content: 'too late' }],
    });
    assert.deepEqual(stale.body.pushed.sessions, { created: 0, updated: 0, ignored: 1 });
    assert.equal(stale.body.pushed.messages.ignored, 1);
    assert.equal((await api(k, 'GET', `/v1/sessions/${deleted[0]}`, alice.access_token)).status, 404);

    // A phone that has never synced pulls everything, in pages, tombstones included.
    const phone = new OfflineDevice(k, (await api(k, 'POST', '/v1/devices', alice.access_token, { name: 'phone' })).body.access_token);
    const answers = await phone.sync(2);
    assert.ok(answers.length > 2, 'paged');
    assert.deepEqual(phone.live(), laptop.live());
    assert.deepEqual(
      [...phone.messages.keys()].sort(),
      [...laptop.messages.values()]
        .filter((m) => laptop.live().includes(m.session_id))
        .map((m) => m.id)
        .sort(),
    );
    const seqs = answers.flatMap((a) => [...a.changes.sessions, ...a.changes.messages].map((c: any) => c.seq));
    assert.equal(new Set(seqs).size, seqs.length, 'no change is handed out twice');
  });

  it('refuses to let one user’s device write into another user’s session', async () => {
    const k = kernel!;
    const mine = [...laptop.sessions.values()].find((s) => !s.deleted)!.id;
    const res = await api(k, 'POST', '/v1/sessions/sync', bob.access_token, {
      sessions: [{ id: mine, title: 'bob was here', title_updated_at: Date.now() + 10_000 }],
      messages: [{ id: randomUUID(), session_id: mine, role: 'user', content: 'intrusion' }],
      tombstones: [{ id: mine }],
    });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.rejected.map((r: any) => [r.type, r.code]).sort(), [
      ['message', 'NOT_FOUND'],
      ['session', 'NOT_FOUND'],
      ['tombstone', 'NOT_FOUND'],
    ]);
    assert.deepEqual(res.body.changes, { sessions: [], messages: [] }, 'and sees nothing of it');
    const after = await api(k, 'GET', `/v1/sessions/${mine}`, alice.access_token);
    assert.equal(after.status, 200);
    assert.notEqual(after.body.title, 'bob was here');
  });
});
