import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { io, type Socket } from 'socket.io-client';
import type { TestKernel } from '@aion/core';
import { createUser, signInAdmin, type Tokens } from '@aion/ext-auth/testing';
import { forEachDatabase } from '@aion/ext-storage/testing';
import { api, startSessionsKernel } from './helpers.js';

type User = Tokens & { id: string };

forEachDatabase('aion.sessions', (db) => {
  let kernel: TestKernel | undefined;
  let alice: User;
  let bob: User;
  let admin: Tokens;

  before(async () => {
    kernel = await startSessionsKernel(db);
    admin = await signInAdmin(kernel);
    alice = await createUser(kernel, admin.access_token, 'alice');
    bob = await createUser(kernel, admin.access_token, 'bob');
  });
  after(async () => kernel?.stop());

  it('creates a session only from a JSON object: a number, array, string or text/plain body is refused and creates nothing', async () => {
    const k = kernel!;
    const count = async () => (await api(k, 'GET', '/v1/sessions?limit=200', bob.access_token)).body.sessions.length;
    const before = await count();
    const send = (body: string, type: string) =>
      k.request('/v1/sessions', { method: 'POST', headers: { authorization: `Bearer ${bob.access_token}`, 'content-type': type }, body });
    for (const body of ['5', '[]', '"title"', 'null']) {
      const res = await send(body, 'application/json');
      assert.equal(res.status, 400, body);
      assert.equal(((await res.json()) as any).error.code, 'VALIDATION_FAILED');
    }
    const text = await send('{"title":"as text"}', 'text/plain');
    assert.equal(text.status, 415);
    assert.equal(((await text.json()) as any).error.code, 'UNSUPPORTED_MEDIA_TYPE');
    const rename = await k.request('/v1/sessions/anything', {
      method: 'PATCH',
      headers: { authorization: `Bearer ${bob.access_token}`, 'content-type': 'application/json' },
      body: '7',
    });
    assert.equal(rename.status, 400, 'a bare number is refused on rename too, not a 500');
    assert.equal(await count(), before, 'nothing was created');
    const none = await k.request('/v1/sessions', { method: 'POST', headers: { authorization: `Bearer ${bob.access_token}` } });
    assert.equal(none.status, 201, 'no body at all creates a session with defaults');
    assert.equal(await count(), before + 1);
  });

  it('creates, lists newest first by cursor, renames and soft-deletes sessions', async () => {
    const k = kernel!;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await api(k, 'POST', '/v1/sessions', alice.access_token, i === 0 ? { title: 'first' } : {});
      assert.equal(res.status, 201);
      assert.equal(res.body.owner_id, alice.id);
      assert.equal(res.body.tenant_id, 'default');
      assert.equal(res.body.message_count, 0);
      ids.push(res.body.id);
    }
    const seen: any[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await api(k, 'GET', `/v1/sessions?limit=2${cursor ? `&cursor=${cursor}` : ''}`, alice.access_token);
      assert.equal(page.status, 200);
      seen.push(...page.body.sessions);
      cursor = page.body.next_cursor;
      pages++;
    } while (cursor);
    assert.equal(pages, 3);
    assert.deepEqual(seen.map((s) => s.id).sort(), [...ids].sort());
    const order = [...seen].sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? 1 : -1));
    assert.deepEqual(
      seen.map((s) => s.id),
      order.map((s) => s.id),
      'newest first, ties by id',
    );

    const clientId = randomUUID();
    assert.equal((await api(k, 'POST', '/v1/sessions', alice.access_token, { id: clientId, title: 'mine' })).status, 201);
    const again = await api(k, 'POST', '/v1/sessions', alice.access_token, { id: clientId, title: 'ignored' });
    assert.equal(again.status, 200, 'creating a client id twice answers the stored session');
    assert.equal(again.body.title, 'mine');

    const renamed = await api(k, 'PATCH', `/v1/sessions/${ids[0]}`, alice.access_token, { title: 'Renamed' });
    assert.equal(renamed.status, 200);
    assert.equal(renamed.body.title, 'Renamed');
    assert.equal((await api(k, 'GET', `/v1/sessions/${ids[0]}`, alice.access_token)).body.title, 'Renamed');

    assert.equal((await api(k, 'DELETE', `/v1/sessions/${ids[1]}`, alice.access_token)).status, 204);
    assert.equal((await api(k, 'GET', `/v1/sessions/${ids[1]}`, alice.access_token)).status, 404);
    assert.equal((await api(k, 'DELETE', `/v1/sessions/${ids[1]}`, alice.access_token)).status, 404);
    const list = await api(k, 'GET', '/v1/sessions?limit=100', alice.access_token);
    assert.ok(!list.body.sessions.some((s: any) => s.id === ids[1]));
    const recreate = await api(k, 'POST', '/v1/sessions', alice.access_token, { id: ids[1] });
    assert.equal(recreate.status, 409, 'a deleted id stays a tombstone');
  });

  it('appends messages, keeps message_count and a title from the first user message, and pages messages', async () => {
    const k = kernel!;
    const { body: session } = await api(k, 'POST', '/v1/sessions', alice.access_token, {});
    const path = `/v1/sessions/${session.id}/messages`;
    assert.equal((await api(k, 'POST', path, alice.access_token, { role: 'system', content: 'You are terse.' })).status, 201);
    const first = await api(k, 'POST', path, alice.access_token, {
      role: 'user',
      content: '  Plan a trip to\nLisbon in May, with a day in Sintra and good places to eat fish  ',
      metadata: { lang: 'en' },
    });
    assert.equal(first.status, 201);
    assert.deepEqual(first.body.metadata, { lang: 'en' });
    await api(k, 'POST', path, alice.access_token, { role: 'user', content: 'second question' });
    const clientId = randomUUID();
    const reply = await api(k, 'POST', path, alice.access_token, { id: clientId, role: 'assistant', content: 'Sure.' });
    assert.equal(reply.status, 201);
    const retry = await api(k, 'POST', path, alice.access_token, { id: clientId, role: 'assistant', content: 'Sure.' });
    assert.equal(retry.status, 200, 'a retried append answers the stored message');
    assert.equal(retry.body.seq, reply.body.seq);
    assert.equal((await api(k, 'POST', path, alice.access_token, { role: 'robot', content: 'x' })).status, 400);

    const got = await api(k, 'GET', `/v1/sessions/${session.id}?limit=3`, alice.access_token);
    assert.equal(got.body.message_count, 4);
    assert.equal(got.body.title, 'Plan a trip to Lisbon in May, with a day in Sintra and good places to eat fish');
    assert.deepEqual(
      got.body.messages.map((m: any) => m.role),
      ['system', 'user', 'user'],
    );
    const seqs = got.body.messages.map((m: any) => m.seq);
    assert.deepEqual(
      seqs,
      [...seqs].sort((a: number, b: number) => a - b),
      'messages come in server order',
    );
    const rest = await api(k, 'GET', `/v1/sessions/${session.id}/messages?after=${got.body.next_cursor}`, alice.access_token);
    assert.deepEqual(
      rest.body.messages.map((m: any) => m.id),
      [clientId],
    );
    assert.equal(rest.body.next_cursor, null);
    const latest = await api(k, 'GET', `/v1/sessions/${session.id}/messages?before=${Number.MAX_SAFE_INTEGER}&limit=2`, alice.access_token);
    assert.deepEqual(
      latest.body.messages.map((m: any) => m.content),
      ['second question', 'Sure.'],
    );
    const earlier = await api(k, 'GET', `/v1/sessions/${session.id}/messages?before=${latest.body.next_cursor}&limit=2`, alice.access_token);
    assert.deepEqual(
      earlier.body.messages.map((m: any) => m.role),
      ['system', 'user'],
      'paging back from the latest',
    );

    const listed = (await api(k, 'GET', '/v1/sessions?limit=1', alice.access_token)).body.sessions[0];
    assert.equal(listed.id, session.id);
    assert.equal(listed.message_count, 4, 'listing carries counts without loading messages');
  });

  it('counts sessions, messages and their owners for admins only, with numbers and no content', async () => {
    const k = kernel!;
    const before = await api(k, 'GET', '/v1/sessions/counts', admin.access_token);
    assert.equal(before.status, 200, JSON.stringify(before.body));
    const { body: session } = await api(k, 'POST', '/v1/sessions', bob.access_token, { title: 'counted title' });
    await api(k, 'POST', `/v1/sessions/${session.id}/messages`, bob.access_token, { role: 'user', content: 'counted content' });
    const after = await api(k, 'GET', '/v1/sessions/counts', admin.access_token);
    assert.deepEqual(Object.keys(after.body).sort(), ['messages', 'sessions', 'users_with_sessions']);
    assert.equal(after.body.sessions, before.body.sessions + 1);
    assert.equal(after.body.messages, before.body.messages + 1);
    assert.ok(after.body.users_with_sessions >= 1);
    const refused = await api(k, 'GET', '/v1/sessions/counts', alice.access_token);
    assert.equal(refused.status, 403, 'a user without sessions:admin');
    assert.equal(refused.body.error.code, 'FORBIDDEN');
  });

  it('answers 404 to another user for every route of a session', async () => {
    const k = kernel!;
    const { body: session } = await api(k, 'POST', '/v1/sessions', alice.access_token, { title: 'private' });
    const { body: message } = await api(k, 'POST', `/v1/sessions/${session.id}/messages`, alice.access_token, { role: 'user', content: 'secret' });
    for (const [method, path, body] of [
      ['GET', `/v1/sessions/${session.id}`],
      ['GET', `/v1/sessions/${session.id}/messages`],
      ['PATCH', `/v1/sessions/${session.id}`, { title: 'mine now' }],
      ['DELETE', `/v1/sessions/${session.id}`],
      ['POST', `/v1/sessions/${session.id}/messages`, { role: 'user', content: 'hi' }],
    ] as Array<[string, string, unknown?]>) {
      const res = await api(k, method, path, bob.access_token, body);
      assert.equal(res.status, 404, `${method} ${path}`);
      assert.equal(res.body.error.code, 'NOT_FOUND');
    }
    assert.ok(!(await api(k, 'GET', '/v1/sessions?limit=200', bob.access_token)).body.sessions.some((s: any) => s.id === session.id));
    assert.equal((await api(k, 'POST', '/v1/sessions', bob.access_token, { id: session.id })).status, 409, 'the id is taken');
    const { body: own } = await api(k, 'POST', '/v1/sessions', bob.access_token, {});
    assert.equal(
      (await api(k, 'POST', `/v1/sessions/${own.id}/messages`, bob.access_token, { id: message.id, role: 'user', content: 'x' })).status,
      409,
      'message ids are unique',
    );
    const still = await api(k, 'GET', `/v1/sessions/${session.id}`, alice.access_token);
    assert.equal(still.body.title, 'private');
    assert.equal(still.body.message_count, 1);
  });

  it('lets a device and an API key act for their owner, within their scopes', async () => {
    const k = kernel!;
    const { body: device } = await api(k, 'POST', '/v1/devices', alice.access_token, { name: 'phone' });
    const { body: made } = await api(k, 'POST', '/v1/sessions', device.access_token, { title: 'from the phone' });
    assert.equal(made.owner_id, alice.id);
    assert.equal((await api(k, 'GET', `/v1/sessions/${made.id}`, alice.access_token)).body.title, 'from the phone');
    const { body: key } = await api(k, 'POST', '/v1/api-keys', alice.access_token, { name: 'reader', scopes: ['sessions:read'] });
    const res = await fetch(`${k.url}/v1/sessions/${made.id}`, { headers: { 'x-api-key': key.key } });
    assert.equal(res.status, 200);
    const write = await fetch(`${k.url}/v1/sessions`, { method: 'POST', headers: { 'x-api-key': key.key, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(write.status, 403, 'sessions:write is missing');
  });

  it('sends appended messages to socket.io subscribers, and lets only the owner subscribe', async () => {
    const k = kernel!;
    const { body: session } = await api(k, 'POST', '/v1/sessions', alice.access_token, {});
    const connect = (token: string) =>
      new Promise<Socket>((resolve, reject) => {
        const socket = io(k.url, { auth: { token }, transports: ['websocket'], reconnection: false });
        socket.once('connect', () => resolve(socket));
        socket.once('connect_error', reject);
      });
    const subscribe = (socket: Socket, room: string) => socket.timeout(5_000).emitWithAck('subscribe', { room }) as Promise<{ ok: boolean }>;
    const a = await connect(alice.access_token);
    const b = await connect(bob.access_token);
    try {
      assert.equal((await subscribe(a, `session:${session.id}`)).ok, true);
      assert.equal((await subscribe(b, `session:${session.id}`)).ok, false, 'another user may not listen');
      assert.equal((await subscribe(a, `session:${randomUUID()}`)).ok, false, 'nor anyone to an unknown session');
      const received = new Promise<any>((resolve) => a.once('message', resolve));
      let leaked = false;
      b.once('message', () => (leaked = true));
      const { body: sent } = await api(k, 'POST', `/v1/sessions/${session.id}/messages`, alice.access_token, { role: 'user', content: 'live' });
      const got = await received;
      assert.equal(got.id, sent.id);
      assert.equal(got.content, 'live');
      assert.equal(got.session_id, session.id);
      await sleep(50);
      assert.equal(leaked, false);
      await assert.rejects(
        new Promise((resolve, reject) => {
          const s = io(k.url, { auth: { token: 'bad' }, transports: ['websocket'], reconnection: false });
          s.once('connect', () => (s.close(), resolve(undefined)));
          s.once('connect_error', (err) => (s.close(), reject(err)));
        }),
        /not valid/,
      );
    } finally {
      a.close();
      b.close();
    }
  });
});

forEachDatabase('aion.sessions expiry', (db) => {
  let kernel: TestKernel | undefined;
  let alice: User;

  before(async () => {
    kernel = await startSessionsKernel(db, { ttlSeconds: 2, purgeAfterSeconds: 1 });
    alice = await createUser(kernel, (await signInAdmin(kernel)).access_token, 'alice');
  });
  after(async () => kernel?.stop());

  it('expires idle sessions after the TTL, tells syncing devices, and purges them later', async () => {
    const k = kernel!;
    const sweep = () => k.executeCommand<{ expired: number; purged: number }>('sessions.sweep');
    const { body: idle } = await api(k, 'POST', '/v1/sessions', alice.access_token, { title: 'idle' });
    const { body: busy } = await api(k, 'POST', '/v1/sessions', alice.access_token, { title: 'busy' });
    const start = await api(k, 'POST', '/v1/sessions/sync', alice.access_token, {});
    await sleep(1_200);
    await api(k, 'POST', `/v1/sessions/${busy.id}/messages`, alice.access_token, { role: 'user', content: 'still here' });
    await sleep(1_000);
    assert.equal((await api(k, 'GET', `/v1/sessions/${idle.id}`, alice.access_token)).status, 404, 'expired');
    assert.equal((await api(k, 'GET', `/v1/sessions/${busy.id}`, alice.access_token)).status, 200, 'activity extends the expiry');
    assert.deepEqual(
      (await api(k, 'GET', '/v1/sessions', alice.access_token)).body.sessions.map((s: any) => s.id),
      [busy.id],
    );

    assert.deepEqual(await sweep(), { expired: 1, purged: 0 });
    const pulled = await api(k, 'POST', '/v1/sessions/sync', alice.access_token, { cursor: start.body.cursor });
    const tombstone = pulled.body.changes.sessions.find((s: any) => s.id === idle.id);
    assert.ok(tombstone?.deleted_at, 'a device learns of the expiry as a tombstone');

    await sleep(1_100);
    const swept = await sweep();
    assert.equal(swept.purged, 1);
    const fromStart = await api(k, 'POST', '/v1/sessions/sync', alice.access_token, {});
    assert.ok(!fromStart.body.changes.sessions.some((s: any) => s.id === idle.id), 'purged for good');
  });
});
