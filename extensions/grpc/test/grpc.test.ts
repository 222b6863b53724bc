import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { bearer, call, collect, createUser, startHub, tasksClient, unary, until, type Hub } from './helpers.js';

const ask = (content: string) => ({ intent: 'chat', messages: [{ role: 'user', content }] });

describe('aion.grpc: AionTasks over a real hub (SQLite, auth, router, fake OpenAI upstream)', function () {
  this.timeout(120_000);
  let hub: Hub;
  let client: any;
  let token: string;

  before(async () => {
    hub = await startHub({ grpc: { maxInFlight: 8 } });
    client = tasksClient(hub.grpc.port);
    token = hub.adminToken;
  });
  after(async () => {
    client?.close();
    await hub?.stop();
  });

  it('listens on the configured host, on its own port', () => {
    assert.equal(hub.grpc.host, '127.0.0.1');
    assert.ok(hub.grpc.port > 0 && hub.grpc.port !== Number(new URL(hub.kernel.url).port));
    assert.equal(hub.grpc.tls, false);
  });

  it('Submit with wait answers the canonical result: engine, usage, schema_version', async () => {
    const result = await unary(client, 'Submit', { ...ask('hello'), wait: true }, bearer(token));
    assert.equal(result.schema_version, '1.0');
    assert.match(result.task_id, /^task_/);
    assert.equal(result.status, 'OK');
    assert.equal(result.result.text, 'Hello over gRPC');
    assert.equal(result.engine.provider, 'openai');
    assert.equal(result.engine.route, 'api');
    assert.deepEqual(result.usage.tokens, { input: 7, output: 3, total: 10 });
    assert.equal(result.error, null);
  });

  it('Submit without wait answers at once; StatusById and REST see the same task', async () => {
    const accepted = await unary(client, 'Submit', { ...ask('later'), sla: { privacy: 'allow-api', priority: 'high', timeout_ms: 20_000 } }, bearer(token));
    assert.ok(['QUEUED', 'RUNNING', 'OK'].includes(accepted.status));
    let final: any;
    await until(async () => ['OK', 'ERROR'].includes((final = await unary(client, 'StatusById', { task_id: accepted.task_id }, bearer(token))).status));
    assert.equal(final.status, 'OK');
    const rest = await call(hub.kernel, 'GET', `/v1/tasks/${accepted.task_id}`, { token });
    assert.equal(rest.status, 200);
    assert.equal(((await rest.json()) as any).result.text, 'Hello over gRPC');
  });

  it('Submit with the same idempotency key answers the same task', async () => {
    const first = await unary(client, 'Submit', { ...ask('once'), idempotency_key: 'grpc-key-1' }, bearer(token));
    const second = await unary(client, 'Submit', { ...ask('once'), idempotency_key: 'grpc-key-1' }, bearer(token));
    assert.equal(second.task_id, first.task_id);
    const reused = await unary(client, 'Submit', { ...ask('another body'), idempotency_key: 'grpc-key-1' }, bearer(token)).catch((e) => e);
    assert.equal(reused.code, grpc.status.ALREADY_EXISTS);
    assert.equal(reused.metadata.get('aion-error-code')[0], 'IDEMPOTENCY_KEY_REUSED');
  });

  it('Stream submits and streams tokens then done; a follower resumes after last_event_id', async () => {
    const { messages, error } = await collect(client.Stream({ request: ask('stream me') }, bearer(token)));
    assert.equal(error, undefined);
    const tokens = messages.filter((m) => m.event === 'token').map((m) => m.text);
    assert.deepEqual(tokens, ['Hello', ' over', ' gRPC']);
    const done = messages.at(-1);
    assert.equal(done.event, 'done');
    assert.equal(done.task.status, 'OK');
    const ids = messages.map((m) => m.id);
    assert.deepEqual(
      ids,
      [...ids].sort((a, b) => a - b),
      'ids increase',
    );
    const firstToken = messages.find((m) => m.event === 'token');
    const resumed = await collect(client.Stream({ task_id: done.task.task_id, last_event_id: firstToken.id }, bearer(token)));
    assert.equal(resumed.error, undefined);
    assert.deepEqual(
      resumed.messages.map((m) => m.id),
      ids.filter((id) => id > firstToken.id),
    );
  });

  it('an API key in x-api-key metadata authenticates', async () => {
    const res = await call(hub.kernel, 'POST', '/v1/api-keys', { token, body: { name: 'grpc', scopes: ['tasks:read', 'tasks:write'] } });
    assert.equal(res.status, 201);
    const { key } = (await res.json()) as { key: string };
    const metadata = new grpc.Metadata();
    metadata.set('x-api-key', key);
    const result = await unary(client, 'Submit', { ...ask('with a key'), wait: true }, metadata);
    assert.equal(result.status, 'OK');
  });

  it('missing, forged or expired-looking metadata is UNAUTHENTICATED', async () => {
    for (const metadata of [new grpc.Metadata(), bearer('forged.token.value'), bearer('aion_000000000000_' + 'x'.repeat(43))]) {
      const err = await unary(client, 'Submit', ask('hi'), metadata).catch((e) => e);
      assert.equal(err.code, grpc.status.UNAUTHENTICATED, err.details);
      const stream = await collect(client.Stream({ request: ask('hi') }, metadata));
      assert.equal(stream.error?.code, grpc.status.UNAUTHENTICATED);
      assert.equal(stream.messages.length, 0);
    }
  });

  it('a user without tasks:write is PERMISSION_DENIED, though the service runs in the kernel host', async () => {
    const reader = await createUser(hub.kernel, token, 'grpc-reader', { scopes: ['tasks:read'] });
    const err = await unary(client, 'Submit', ask('hi'), bearer(reader.access_token)).catch((e) => e);
    assert.equal(err.code, grpc.status.PERMISSION_DENIED);
    assert.match(err.details, /tasks:write/);
  });

  it("another user's task is NOT_FOUND", async () => {
    const mine = await unary(client, 'Submit', { ...ask('mine'), wait: true }, bearer(token));
    const other = await createUser(hub.kernel, token, 'grpc-other', { scopes: ['tasks:read', 'tasks:write'] });
    const err = await unary(client, 'StatusById', { task_id: mine.task_id }, bearer(other.access_token)).catch((e) => e);
    assert.equal(err.code, grpc.status.NOT_FOUND);
    const follow = await collect(client.Stream({ task_id: mine.task_id }, bearer(other.access_token)));
    assert.equal(follow.error?.code, grpc.status.NOT_FOUND);
  });

  it('bad requests are INVALID_ARGUMENT with a message saying what to fix', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ intent: 'chat' }, /messages, input or params/],
      [{ ...ask('x'), schema_version: '2.0' }, /schema_version 2\.0/],
      [{ ...ask('x'), sla: { privacy: 'everywhere' } }, /privacy/],
      [{ intent: 'chat', messages: [{ role: 'wizard', content: 'x' }] }, /role/],
    ];
    for (const [request, message] of cases) {
      const err = await unary(client, 'Submit', request, bearer(token)).catch((e) => e);
      assert.equal(err.code, grpc.status.INVALID_ARGUMENT, `${JSON.stringify(request)}: ${err.details}`);
      assert.match(err.details, message);
    }
    const empty = await unary(client, 'StatusById', { task_id: '' }, bearer(token)).catch((e) => e);
    assert.equal(empty.code, grpc.status.INVALID_ARGUMENT);
    const neither = await collect(client.Stream({}, bearer(token)));
    assert.equal(neither.error?.code, grpc.status.INVALID_ARGUMENT);
  });

  it('a deadline passing while Submit waits cancels the task', async () => {
    const err = await unary(client, 'Submit', { ...ask('[hang]'), wait: true, idempotency_key: 'deadline-1' }, bearer(token), {
      deadline: Date.now() + 800,
    }).catch((e) => e);
    assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED);
    // The same key finds the task the call started.
    const task = await unary(client, 'Submit', { ...ask('[hang]'), wait: true, idempotency_key: 'deadline-1' }, bearer(token), {
      deadline: Date.now() + 10_000,
    });
    await until(
      async () => ['CANCELED', 'TIMEOUT'].includes((await unary(client, 'StatusById', { task_id: task.task_id }, bearer(token))).status),
      10_000,
      'the task ended',
    );
  });

  it('cancelling a Stream that submitted its task cancels the task', async () => {
    const stream = client.Stream({ request: { ...ask('[hang] stream'), idempotency_key: 'stream-cancel-1' } }, bearer(token));
    stream.on('error', () => undefined);
    await new Promise((resolve) => stream.once('data', resolve));
    stream.cancel();
    // The same key finds the task the stream started.
    const task = await unary(client, 'Submit', { ...ask('[hang] stream'), idempotency_key: 'stream-cancel-1' }, bearer(token));
    await until(
      async () => (await unary(client, 'StatusById', { task_id: task.task_id }, bearer(token))).status === 'CANCELED',
      10_000,
      'the task was cancelled',
    );
  });

  it('a Stream that only follows a task leaves it running when it hangs up', async () => {
    const task = await unary(client, 'Submit', ask('[hang] follow'), bearer(token));
    const stream = client.Stream({ task_id: task.task_id }, bearer(token));
    stream.on('error', () => undefined);
    await new Promise((resolve) => stream.once('data', resolve));
    stream.cancel();
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(['QUEUED', 'RUNNING'].includes((await unary(client, 'StatusById', { task_id: task.task_id }, bearer(token))).status));
    await call(hub.kernel, 'POST', `/v1/tasks/${task.task_id}/cancel`, { token });
  });

  it('past maxInFlight calls are RESOURCE_EXHAUSTED with retry-after', async () => {
    const small = await startHub({ grpc: { maxInFlight: 1, retryAfterSeconds: 3 } });
    const c = tasksClient(small.grpc.port);
    try {
      const waiting = unary(c, 'Submit', { ...ask('[hang]'), wait: true }, bearer(small.adminToken), { deadline: Date.now() + 5_000 }).catch((e) => e);
      await until(async () => (await small.kernel.executeCommand<any>('grpc.status')).in_flight === 1, 5_000, 'one call in flight');
      const err = await unary(c, 'StatusById', { task_id: 'task_x' }, bearer(small.adminToken)).catch((e) => e);
      assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.equal(err.metadata.get('retry-after')[0], '3');
      assert.equal(err.metadata.get('aion-error-code')[0], 'SATURATED');
      assert.equal((await waiting).code, grpc.status.DEADLINE_EXCEEDED);
    } finally {
      c.close();
      await small.stop();
    }
  });
});

describe('aion.grpc with TLS and mTLS (certificates made in the test with openssl)', function () {
  this.timeout(120_000);
  let dir: string;
  let hub: Hub;
  const file = (name: string) => readFileSync(join(dir, name));

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'aion-grpc-tls-'));
    const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=test-ca', '-keyout', 'ca.key', '-out', 'ca.pem');
    for (const name of ['server', 'client']) {
      ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`);
      const ext = name === 'server' ? 'subjectAltName=IP:127.0.0.1,DNS:localhost' : 'extendedKeyUsage=clientAuth';
      execFileSync('sh', ['-c', `printf '%s' '${ext}' > ${name}.ext`], { cwd: dir });
      ssl(
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        'ca.pem',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-days',
        '1',
        '-extfile',
        `${name}.ext`,
        '-out',
        `${name}.pem`,
      );
    }
    hub = await startHub({ grpc: { tls: { cert: join(dir, 'server.pem'), key: join(dir, 'server.key'), ca: join(dir, 'ca.pem'), requireClientCert: true } } });
  });
  after(async () => {
    await hub?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves a client with a certificate the CA signed', async () => {
    assert.equal(hub.grpc.mtls, true);
    const c = tasksClient(hub.grpc.port, grpc.credentials.createSsl(file('ca.pem'), file('client.key'), file('client.pem')));
    try {
      const result = await unary(c, 'Submit', { ...ask('over mTLS'), wait: true }, bearer(hub.adminToken));
      assert.equal(result.status, 'OK');
    } finally {
      c.close();
    }
  });

  it('refuses a client without a certificate, and a plaintext client', async () => {
    for (const credentials of [grpc.credentials.createSsl(file('ca.pem')), grpc.credentials.createInsecure()]) {
      const c = tasksClient(hub.grpc.port, credentials);
      try {
        const err = await unary(c, 'StatusById', { task_id: 'task_x' }, bearer(hub.adminToken), { deadline: Date.now() + 5_000 }).catch((e) => e);
        assert.ok([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED].includes(err.code), `code ${err.code}: ${err.details}`);
      } finally {
        c.close();
      }
    }
  });
});
