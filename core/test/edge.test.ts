import assert from 'node:assert/strict';
import type { Socket as TcpSocket } from 'node:net';
import { io as connectSocket, type Socket } from 'socket.io-client';
import { WebSocket } from 'ws';
import { TrustedProxies } from '../src/http/clientAddress.js';
import { errorBody, sanitizeMessage } from '../src/http/errorResponse.js';
import { MessageThrottle } from '../src/http/messageThrottle.js';
import { RouteTable } from '../src/http/routeTable.js';
import { startTestKernel, type TestKernel } from '../src/index.js';
import { fixture, waitFor } from './helpers.js';
import { httpText, openSocket, rawRequest, readResponse, type RawResponse } from './rawHttp.js';

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const json = async (res: Response) => (await res.json()) as any;

function assertError(res: { status: number; json?: any }, status: number, code: string): { code: string; message: string; details?: any } {
  assert.equal(res.status, status, `expected ${status} ${code}, got ${res.status} ${JSON.stringify(res.json)}`);
  assert.deepEqual(Object.keys(res.json ?? {}), ['error'], 'the one error shape');
  assert.equal(res.json.error.code, code);
  assert.equal(typeof res.json.error.message, 'string');
  return res.json.error;
}

const asRaw = async (res: Response): Promise<{ status: number; json: any }> => ({ status: res.status, json: await res.json() });
const nested = (depth: number, open = '[', close = ']', inner = '') => open.repeat(depth) + inner + close.repeat(depth);
const portOf = (kernel: TestKernel) => Number(new URL(kernel.url).port);

describe('the HTTP edge against hostile clients', function () {
  this.timeout(60_000);
  let kernel: TestKernel;
  let port: number;
  before(async () => {
    kernel = await startTestKernel({
      extensions: [fixture('edge'), fixture('edge-auth')],
      config: {
        permissions: { grants: { 'fixtures.edge-auth': { kernelHost: true } } },
        server: {
          maxInFlight: 8,
          maxConnectionsPerIp: 1000,
          headersTimeoutMs: 2_000,
          receiveTimeoutMs: 60_000,
          bodyProgress: { minBytes: 64, intervalMs: 3_000 },
          trustedProxies: ['127.0.0.2'],
          realtime: { messagesPerSecond: 20, burst: 20, refusalsBeforeDisconnect: 30, routeCeiling: { messagesPerSecond: 20, burst: 40 } },
        },
      },
    });
    port = portOf(kernel);
  });
  after(() => kernel.stop());

  describe('slow clients', () => {
    it('keeps answering /healthz and authenticated requests while 300 clients trickle request bodies, then cuts them off with 408', async () => {
      const flood: TcpSocket[] = [];
      const answers: Array<Promise<RawResponse>> = [];
      const trickles: NodeJS.Timeout[] = [];
      try {
        for (let i = 0; i < 300; i++) {
          const socket = await openSocket(port);
          socket.on('error', () => undefined);
          flood.push(socket);
          answers.push(readResponse(socket, 30_000).catch((err: Error) => ({ status: 0, headers: {}, body: err.message, ms: 0 })));
          socket.write('POST /v1/edge/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{');
          trickles.push(setInterval(() => socket.writable && socket.write(' '), 1_000));
        }
        await new Promise((r) => setTimeout(r, 500));
        const health = await kernel.request('/healthz');
        assert.equal(health.status, 200, 'slow bodies hold no dispatch slot, so the kernel is not saturated');
        const authed = await kernel.request('/v1/edge/private', {
          method: 'POST',
          headers: { ...bearer('user'), 'content-type': 'application/json' },
          body: '{"x":1}',
        });
        assert.equal(authed.status, 200);
        assert.deepEqual(await authed.json(), { ok: true, sub: 'ada' });
        const settled = await Promise.all(answers);
        const timedOut = settled.filter((r) => r.status === 408);
        assert.equal(timedOut.length, settled.length, `every trickling client gets 408 (statuses: ${[...new Set(settled.map((r) => r.status))].join(', ')})`);
        assertError(timedOut[0]!, 408, 'REQUEST_TIMEOUT');
        assert.match(timedOut[0]!.json.error.message, /under 64 bytes in 3000 ms/);
        console.log(
          `      measured: 300 trickling clients cut off after ${Math.min(...timedOut.map((r) => r.ms))}–${Math.max(...timedOut.map((r) => r.ms))} ms`,
        );
      } finally {
        trickles.forEach(clearInterval);
        flood.forEach((s) => s.destroy());
      }
      assert.equal((await kernel.request('/healthz')).status, 200);
    });

    it('answers 408 in the error shape to a client that trickles its headers', async () => {
      const socket = await openSocket(port);
      const answer = readResponse(socket, 20_000);
      socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
      const trickle = setInterval(() => socket.writable && socket.write('X-Slow: 1\r\n'), 300);
      try {
        const res = await answer;
        assertError(res, 408, 'REQUEST_TIMEOUT');
        assert.match(res.json.error.message, /headers within 2000 ms/);
      } finally {
        clearInterval(trickle);
        socket.destroy();
      }
    });

    it("answers 431 in the error shape to headers over Node's limit, and keeps serving", async () => {
      const res = await rawRequest(port, httpText('GET', '/healthz', { 'X-Big': 'a'.repeat(20_000) }));
      const error = assertError(res, 431, 'HEADERS_TOO_LARGE');
      assert.match(error.message, /16384 bytes/);
      assert.equal((await kernel.request('/healthz')).status, 200);
    });

    it('answers 400 in the error shape to a request that is not HTTP', async () => {
      assertError(await rawRequest(port, 'HELLO / WORLD\r\n\r\n'), 400, 'BAD_REQUEST');
      assertError(await rawRequest(port, httpText('POST', '/v1/edge/echo', { 'Content-Length': 'ten' }, '{}')), 400, 'BAD_REQUEST');
    });
  });

  describe('malformed requests', () => {
    it('answers 400 to a request target that cannot be parsed, over plain HTTP and as a WebSocket upgrade, and keeps running', async () => {
      assertError(await rawRequest(port, 'GET http://[::1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'), 400, 'BAD_REQUEST');
      const upgrade =
        'GET http://[::1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
      assertError(await rawRequest(port, upgrade), 400, 'BAD_REQUEST');
      assert.equal((await kernel.request('/healthz')).status, 200);
    });

    it('routes a target by its path as sent, over plain HTTP and as a WebSocket upgrade: no dot segment resolved, OPTIONS * reaches no route', async () => {
      const absolute = (target: string) => rawRequest(port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
      assert.equal((await absolute('http://127.0.0.1/healthz?x=1')).status, 200);
      // A proxy in front that allows /x/* saw /x/%2e%2e/healthz: the kernel must not answer it as /healthz.
      assertError(await absolute('http://127.0.0.1/x/%2e%2e/healthz'), 404, 'NOT_FOUND');
      assertError(await rawRequest(port, 'OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'), 404, 'NOT_FOUND');
      // The same for a WebSocket upgrade: /x/%2e%2e/v1/edge/socket is not the socket route.
      const upgrade = (target: string) =>
        `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
      assertError(await rawRequest(port, upgrade('/x/%2e%2e/v1/edge/socket')), 404, 'NOT_FOUND');
      assertError(await rawRequest(port, upgrade('http://127.0.0.1/x/%2e%2e/v1/edge/socket')), 404, 'NOT_FOUND');
    });
  });

  describe('bodies', () => {
    const post = (body: string | Buffer, type = 'application/json') => rawRequest(port, httpText('POST', '/v1/edge/echo', { 'Content-Type': type }, body));

    it('refuses JSON nested deeper than server.jsonMaxDepth with 400 naming the limit, at every depth', async () => {
      for (const depth of [65, 1_000, 5_000, 100_000, 500_000]) {
        for (const body of [nested(depth), nested(depth, '{"a":', '}', '1')]) {
          const res = await post(body);
          const error = assertError(res, 400, 'BAD_REQUEST');
          assert.match(error.message, /deeper than 64 levels \(server\.jsonMaxDepth\)/);
          assert.deepEqual(error.details, { maxDepth: 64 });
        }
      }
      const atLimit = await post(nested(64));
      assert.equal(atLimit.status, 200);
      assert.deepEqual(atLimit.json.body, JSON.parse(nested(64)));
      const bracketsInString = await post(JSON.stringify({ s: nested(500), 'k[{': '\\"[[' }));
      assert.equal(bracketsInString.status, 200, 'brackets inside strings do not count');
      assert.equal(bracketsInString.json.body.s, nested(500));
    });

    it('refuses a body that is not UTF-8 with 400, and passes text and binary bodies on', async () => {
      assertError(await post(Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d])), 400, 'BAD_REQUEST');
      assert.equal((await post('hello', 'text/plain')).json.rawBody, 'hello');
      assert.equal((await post(Buffer.from([1, 2, 255]), 'application/octet-stream')).json.rawBody, Buffer.from([1, 2, 255]).toString('base64'));
    });
  });

  describe('client addresses', () => {
    const whoami = (from: string, forwardedFor?: string) =>
      rawRequest(port, httpText('GET', '/v1/edge/whoami', forwardedFor ? { 'X-Forwarded-For': forwardedFor } : {}), { localAddress: from });

    it('believes X-Forwarded-For only from a trusted proxy, and gives http.authenticate and the route the resolved address', async () => {
      const viaProxy = await whoami('127.0.0.2', '203.0.113.9');
      assert.equal(viaProxy.json.ip, '203.0.113.9');
      assert.equal(viaProxy.headers['x-auth-saw-ip'], '203.0.113.9');
      const direct = await whoami('127.0.0.1', '203.0.113.9');
      assert.equal(direct.json.ip, '127.0.0.1', 'a client cannot name its own address');
      assert.equal(direct.headers['x-auth-saw-ip'], '127.0.0.1');
      assert.equal((await whoami('127.0.0.2', '198.51.100.1, 127.0.0.2')).json.ip, '198.51.100.1', 'trusted hops are skipped from the right');
      assert.equal((await whoami('127.0.0.2', 'spoofed, 198.51.100.7')).json.ip, '198.51.100.7', 'the first untrusted hop from the right wins');
      assert.equal((await whoami('127.0.0.2', 'not-an-address')).json.ip, '127.0.0.2', 'garbage stops at the proxy');
      assert.equal((await whoami('127.0.0.2')).json.ip, '127.0.0.2');
    });

    it('refuses to start with a trusted proxy that is not an address or CIDR', async () => {
      await assert.rejects(startTestKernel({ config: { server: { trustedProxies: ['10.0.0.0/8', 'proxy.local'] } } }), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'CONFIG_INVALID');
        assert.match(err.message, /proxy\.local/);
        return true;
      });
    });
  });

  describe('what anonymous callers learn', () => {
    it('serves /v1/extensions only to principals holding * or extensions:read', async () => {
      assertError(await asRaw(await kernel.request('/v1/extensions')), 401, 'UNAUTHENTICATED');
      const forbidden = assertError(await asRaw(await kernel.request('/v1/extensions', { headers: bearer('user') })), 403, 'FORBIDDEN');
      assert.deepEqual(forbidden.details, { missingScopes: ['extensions:read'] });
      for (const token of ['ops', 'admin']) {
        const res = await kernel.request('/v1/extensions', { headers: bearer(token) });
        assert.equal(res.status, 200);
        assert.ok((await json(res)).extensions.some((e: { id: string }) => e.id === 'fixtures.edge'));
      }
    });

    it('shows anonymous /healthz callers status and counts, and an admin the hosts with their pids', async () => {
      await kernel.request('/v1/edge/whoami');
      const anonymous = await kernel.request('/healthz');
      const text = await anonymous.text();
      assert.doesNotMatch(text, /pid|fixtures\.|shared/);
      const body = JSON.parse(text);
      assert.equal(body.status, 'ok');
      assert.equal(body.counts.hosts.running, 2);
      const admin = await json(await kernel.request('/healthz', { headers: bearer('admin') }));
      const shared = admin.hosts.find((h: { kind: string }) => h.kind === 'shared');
      assert.equal(typeof shared.pid, 'number');
      assert.deepEqual(shared.extensions, ['fixtures.edge']);
      assert.equal((await json(await kernel.request('/healthz', { headers: bearer('user') }))).hosts, undefined, 'details are for admins');
      assert.equal((await kernel.request('/healthz', { headers: bearer('forged') })).status, 200, 'bad credentials get the anonymous view');
    });
  });

  describe('realtime', () => {
    const sockets: Socket[] = [];
    const connect = (token?: string) => {
      const socket = connectSocket(kernel.url, { auth: token ? { token } : {}, transports: ['websocket'], reconnection: false });
      sockets.push(socket);
      return socket;
    };
    afterEach(() => sockets.splice(0).forEach((s) => s.close()));

    it('refuses socket.io handshakes without credentials when an authentication extension is installed', async () => {
      const anonymous = connect();
      const error = await new Promise<Error & { data?: { code: string; message: string } }>((resolve) => anonymous.on('connect_error', resolve));
      assert.equal(error.data?.code, 'UNAUTHENTICATED');
      assert.match(error.message, /must authenticate/);
      const forged = connect('forged');
      assert.equal((await new Promise<Error & { data?: { code: string } }>((resolve) => forged.on('connect_error', resolve))).data?.code, 'UNAUTHENTICATED');
      const user = connect('user');
      await new Promise<void>((resolve, reject) => user.on('connect', resolve).on('connect_error', reject));
      assert.deepEqual(await user.emitWithAck('subscribe', { room: 'user:ada' }), { ok: true, room: 'user:ada' });
    });

    it('throttles a socket.io client that floods events with a typed error, disconnects it, and keeps serving others', async () => {
      const flooder = connect('admin');
      const other = connect('user');
      await Promise.all([flooder, other].map((s) => new Promise<void>((resolve, reject) => s.on('connect', resolve).on('connect_error', reject))));
      const errors: Array<{ code: string; message: string; details: { retryAfterMs: number } }> = [];
      flooder.on('aion:error', (e) => errors.push(e));
      const disconnected = new Promise<string>((resolve) => flooder.on('disconnect', resolve));
      const acks: unknown[] = [];
      for (let i = 0; i < 500; i++) flooder.emit('subscribe', { room: 'user:root' }, (reply: unknown) => acks.push(reply));
      assert.equal(await disconnected, 'io server disconnect');
      assert.ok(errors.length >= 1);
      assert.equal(errors[0]!.code, 'RATE_LIMITED');
      assert.equal(typeof errors[0]!.details.retryAfterMs, 'number');
      assert.ok(
        acks.some((a) => (a as { error?: { code: string } }).error?.code === 'RATE_LIMITED'),
        'acknowledged events are answered with the error too',
      );
      assert.ok(
        acks.filter((a) => (a as { ok: boolean }).ok).length <= 25,
        `at most the burst got through (${acks.filter((a) => (a as { ok: boolean }).ok).length})`,
      );
      assert.deepEqual(await other.emitWithAck('subscribe', { room: 'user:ada' }), { ok: true, room: 'user:ada' });
    });

    it('throttles a WebSocket route client that floods messages with error frames, closes it with 1008, and keeps serving others', async () => {
      const open = (token: string) =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(`${kernel.url.replace('http', 'ws')}/v1/edge/socket`, { headers: bearer(token) });
          ws.once('open', () => resolve(ws)).once('error', reject);
        });
      const flooder = await open('admin');
      const frames: any[] = [];
      flooder.on('message', (m) => frames.push(JSON.parse(m.toString())));
      const closed = new Promise<{ code: number; reason: string }>((resolve) =>
        flooder.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
      );
      for (let i = 0; i < 500; i++) flooder.send(`m${i}`);
      const { code, reason } = await closed;
      assert.equal(code, 1008);
      assert.match(reason, /^RATE_LIMITED/);
      const refusals = frames.filter((f) => f.error);
      assert.ok(refusals.length >= 1);
      assert.equal(refusals[0].error.code, 'RATE_LIMITED');
      assert.ok(frames.filter((f) => f.echo).length <= 25, 'at most the burst got through');
      const other = await open('user');
      const reply = new Promise((resolve) => other.once('message', (m) => resolve(JSON.parse(m.toString()))));
      other.send('still here');
      assert.deepEqual(await reply, { echo: 'still here' });
      other.close();
    });

    it("applies a WebSocket route's own message limit, up to the operator's ceiling", async () => {
      const ws = new WebSocket(`${kernel.url.replace('http', 'ws')}/v1/edge/fast-socket`, { headers: bearer('admin') });
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      const frames: any[] = [];
      ws.on('message', (m) => frames.push(JSON.parse(m.toString())));
      const settle = () => new Promise((r) => setTimeout(r, 300));
      // 30 at once: past the server's burst of 20, within the route's own limit.
      for (let i = 0; i < 30; i++) ws.send(`a${i}`);
      await settle();
      assert.equal(frames.filter((f) => f.echo).length, 30, JSON.stringify(frames.filter((f) => f.error)[0]));
      // The route asks for 100000 at once; the operator's ceiling (a burst of 40) is what it gets.
      frames.length = 0;
      await new Promise((r) => setTimeout(r, 2_100));
      for (let i = 0; i < 60; i++) ws.send(`b${i}`);
      await settle();
      const echoed = frames.filter((f) => f.echo).length;
      assert.ok(echoed >= 40 && echoed <= 45, `about the ceiling's burst got through (${echoed})`);
      assert.equal(frames.find((f) => f.error)?.error.code, 'RATE_LIMITED');
      ws.close();
    });
  });
});

describe('the HTTP edge: connections per client address', function () {
  this.timeout(30_000);
  let kernel: TestKernel;
  let port: number;
  before(async () => {
    kernel = await startTestKernel({ extensions: [fixture('edge')], config: { server: { maxConnectionsPerIp: 5, trustedProxies: ['127.0.0.2'] } } });
    port = portOf(kernel);
  });
  after(() => kernel.stop());

  it('refuses a client over server.maxConnectionsPerIp with 429 in the error shape, serves other addresses, and exempts trusted proxies', async () => {
    const held = await Promise.all(Array.from({ length: 5 }, () => openSocket(port, '127.0.0.3')));
    const proxied = await Promise.all(Array.from({ length: 8 }, () => openSocket(port, '127.0.0.2')));
    try {
      const refused = await rawRequest(port, httpText('GET', '/v1/edge/whoami'), { localAddress: '127.0.0.3' });
      const error = assertError(refused, 429, 'RATE_LIMITED');
      assert.match(error.message, /127\.0\.0\.3 \(at most 5\)/);
      assert.equal(refused.headers['retry-after'], '1');
      assert.equal((await rawRequest(port, httpText('GET', '/v1/edge/whoami'), { localAddress: '127.0.0.1' })).status, 200, 'another address is served');
      assert.equal((await rawRequest(port, httpText('GET', '/v1/edge/whoami'), { localAddress: '127.0.0.2' })).status, 200, 'a trusted proxy is not capped');
      held.pop()!.destroy();
      await waitFor(async () => (await rawRequest(port, httpText('GET', '/v1/edge/whoami'), { localAddress: '127.0.0.3' })).status === 200);
    } finally {
      [...held, ...proxied].forEach((s) => s.destroy());
    }
  });

  it('says so when no authentication extension is installed: /v1/extensions cannot be used, socket.io is anonymous', async () => {
    const error = assertError(await asRaw(await kernel.request('/v1/extensions')), 401, 'UNAUTHENTICATED');
    assert.match(error.message, /no authentication extension is installed/);
    const socket = connectSocket(kernel.url, { transports: ['websocket'], reconnection: false });
    try {
      await new Promise<void>((resolve, reject) => socket.on('connect', resolve).on('connect_error', reject));
    } finally {
      socket.close();
    }
  });
});

describe('the HTTP edge: its small parts', () => {
  it('matches routes in the order declared, the one-lookup static path included', () => {
    const table = new RouteTable<string>();
    table.add('GET', '/v1/things/:id', 'param');
    table.add('GET', '/v1/things/special', 'static-shadowed');
    table.add('POST', '/v1/things/special', 'static-post');
    table.add('GET', '/v1/files/*rest', 'files');
    table.add('GET', '/v1/plain', 'plain');
    const handler = (method: string, path: string) => {
      const match = table.match(method, path);
      return match && 'handler' in match ? match.handler : match;
    };
    assert.equal(handler('GET', '/v1/things/special'), 'param', 'an earlier parameter route wins over a later static one');
    assert.equal(handler('POST', '/v1/things/special'), 'static-post');
    assert.equal(handler('GET', '/v1/plain'), 'plain');
    assert.equal(handler('HEAD', '/v1/plain'), 'plain', 'HEAD is answered by the GET route');
    assert.equal(handler('GET', '/V1/PLAIN/'), 'plain', 'any case, a trailing slash');
    assert.deepEqual(table.match('GET', '/v1/files/a/b%2Fc'), { handler: 'files', route: '/v1/files/*rest', params: { rest: 'a/b/c' } });
    assert.deepEqual(table.match('DELETE', '/v1/plain'), { allowed: ['HEAD', 'GET'] });
    assert.equal(table.match('GET', '/v1/nowhere'), undefined);
  });

  it('matches trusted proxies by address or CIDR, IPv4 (also IPv4-mapped) and IPv6', () => {
    const proxies = new TrustedProxies(['10.0.0.0/8', '192.168.1.7', '::1', 'fd00::/8']);
    for (const a of ['10.1.2.3', '::ffff:10.200.0.1', '192.168.1.7', '::1', 'fd12::5']) assert.ok(proxies.trusts(a), a);
    for (const a of ['11.0.0.1', '192.168.1.8', '::2', 'fe80::1', 'garbage', '']) assert.ok(!proxies.trusts(a), a);
    assert.equal(proxies.clientAddress('::ffff:10.0.0.9', '[2001:db8::7]:4711, 10.0.0.2'), '2001:db8::7');
    assert.equal(proxies.clientAddress('10.0.0.9', '203.0.113.5:8080'), '203.0.113.5');
    assert.equal(new TrustedProxies([]).clientAddress('10.0.0.9', '203.0.113.5'), '10.0.0.9', 'no proxies: the header is ignored');
    for (const bad of ['10.0.0.0/33', '10.0.0.0/x', 'fd00::/129', 'example.org']) assert.throws(() => new TrustedProxies([bad]), /CIDR/);
  });

  it('lets a burst through, refuses past the rate, and disconnects a client that keeps going', () => {
    const throttle = new MessageThrottle({ messagesPerSecond: 10, burst: 5, refusalsBeforeDisconnect: 3 }, 0);
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7, 8, 9].map(() => throttle.check(0)),
      ['accept', 'accept', 'accept', 'accept', 'accept', 'refuse', 'refuse', 'refuse', 'disconnect'],
    );
    assert.equal(throttle.check(100), 'accept', 'a token comes back after 1/rate seconds');
    assert.equal((throttle.refusal('refuse').details as { retryAfterMs: number }).retryAfterMs, 100, 'the next token, 1/rate seconds away');
  });

  it('scrubs host filesystem paths from client messages and keeps API paths and URLs', () => {
    const cases: Array<[string, string]> = [
      ['the model x is not served here (GET /v1/models lists them)', 'the model x is not served here (GET /v1/models lists them)'],
      ['POST /v1/chat/completions requires authentication', 'POST /v1/chat/completions requires authentication'],
      ['already exists at /srv/aion/data/x.db', 'already exists at [path]'],
      ["ENOENT: open '/home/ada/.aion/aion.db'", "ENOENT: open '[path]'"],
      ['cannot read C:\\Users\\ada\\key.pem or D:/keys/k.pem', 'cannot read [path] or [path]'],
      ['see file:///usr/lib/node/x.js and ~/secrets/key', 'see [path] and [path]'],
      ['fetch http://127.0.0.1:11434/api/chat failed', 'fetch http://127.0.0.1:11434/api/chat failed'],
      ['first line\n    at /tmp/x.js:1:1', 'first line'],
    ];
    for (const [message, expected] of cases) assert.equal(sanitizeMessage(message), expected, message);
  });

  it("adds OpenAI's type and param to the error shape only for routes that ask for it", () => {
    const payload = { code: 'MODEL_NOT_FOUND', message: 'no such model', details: { param: 'model' } };
    assert.deepEqual(errorBody(payload), { error: payload });
    assert.deepEqual(errorBody(payload, 'openai', 404), { error: { ...payload, type: 'not_found_error', param: 'model' } });
    const types = [400, 401, 403, 404, 409, 413, 422, 429, 500, 502, 503].map((status) => errorBody({ code: 'X', message: 'm' }, 'openai', status).error.type);
    assert.deepEqual(types, [
      'invalid_request_error',
      'authentication_error',
      'permission_error',
      'not_found_error',
      'invalid_request_error',
      'invalid_request_error',
      'invalid_request_error',
      'rate_limit_error',
      'server_error',
      'api_error',
      'api_error',
    ]);
    assert.equal(errorBody({ code: 'X', message: 'm', details: ['a'] }, 'openai', 400).error.param, null);
  });
});
