import assert from 'node:assert/strict';
import { createServer as createTcpServer } from 'node:net';
import { AionError, CancellationTokenSource } from '@aion/extension-api';
import { ProviderFailure, UpstreamCall, failureForStatus, retryAfterMs, vendorMessage, type ProviderErrorCode } from '../src/index.js';
import { sleep, startFakeServer, type FakeExchange, type FakeServer } from '../src/testing.js';

type Handler = (exchange: FakeExchange<undefined>) => void | Promise<void>;

const serve = (handle: Handler, chunkDelayMs?: number) => startFakeServer<undefined>({ defaultReply: undefined, handle, chunkDelayMs });

/** Runs `step` with a call, releases it, and returns the ProviderFailure it threw. */
async function failureOf(step: (call: UpstreamCall) => Promise<unknown>, call = new UpstreamCall(5_000)): Promise<ProviderFailure> {
  try {
    await step(call);
  } catch (err) {
    assert.ok(err instanceof ProviderFailure, `a ProviderFailure, not ${String(err)}`);
    return err;
  } finally {
    await call.release();
  }
  assert.fail('the call succeeded');
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms))]);
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createTcpServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

describe('UpstreamCall', () => {
  let server: FakeServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  describe('exchange', () => {
    it('sends JSON and reads a JSON answer', async () => {
      server = await serve(({ request, res }) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ echo: request.body }));
      });
      const call = new UpstreamCall(1_000);
      try {
        const response = await call.send({ method: 'POST', url: `${server.url}/echo`, headers: { authorization: 'Bearer k' }, body: { a: [1, 'ü'] } });
        assert.equal(response.status, 200);
        assert.equal(response.headers['content-type'], 'application/json');
        assert.deepEqual(await call.json(response), { echo: { a: [1, 'ü'] } });
      } finally {
        await call.release();
      }
      const sent = server.requests[0]!;
      assert.equal(sent.method, 'POST');
      assert.equal(sent.headers['content-type'], 'application/json');
      assert.equal(sent.headers.authorization, 'Bearer k');
      assert.match(String(sent.headers.accept), /text\/event-stream/);
    });

    it('splits the body into lines across chunks, keeping an unterminated last line only when asked', async () => {
      server = await serve(async ({ stream }) => {
        const s = stream({ 'content-type': 'application/x-ndjson' });
        for (const piece of ['one\r\ntw', 'o\n', '\nthr', 'ee\nfour']) await s.send(piece);
        s.end();
      });
      for (const keep of [false, true]) {
        const call = new UpstreamCall(1_000);
        const lines: string[] = [];
        for await (const line of call.lines(await call.send({ method: 'GET', url: server.url, headers: {} }), keep)) lines.push(line);
        await call.release();
        assert.deepEqual(lines, keep ? ['one', 'two', '', 'three', 'four'] : ['one', 'two', '', 'three']);
      }
    });

    it('yields the data of server-sent events', async () => {
      server = await serve(({ stream }) => {
        const s = stream({ 'content-type': 'text/event-stream' });
        void s.write('event: a\ndata: {"x":1}\n\n: comment\ndata:[DONE]\n\n').then(() => s.end());
      });
      const call = new UpstreamCall(1_000);
      const data: string[] = [];
      for await (const payload of call.eventData(await call.send({ method: 'GET', url: server.url, headers: {} }))) data.push(payload);
      await call.release();
      assert.deepEqual(data, ['{"x":1}', '[DONE]']);
    });

    it('joins multi-line data, accepts CRLF and events split across chunks, and drops an event the stream cuts', async () => {
      server = await serve(({ stream }) => {
        const s = stream({ 'content-type': 'text/event-stream' });
        void (async () => {
          await s.write('data: line one\r\ndata: line two\r\n\r\ndata: {"sp');
          await s.write('lit":true}\n\nretry: 100\ndata: cut in half');
          s.end();
        })();
      });
      const call = new UpstreamCall(1_000);
      const data: string[] = [];
      for await (const payload of call.eventData(await call.send({ method: 'GET', url: server.url, headers: {} }))) data.push(payload);
      await call.release();
      assert.deepEqual(data, ['line one\nline two', '{"split":true}']);
    });

    it('follows redirects', async () => {
      server = await serve(({ request, res }) => {
        if (request.path === '/old') {
          res.writeHead(302, { location: '/new' });
          return void res.end();
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"at":"new"}');
      });
      const call = new UpstreamCall(1_000);
      assert.deepEqual(await call.json(await call.send({ method: 'GET', url: `${server.url}/old`, headers: {} })), { at: 'new' });
      await call.release();
    });

    it('turns a POST into a GET after a 303, keeps the method after a 307, and sends credentials to another origin never', async () => {
      const other = await serve(({ request, res }) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ method: request.method, body: request.body ?? null, authorization: request.headers.authorization ?? null }));
      });
      try {
        server = await serve(({ request, res }) => {
          if (request.path === '/see-other') res.writeHead(303, { location: '/same' });
          else if (request.path === '/temporary') res.writeHead(307, { location: '/same' });
          else if (request.path === '/elsewhere') res.writeHead(307, { location: `${other.url}/there` });
          else {
            res.writeHead(200, { 'content-type': 'application/json' });
            return void res.end(JSON.stringify({ method: request.method, body: request.body ?? null, authorization: request.headers.authorization ?? null }));
          }
          res.end();
        });
        const asked = async (path: string) => {
          const call = new UpstreamCall(2_000);
          try {
            return await call.json(
              await call.send({ method: 'POST', url: `${server!.url}${path}`, headers: { authorization: 'Bearer sk-secret' }, body: { q: 1 } }),
            );
          } finally {
            await call.release();
          }
        };
        assert.deepEqual(await asked('/see-other'), { method: 'GET', body: null, authorization: 'Bearer sk-secret' });
        assert.deepEqual(await asked('/temporary'), { method: 'POST', body: { q: 1 }, authorization: 'Bearer sk-secret' });
        assert.deepEqual(await asked('/elsewhere'), { method: 'POST', body: { q: 1 }, authorization: null }, 'the key stays with its origin');
      } finally {
        await other.close();
      }
    });

    it('stops following a redirect loop after 20 and reports the last answer', async () => {
      let hops = 0;
      server = await serve(({ res }) => {
        hops++;
        res.writeHead(302, { location: '/again' });
        res.end();
      });
      const failure = await failureOf((call) => call.send({ method: 'GET', url: `${server!.url}/again`, headers: {} }));
      assert.equal(failure.code, 'PROVIDER_BAD_RESPONSE');
      assert.equal(hops, 21, 'the request and 20 redirects');
    });

    it('reports a body that is not JSON as PROVIDER_BAD_RESPONSE', async () => {
      server = await serve(({ res }) => void res.end('<html>'));
      const failure = await failureOf(async (call) => call.json(await call.send({ method: 'GET', url: server!.url, headers: {} })));
      assert.equal(failure.code, 'PROVIDER_BAD_RESPONSE');
    });
  });

  describe('a whole body', () => {
    it('joins chunks split inside a character, and drops a byte-order mark', async () => {
      const bytes = Buffer.from('\uFEFF{"text":"héllo wörld"}', 'utf8');
      server = await serve(async ({ res }) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        // Split inside the two-byte é, with a pause so the client sees two chunks.
        res.write(bytes.subarray(0, 14));
        await sleep(30);
        res.end(bytes.subarray(14));
      });
      const call = new UpstreamCall(1_000);
      try {
        assert.deepEqual(await call.json(await call.send({ method: 'GET', url: server.url, headers: {} })), { text: 'héllo wörld' });
      } finally {
        await call.release();
      }
    });

    it('settles at once when the body was already read, instead of waiting for events that will not come', async () => {
      server = await serve(({ res }) => void res.end('{"once":true}'));
      const call = new UpstreamCall(5_000);
      try {
        const response = await call.send({ method: 'GET', url: server.url, headers: {} });
        assert.equal(await call.text(response), '{"once":true}');
        assert.equal(await within(call.text(response), 500, 'a second read'), '');
      } finally {
        await call.release();
      }
    });

    it('reports a connection cut in the middle of the body as PROVIDER_STREAM_CUT', async () => {
      server = await serve(async (exchange) => {
        const partial = exchange.stream({ 'content-type': 'application/json' });
        await partial.write('{"partial":');
        partial.cut();
      });
      const failure = await failureOf(async (call) => call.json(await call.send({ method: 'GET', url: server!.url, headers: {} })));
      assert.equal(failure.code, 'PROVIDER_STREAM_CUT');
    });
  });

  describe('timeouts, per wait', () => {
    it('gives up on a response head that does not come within timeoutMs and closes the connection', async () => {
      server = await serve(() => undefined);
      const started = Date.now();
      const failure = await failureOf((call) => call.send({ method: 'GET', url: server!.url, headers: {} }), new UpstreamCall(200));
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 190 && elapsed < 1_500, `took ${elapsed} ms`);
      assert.equal(failure.code, 'PROVIDER_TIMEOUT');
      assert.equal(failure.message, 'the provider did not answer within 200 ms');
      assert.equal(failure.retryable, true);
      await within(server.requests[0]!.disconnected, 1_000, 'the server seeing the connection close');
    });

    it('gives up on a body that stalls for timeoutMs and closes the connection', async () => {
      server = await serve(({ stream }) => void stream({}).send('first\n'));
      const failure = await failureOf(async (call) => {
        for await (const line of call.lines(await call.send({ method: 'GET', url: server!.url, headers: {} }))) assert.equal(line, 'first');
      }, new UpstreamCall(200));
      assert.equal(failure.code, 'PROVIDER_TIMEOUT');
      assert.equal(failure.message, "the provider's stream stalled for 200 ms");
      await within(server.requests[0]!.disconnected, 1_000, 'the server seeing the connection close');
    });

    it('bounds each wait, not the whole answer', async () => {
      server = await serve(async ({ stream }) => {
        const s = stream({});
        for (let i = 0; i < 6; i++) {
          await sleep(100);
          await s.write(`${i}\n`);
        }
        s.end();
      });
      const call = new UpstreamCall(300);
      const started = Date.now();
      const lines: string[] = [];
      for await (const line of call.lines(await call.send({ method: 'GET', url: server.url, headers: {} }))) lines.push(line);
      await call.release();
      assert.deepEqual(lines, ['0', '1', '2', '3', '4', '5']);
      assert.ok(Date.now() - started >= 550, 'the answer took longer than timeoutMs in all');
    });

    it('does not count the time the consumer takes between chunks', async () => {
      server = await serve(async ({ stream }) => {
        const s = stream({});
        for (let i = 0; i < 3; i++) await s.write(`${i}\n`);
        s.end();
      });
      const call = new UpstreamCall(100);
      const lines: string[] = [];
      for await (const line of call.lines(await call.send({ method: 'GET', url: server.url, headers: {} }))) {
        lines.push(line);
        await sleep(250);
      }
      await call.release();
      assert.deepEqual(lines, ['0', '1', '2']);
    });
  });

  describe('cancellation', () => {
    it('aborts a request waiting for the head and closes the connection within tens of ms', async () => {
      server = await serve(() => undefined);
      const source = new CancellationTokenSource();
      const call = new UpstreamCall(5_000, source.token);
      const sending = failureOf(() => call.send({ method: 'GET', url: server!.url, headers: {} }), call);
      while (server.requests.length === 0) await sleep(5);
      const cancelledAt = performance.now();
      source.cancel();
      const failure = await sending;
      await within(server.requests[0]!.disconnected, 1_000, 'the server seeing the connection close');
      const closedAfter = performance.now() - cancelledAt;
      assert.equal(failure.code, 'CANCELLED');
      assert.equal(failure.message, 'the request was cancelled');
      assert.ok(call.cancelled);
      assert.ok(closedAfter < 100, `closed ${closedAfter.toFixed(1)} ms after the cancellation`);
    });

    it('aborts a body being read and closes the connection within tens of ms', async () => {
      server = await serve(async ({ request, stream }) => {
        const s = stream({});
        while (!request.clientDisconnected) await s.send('tick\n');
      }, 10);
      const source = new CancellationTokenSource();
      let cancelledAt = 0;
      const failure = await failureOf(async (call) => {
        let count = 0;
        for await (const _ of call.lines(await call.send({ method: 'GET', url: server!.url, headers: {} }))) {
          if (++count === 3) {
            cancelledAt = performance.now();
            source.cancel();
          }
        }
      }, new UpstreamCall(5_000, source.token));
      await within(server.requests[0]!.disconnected, 1_000, 'the server seeing the connection close');
      const closedAfter = performance.now() - cancelledAt;
      assert.equal(failure.code, 'CANCELLED');
      assert.ok(closedAfter < 100, `closed ${closedAfter.toFixed(1)} ms after the cancellation`);
    });

    it('sends nothing when the token is already cancelled', async () => {
      server = await serve(({ res }) => void res.end('{}'));
      const source = new CancellationTokenSource();
      source.cancel();
      const failure = await failureOf((call) => call.send({ method: 'GET', url: server!.url, headers: {} }), new UpstreamCall(1_000, source.token));
      assert.equal(failure.code, 'CANCELLED');
      assert.equal(server.requests.length, 0);
    });

    it('turns an error thrown while reading into CANCELLED once cancelled', () => {
      const source = new CancellationTokenSource();
      const call = new UpstreamCall(1_000, source.token);
      assert.equal(call.asFailure(new Error('boom')).code, 'PROVIDER_BAD_RESPONSE');
      source.cancel();
      assert.equal(call.asFailure(new Error('boom')).code, 'CANCELLED');
      const own = new ProviderFailure('PROVIDER_STREAM_CUT', 'cut');
      assert.equal(call.asFailure(own), own);
    });
  });

  describe('connections', () => {
    // undici hands a socket back one event-loop turn after an answer ends, hence the pauses.
    it('reuses one connection for consecutive complete answers', async () => {
      server = await serve(({ res }) => void res.end('{"ok":true}'));
      for (let i = 0; i < 5; i++) {
        const call = new UpstreamCall(1_000);
        await call.json(await call.send({ method: 'POST', url: server.url, headers: {}, body: { i } }));
        await call.release();
        await sleep(5);
      }
      assert.equal(server.requests.length, 5);
      assert.equal(server.connections, 1);
    });

    it('drains what follows a complete answer, so the connection is reused', async () => {
      server = await serve(async ({ stream }) => {
        const s = stream({});
        await s.write('answer\n');
        await sleep(20);
        await s.write('trailing bytes the client does not read\n');
        s.end();
      });
      for (let i = 0; i < 3; i++) {
        const call = new UpstreamCall(1_000);
        for await (const line of call.lines(await call.send({ method: 'GET', url: server.url, headers: {} }))) {
          if (line === 'answer') {
            call.markComplete();
            break;
          }
        }
        await call.release();
        await sleep(5);
      }
      assert.equal(server.connections, 1);
    });

    it('closes the connection when the rest of a complete answer does not end within 250 ms', async () => {
      server = await serve(({ stream }) => void stream({}).write('answer\n'));
      const call = new UpstreamCall(5_000);
      for await (const _ of call.lines(await call.send({ method: 'GET', url: server.url, headers: {} }))) {
        call.markComplete();
        break;
      }
      const started = Date.now();
      await call.release();
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 240 && elapsed < 1_000, `released after ${elapsed} ms`);
      await within(server.requests[0]!.disconnected, 1_000, 'the server seeing the connection close');
    });

    it('closes the connection of an answer released before it was complete', async () => {
      server = await serve(async ({ request, stream }) => {
        const s = stream({});
        while (!request.clientDisconnected) await s.send('tick\n');
      }, 10);
      const call = new UpstreamCall(1_000);
      for await (const _ of call.lines(await call.send({ method: 'GET', url: server.url, headers: {} }))) break;
      await call.release();
      await within(server.requests[0]!.disconnected, 1_000, 'the server seeing the connection close');
    });
  });

  describe('error mapping', () => {
    const statuses: Array<[number, ProviderErrorCode, boolean]> = [
      [400, 'PROVIDER_BAD_REQUEST', false],
      [401, 'PROVIDER_AUTH_FAILED', false],
      [403, 'PROVIDER_AUTH_FAILED', false],
      [404, 'PROVIDER_BAD_REQUEST', false],
      [408, 'PROVIDER_TIMEOUT', true],
      [409, 'PROVIDER_UNAVAILABLE', true],
      [422, 'PROVIDER_BAD_REQUEST', false],
      [429, 'PROVIDER_RATE_LIMITED', true],
      [500, 'PROVIDER_UNAVAILABLE', true],
      [503, 'PROVIDER_UNAVAILABLE', true],
      [529, 'PROVIDER_UNAVAILABLE', true],
    ];

    it('maps each HTTP status to a provider code, with the vendor message', async () => {
      server = await serve(({ request, res }) => {
        res.writeHead(Number(request.path.slice(1)), { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: `vendor says ${request.path.slice(1)}` } }));
      });
      for (const [status, code, retryable] of statuses) {
        const failure = await failureOf((call) => call.send({ method: 'GET', url: `${server!.url}/${status}`, headers: {} }));
        assert.deepEqual([failure.code, failure.retryable, failure.status], [code, retryable, status], `HTTP ${status}`);
        assert.match(failure.message, new RegExp(`^the provider answered HTTP ${status}: vendor says ${status}`));
      }
      assert.ok(server.connections <= 2, 'an error answer leaves the connection reusable');
    });

    it('carries retry-after of 429 and 503 answers', async () => {
      server = await serve(({ request, res }) => {
        res.writeHead(request.path === '/429' ? 429 : 503, request.path === '/429' ? { 'retry-after': '3' } : { 'retry-after-ms': '250' });
        res.end();
      });
      const limited = await failureOf((call) => call.send({ method: 'GET', url: `${server!.url}/429`, headers: {} }));
      assert.deepEqual([limited.code, limited.retryAfterMs, limited.message], ['PROVIDER_RATE_LIMITED', 3_000, 'the provider answered HTTP 429']);
      const busy = await failureOf((call) => call.send({ method: 'GET', url: `${server!.url}/503`, headers: {} }));
      assert.deepEqual([busy.code, busy.retryAfterMs], ['PROVIDER_UNAVAILABLE', 250]);
    });

    it('reports a refused connection as retryable PROVIDER_UNREACHABLE', async () => {
      const failure = await failureOf(async (call) => call.send({ method: 'GET', url: `http://127.0.0.1:${await freePort()}/`, headers: {} }));
      assert.equal(failure.code, 'PROVIDER_UNREACHABLE');
      assert.equal(failure.retryable, true);
      assert.match(failure.message, /ECONNREFUSED/);
    });

    it('reports an unknown host as PROVIDER_UNREACHABLE', async () => {
      const failure = await failureOf((call) => call.send({ method: 'GET', url: 'http://aion-provider-kit-test.invalid/', headers: {} }));
      assert.equal(failure.code, 'PROVIDER_UNREACHABLE');
      assert.match(failure.message, /ENOTFOUND|EAI_AGAIN/);
    });

    it('reports a connection closed before the head as retryable PROVIDER_UNAVAILABLE', async () => {
      server = await serve(({ res }) => void res.socket?.destroy());
      const failure = await failureOf((call) => call.send({ method: 'GET', url: server!.url, headers: {} }));
      assert.equal(failure.code, 'PROVIDER_UNAVAILABLE');
      assert.equal(failure.retryable, true);
      assert.match(failure.message, /^the connection to the provider failed before an answer/);
    });

    it('reports a connection closed in the middle of the body as PROVIDER_STREAM_CUT', async () => {
      server = await serve(async ({ stream }) => {
        const s = stream({});
        await s.write('partial\n');
        await sleep(20);
        s.cut();
      });
      const lines: string[] = [];
      const failure = await failureOf(async (call) => {
        for await (const line of call.lines(await call.send({ method: 'GET', url: server!.url, headers: {} }))) lines.push(line);
      });
      assert.deepEqual(lines, ['partial']);
      assert.equal(failure.code, 'PROVIDER_STREAM_CUT');
      assert.equal(failure.retryable, true);
      assert.match(failure.message, /^the connection closed before the answer was complete/);
    });
  });
});

describe('upstream helpers', () => {
  it('reads retry-after-ms first, then retry-after as seconds or an HTTP date', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    assert.equal(retryAfterMs({ 'retry-after-ms': '1500', 'retry-after': '9' }, now), 1500);
    assert.equal(retryAfterMs({ 'retry-after-ms': 'soon', 'retry-after': '9' }, now), 9_000);
    assert.equal(retryAfterMs({ 'retry-after': '0.5' }, now), 500);
    assert.equal(retryAfterMs({ 'retry-after': ['2', '7'] }, now), 2_000);
    assert.equal(retryAfterMs({ 'retry-after': 'Wed, 01 Jan 2025 00:00:30 GMT' }, now), 30_000);
    assert.equal(retryAfterMs({ 'retry-after': 'Tue, 31 Dec 2024 00:00:00 GMT' }, now), 0);
    assert.equal(retryAfterMs({ 'retry-after': 'soon' }, now), undefined);
    assert.equal(retryAfterMs({}, now), undefined);
  });

  it('finds the vendor message in the usual error bodies', () => {
    assert.equal(vendorMessage('{"error":{"message":"bad key","type":"auth"}}'), 'bad key');
    assert.equal(vendorMessage('{"error":"model not found"}'), 'model not found');
    assert.equal(vendorMessage('{"message":"overloaded"}'), 'overloaded');
    assert.equal(vendorMessage('  Bad Gateway \n'), 'Bad Gateway');
    assert.equal(vendorMessage('x'.repeat(600)), `${'x'.repeat(500)}…`);
  });

  it('asks for a 200 when a 2xx or 3xx answer reaches the status mapping', () => {
    const failure = failureForStatus(204, {}, '');
    assert.deepEqual([failure.code, failure.message], ['PROVIDER_BAD_RESPONSE', 'the provider answered HTTP 204 (expected 200)']);
  });

  it('turns a failure into the final error event, never retryable after output', () => {
    const failure = new ProviderFailure('PROVIDER_RATE_LIMITED', 'slow down', { retryable: true, status: 429, retryAfterMs: 1500 });
    assert.deepEqual(failure.toEvent(false), {
      type: 'error',
      code: 'PROVIDER_RATE_LIMITED',
      message: 'slow down',
      retryable: true,
      afterFirstToken: false,
      status: 429,
      retryAfterMs: 1500,
    });
    assert.deepEqual(failure.toEvent(true), {
      type: 'error',
      code: 'PROVIDER_RATE_LIMITED',
      message: 'slow down',
      retryable: false,
      afterFirstToken: true,
      status: 429,
      retryAfterMs: 1500,
    });
  });

  it('turns a failure into an AionError with the edge status and retry-after', () => {
    const limited = new ProviderFailure('PROVIDER_RATE_LIMITED', 'slow down', { retryable: true, status: 429, retryAfterMs: 1500 }).toAionError();
    assert.ok(limited instanceof AionError);
    assert.deepEqual([limited.code, limited.status, limited.headers], ['PROVIDER_RATE_LIMITED', 429, { 'retry-after': '2' }]);
    assert.deepEqual(limited.details, { retryable: true, status: 429, retryAfterMs: 1500 });
    const edge = (code: ProviderErrorCode) => new ProviderFailure(code, code).toAionError().status;
    assert.deepEqual(
      (['PROVIDER_UNAVAILABLE', 'PROVIDER_TIMEOUT', 'PROVIDER_BAD_REQUEST', 'PROVIDER_UNREACHABLE', 'CANCELLED'] as const).map(edge),
      [503, 504, 400, 502, 499],
    );
  });
});
