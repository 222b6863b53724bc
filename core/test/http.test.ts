import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { Writable } from 'node:stream';
import { io as connectSocket } from 'socket.io-client';
import { WebSocket } from 'ws';
import { startTestKernel, type TestKernel } from '../src/index.js';
import { fixture, waitFor } from './helpers.js';

const json = async (res: Response) => (await res.json()) as any;

// The same behaviour whether the route's extension runs in a host process of its own (`shared`: every
// call is a message) or in the kernel's process (`kernel`: the edge calls the handler without one).
for (const placement of ['shared', 'kernel'] as const)
  describe(`the HTTP edge, routes in a ${placement} host`, () => {
    let kernel: TestKernel;
    before(
      async () =>
        (kernel = await startTestKernel({
          extensions: [fixture('basic'), fixture('test-auth')],
          config: {
            server: { maxInFlight: 4 },
            placement: placement === 'kernel' ? { 'fixtures.basic': 'kernel' } : {},
            permissions: { grants: { 'fixtures.test-auth': { kernelHost: true }, 'fixtures.basic': { kernelHost: true } } },
          },
        })),
    );
    after(() => kernel.stop());

    const expectError = async (res: Response, status: number, code: string) => {
      assert.equal(res.status, status);
      const body = await json(res);
      assert.deepEqual(Object.keys(body), ['error']);
      assert.equal(body.error.code, code);
      assert.equal(typeof body.error.message, 'string');
      return body.error as { code: string; message: string; details?: unknown };
    };

    it(`runs the route's extension in the ${placement} host`, async () => {
      const { pid } = await json(await kernel.request('/v1/basic/pid'));
      if (placement === 'kernel') assert.equal(pid, process.pid);
      else assert.notEqual(pid, process.pid);
    });

    it('answers unknown routes with 404 in the one error shape', async () => {
      const e = await expectError(await kernel.request('/v1/nowhere'), 404, 'NOT_FOUND');
      assert.match(e.message, /GET \/v1\/nowhere/);
    });

    it('answers another method on a known path with 405 and Allow, OPTIONS with 204 and Allow, HEAD with the headers of GET', async () => {
      const wrong = await kernel.request('/v1/basic/ping', { method: 'DELETE' });
      const e = await expectError(wrong, 405, 'METHOD_NOT_ALLOWED');
      assert.equal(wrong.headers.get('allow'), 'HEAD, GET');
      assert.deepEqual(e.details, { allowed: ['HEAD', 'GET'] });
      const options = await kernel.request('/v1/basic/echo', { method: 'OPTIONS' });
      assert.equal(options.status, 204);
      assert.equal(options.headers.get('allow'), 'POST');
      const get = await kernel.request('/v1/basic/shape/some');
      const getBody = await get.text();
      const head = await kernel.request('/v1/basic/shape/some', { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('content-length'), String(Buffer.byteLength(getBody)), 'the length of the answer GET gives');
      assert.equal(head.headers.get('content-type'), 'application/json; charset=utf-8');
    });

    it('matches a route whatever the case of its path and with a trailing slash, and decodes its parameters', async () => {
      assert.deepEqual(await json(await kernel.request('/V1/Basic/Shape/x/')), { kind: 'x' });
      assert.deepEqual(await json(await kernel.request('/v1/basic/shape/a%20b')), { kind: 'a b' });
      assert.deepEqual(await json(await kernel.request('/v1/basic/shape/k/one/two%2Fthree')), { params: { kind: 'k', rest: 'one/two/three' } });
      assert.deepEqual(
        await json(await kernel.request('/v1/basic/shape/%E0%A4%A')),
        { kind: '%E0%A4%A' },
        'a parameter that is not valid percent-encoding is passed as sent',
      );
    });

    it('writes each shape of answer with its type: an object as JSON, text, HTML, a type of its own, null as 204', async () => {
      const text = await kernel.request('/v1/basic/shape/text');
      assert.equal(text.headers.get('content-type'), 'text/plain; charset=utf-8');
      assert.equal(await text.text(), 'plain words');
      const html = await kernel.request('/v1/basic/shape/html');
      assert.equal(html.headers.get('content-type'), 'text/html; charset=utf-8');
      assert.equal(await html.text(), '  <p>markup</p>');
      const typed = await kernel.request('/v1/basic/shape/typed');
      assert.equal(typed.headers.get('content-type'), 'text/csv');
      assert.equal(await typed.text(), 'a,b');
      const none = await kernel.request('/v1/basic/shape/null');
      assert.equal(none.status, 204);
      assert.equal(none.headers.get('content-type'), null);
      const htmlObject = await kernel.request('/v1/basic/shape/html-object');
      assert.equal(htmlObject.headers.get('content-type'), 'application/json; charset=utf-8', 'an object is JSON whatever type the route set');
      assert.deepEqual(await htmlObject.json(), { a: '<script>' });
      const object = await kernel.request('/v1/basic/shape/thing');
      assert.equal(object.headers.get('content-type'), 'application/json; charset=utf-8');
      assert.equal(object.headers.get('content-length'), String(Buffer.byteLength(JSON.stringify({ kind: 'thing' }))));
    });

    it('answers 500 in the error shape to a status that is not a whole HTTP status', async () => {
      const res = await kernel.request('/v1/basic/shape/bad-status');
      await expectError(res, 500, 'INTERNAL');
      assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
    });

    it('writes on to a client that is behind with one wait, not a listener per event', async () => {
      const warnings: string[] = [];
      const onWarning = (w: Error) => warnings.push(w.name);
      process.on('warning', onWarning);
      try {
        const res = await kernel.request('/v1/basic/queue?big=64');
        // Not reading for a while: the socket fills, the edge keeps writing the pushed events.
        await new Promise((r) => setTimeout(r, 300));
        const frames = (await res.text()).split('\n\n').filter((f) => f.startsWith('event: big'));
        assert.equal(frames.length, 64);
        await new Promise((r) => setImmediate(r));
        assert.deepEqual(warnings, [], 'no MaxListenersExceededWarning');
      } finally {
        process.off('warning', onWarning);
      }
    });

    it('answers 500 in the error shape when a route sets a header that cannot be sent, and keeps serving', async () => {
      const res = await kernel.request('/v1/basic/shape/bad-header');
      await expectError(res, 500, 'INTERNAL');
      assert.equal(res.headers.get('x-broken'), null);
      assert.ok(res.headers.get('x-request-id'));
      assert.equal((await kernel.request('/v1/basic/shape/fine')).status, 200);
    });

    it('rejects a malformed JSON body with 400 and an oversized one with 413', async () => {
      await expectError(
        await kernel.request('/v1/basic/echo', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":' }),
        400,
        'BAD_REQUEST',
      );
      await expectError(
        await kernel.request('/v1/basic/echo', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ big: 'x'.repeat(4096) }),
        }),
        413,
        'PAYLOAD_TOO_LARGE',
      );
      const ok = await json(await kernel.request('/v1/basic/echo', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' }));
      assert.deepEqual(ok.echo, { a: 1 });
    });

    it('carries X-Request-Id from the client, or generates one', async () => {
      const given = await kernel.request('/v1/basic/echo', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': 'req-123' },
        body: '{}',
      });
      assert.equal(given.headers.get('x-request-id'), 'req-123');
      assert.equal((await json(given)).requestId, 'req-123');
      const generated = await kernel.request('/v1/basic/ping');
      assert.match(generated.headers.get('x-request-id')!, /^[0-9a-f-]{36}$/);
    });

    it("says the kernel's own time in Server-Timing, on answers and on errors", async () => {
      const ok = await kernel.request('/v1/basic/slow?ms=50');
      const dur = Number(/^app;dur=(\d+\.\d{2})$/.exec(ok.headers.get('server-timing') ?? '')?.[1]);
      // Node starts a timer from the event loop's cached clock, so on a loaded machine 50 ms may end a little early.
      assert.ok(dur >= 45, `app;dur covers the route's own 50 ms: ${ok.headers.get('server-timing')}`);
      await ok.text();
      const missing = await kernel.request('/v1/nope');
      assert.equal(missing.status, 404);
      assert.match(missing.headers.get('server-timing') ?? '', /^app;dur=\d+\.\d{2}$/);
    });

    it('enforces declared scopes after http.authenticate: 401 without credentials, 401 expired, 403 missing scope', async () => {
      await expectError(await kernel.request('/v1/basic/secure'), 401, 'UNAUTHENTICATED');
      await expectError(await kernel.request('/v1/basic/secure', { headers: { authorization: 'Bearer nonsense' } }), 401, 'UNAUTHENTICATED');
      await expectError(await kernel.request('/v1/basic/secure', { headers: { authorization: 'Bearer expired' } }), 401, 'TOKEN_EXPIRED');
      const ok = await kernel.request('/v1/basic/secure', { headers: { authorization: 'Bearer good' } });
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get('x-test-auth'), 'yes', 'headers from the authenticator reach the response');
      assert.deepEqual(await json(ok), { sub: 'ada' });
      const e = await expectError(await kernel.request('/v1/basic/admin', { headers: { authorization: 'Bearer good' } }), 403, 'FORBIDDEN');
      assert.deepEqual(e.details, { missingScopes: ['admin'] });
    });

    it('sanitizes errors from extension code: no host paths or internals reach the client', async () => {
      const internal = await expectError(await kernel.request('/v1/basic/throw'), 500, 'INTERNAL');
      assert.doesNotMatch(internal.message, /home|secret|config\.json/);
      assert.match(internal.message, /fixtures\.basic failed to handle the request/);
      const conflict = await expectError(await kernel.request('/v1/basic/conflict'), 409, 'CONFLICT');
      assert.equal(conflict.message, 'already exists at [path]');
      assert.deepEqual(conflict.details, { id: 7 });
    });

    it('cancels the handler when the client goes away', async () => {
      const abort = new AbortController();
      const pending = kernel.request('/v1/basic/slow?ms=10000', { signal: abort.signal }).catch((e: Error) => e);
      await waitFor(async () => (await json(await kernel.request('/v1/basic/last-slow')))?.finished === false);
      abort.abort();
      await pending;
      const seen = await waitFor(async () => {
        const state = await json(await kernel.request('/v1/basic/last-slow'));
        return state.finished ? state : undefined;
      });
      assert.deepEqual(seen, { finished: true, cancelled: true });
    });

    it('answers 504 when a route exceeds its timeout, and cancels the handler', async () => {
      await expectError(await kernel.request('/v1/basic/slow-limited'), 504, 'TIMEOUT');
      const seen = await waitFor(async () => {
        const state = await json(await kernel.request('/v1/basic/last-slow'));
        return state.finished ? state : undefined;
      });
      assert.equal(seen.cancelled, true);
    });

    it('answers 503 with Retry-After when saturated', async () => {
      const slow = Array.from({ length: 4 }, () => kernel.request('/v1/basic/slow?ms=800'));
      await new Promise((r) => setTimeout(r, 200));
      const res = await kernel.request('/v1/basic/ping');
      assert.equal(res.headers.get('retry-after'), '1');
      await expectError(res, 503, 'SERVICE_UNAVAILABLE');
      for (const r of await Promise.all(slow)) assert.equal(r.status, 200);
    });

    it('writes a stream that had already ended when it was answered, and its error as the last frame', async () => {
      const read = async (path: string) => {
        const res = await kernel.request(path, { signal: AbortSignal.timeout(5_000) });
        return (await res.text()).split('\n\n').filter(Boolean);
      };
      assert.deepEqual(
        await read('/v1/basic/queue'),
        [0, 1, 2].map((i) => `event: n\ndata: {"i":${i}}`),
      );
      const text = await read('/v1/basic/queue?text=1');
      assert.equal(text[0], 'event: t\ndata: one\ndata: id: 666\ndata: three\ndata: four', 'a CR in text data is a line of data, not a field');
      const failed = await read('/v1/basic/queue?fail=1');
      assert.equal(failed.length, 4);
      assert.deepEqual(JSON.parse(failed[3]!.split('data: ')[1]!), { code: 'UPSTREAM_FAILED', message: 'the source failed' });
    });

    it('streams SSE in order, holding the producer back while the client does not read', async () => {
      const count = 20_000;
      const received: number[] = [];
      let producedWhilePaused = 0;
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest(`${kernel.url}/v1/basic/stream?count=${count}&size=1000`, (res) => {
          assert.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8');
          res.setEncoding('utf8');
          let buffer = '';
          let paused = false;
          res.on('data', (chunk: string) => {
            buffer += chunk;
            let sep: number;
            while ((sep = buffer.indexOf('\n\n')) >= 0) {
              const frame = buffer.slice(0, sep);
              buffer = buffer.slice(sep + 2);
              const data = frame.split('\n').find((l) => l.startsWith('data: '));
              if (data) received.push(JSON.parse(data.slice(6)).i);
            }
            if (!paused && received.length > 100) {
              paused = true;
              res.pause();
              setTimeout(async () => {
                producedWhilePaused = (await json(await kernel.request('/v1/basic/produced'))).produced;
                res.resume();
              }, 1000);
            }
          });
          res.on('end', resolve);
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(received.length, count);
      assert.ok(
        received.every((v, i) => v === i),
        'events arrive in order',
      );
      assert.ok(producedWhilePaused < count / 2, `the producer was held back (${producedWhilePaused} of ${count} produced while the client paused)`);
    });

    it('bridges a WebSocket route to its extension', async () => {
      const ws = new WebSocket(`${kernel.url.replace('http', 'ws')}/v1/basic/socket`);
      const replies: unknown[] = [];
      await new Promise<void>((resolve, reject) => {
        ws.on('open', () => ['a', 'b', 'c'].forEach((m) => ws.send(m)));
        ws.on('message', (m) => {
          replies.push(JSON.parse(m.toString()));
          if (replies.length === 3) ws.close();
        });
        ws.on('close', () => resolve());
        ws.on('error', reject);
      });
      assert.deepEqual(replies, [{ upper: 'A' }, { upper: 'B' }, { upper: 'C' }]);
      await expectError(await kernel.request('/v1/basic/socket'), 426, 'UPGRADE_REQUIRED');
    });

    it('lets socket.io clients join only the rooms realtime.authorize allows, and delivers publications', async () => {
      const socket = connectSocket(kernel.url, { auth: { token: 'good' }, transports: ['websocket'] });
      try {
        await new Promise<void>((resolve, reject) => socket.on('connect', resolve).on('connect_error', reject));
        const denied = await socket.emitWithAck('subscribe', { room: 'user:bob' });
        assert.equal(denied.ok, false);
        const allowed = await socket.emitWithAck('subscribe', { room: 'user:ada' });
        assert.deepEqual(allowed, { ok: true, room: 'user:ada' });
        const got = new Promise((resolve) => socket.on('note', resolve));
        await kernel.request('/v1/basic/publish', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ room: 'user:ada', data: { hello: 1 } }),
        });
        assert.deepEqual(await got, { hello: 1 });
      } finally {
        socket.close();
      }
      const bad = connectSocket(kernel.url, { auth: { token: 'nonsense' }, transports: ['websocket'], reconnection: false });
      const error = await new Promise<Error & { data?: { code: string } }>((resolve) => bad.on('connect_error', resolve));
      assert.equal(error.data?.code, 'UNAUTHENTICATED');
      bad.close();
    });

    it('reports readiness and health', async () => {
      assert.deepEqual(await json(await kernel.request('/readyz')), { status: 'ready' });
      const health = await json(await kernel.request('/healthz'));
      assert.equal(health.status, 'ok');
      assert.ok(health.counts.extensions.active >= 1);
      assert.equal(health.hosts, undefined, 'anonymous callers get counts, not hosts and pids');
    });
  });

// The authentication fixture runs in the kernel's process, where the kernel runs its taps without a message.
describe('http.authenticate taps in the kernel host', () => {
  let kernel: TestKernel;
  const logs: Array<Record<string, any>> = [];
  before(
    async () =>
      (kernel = await startTestKernel({
        extensions: [fixture('basic'), fixture('test-auth')],
        config: { permissions: { grants: { 'fixtures.test-auth': { kernelHost: true } } } },
        logLevel: 'info',
        logDestination: new Writable({
          write(chunk, _encoding, done) {
            for (const line of String(chunk).split('\n')) if (line.trim()) logs.push(JSON.parse(line));
            done();
          },
        }),
      })),
  );
  after(() => kernel.stop());

  it("run inside the request: a tap's log line carries the request id", async () => {
    const res = await kernel.request('/v1/basic/secure', { headers: { authorization: 'Bearer logged', 'x-request-id': 'tap-req-1' } });
    assert.equal(res.status, 200);
    assert.deepEqual(await json(res), { sub: 'ada' });
    const line = await waitFor(() => logs.find((l) => l.msg === 'authenticated a logged token'));
    assert.equal(line.extension, 'fixtures.test-auth');
    assert.equal(line.requestId, 'tap-req-1');
  });

  it("answer with a tap's thrown error: its code, status and headers", async () => {
    const res = await kernel.request('/v1/basic/secure', { headers: { authorization: 'Bearer throttled' } });
    assert.equal(res.status, 429);
    assert.equal(res.headers.get('retry-after'), '7');
    const body = await json(res);
    assert.equal(body.error.code, 'RATE_LIMITED');
    assert.equal(body.error.message, 'too many sign-ins');
  });
});
