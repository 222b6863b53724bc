import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { connect, createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { createLogger } from '../src/index.js';
import { decideEgress, isNonPublicAddress, networkPolicy, type Resolver } from '../src/hosts/egressPolicy.js';
import { EgressProxy, type EgressLimits } from '../src/hosts/egressProxy.js';
import { waitFor } from './helpers.js';

const publicResolver: Resolver = async () => ['203.0.113.7'];
const resolveTo =
  (table: Record<string, string[]>): Resolver =>
  async (host) => {
    const found = table[host];
    if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return found;
  };

describe('egress policy', () => {
  it('is unrestricted without a network key or with *:*, and merges operator grants into the allow-list', () => {
    assert.equal(networkPolicy(undefined).unrestricted, true);
    assert.equal(networkPolicy(['api.example.com:443', '*:*']).unrestricted, true);
    assert.equal(networkPolicy('deny', ['*:*']).unrestricted, true, 'an operator may open it fully');
    const merged = networkPolicy('deny', ['api.example.com:443', 'not an entry']);
    assert.equal(merged.unrestricted, false);
    assert.deepEqual(merged.entries, ['api.example.com:443', 'not an entry']);
    assert.deepEqual(merged.invalid, ['not an entry']);
  });

  it('matches names case-insensitively, with wildcards covering subdomains but not the bare domain or another port', async () => {
    const policy = networkPolicy(['api.openai.com:443', '*.openai.azure.com:443']);
    const allowed = async (host: string, port: number) => (await decideEgress(policy, host, port, publicResolver)).allowed;
    assert.equal(await allowed('API.OpenAI.com.', 443), true);
    assert.equal(await allowed('east.openai.azure.com', 443), true);
    assert.equal(await allowed('a.b.openai.azure.com', 443), true);
    assert.equal(await allowed('openai.azure.com', 443), false);
    assert.equal(await allowed('openai.azure.com.evil.example', 443), false);
    assert.equal(await allowed('api.openai.com', 80), false);
    assert.equal(await allowed('example.com', 443), false);
  });

  it('reads IP literals in one spelling: IPv6 brackets and zeros, IPv4 shorthand', async () => {
    const policy = networkPolicy(['[::1]:*', '127.0.0.1:8080']);
    assert.deepEqual(await decideEgress(policy, '[0:0::1]', 9, publicResolver), { allowed: true, addresses: ['::1'] });
    assert.deepEqual(await decideEgress(policy, '127.1', 8080, publicResolver), { allowed: true, addresses: ['127.0.0.1'] });
    assert.equal((await decideEgress(policy, '127.0.0.2', 8080, publicResolver)).allowed, false);
  });

  it('classifies loopback, private, link-local, unique-local and mapped addresses as non-public', () => {
    for (const a of [
      '127.0.0.1',
      '10.1.2.3',
      '172.20.0.1',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '::1',
      '::',
      'fd00::2',
      'fe80::1',
      '::ffff:7f00:1',
      '64:ff9b::a00:1',
    ]) {
      assert.equal(isNonPublicAddress(a), true, a);
    }
    for (const a of ['8.8.8.8', '203.0.113.7', '2606:4700:4700::1111']) assert.equal(isNonPublicAddress(a), false, a);
  });

  it('refuses a name that resolves to a private address unless that address or localhost is listed literally', async () => {
    const resolve = resolveTo({ 'internal.example': ['10.0.0.5'], 'mixed.example': ['10.0.0.5', '203.0.113.9'], localhost: ['127.0.0.1', '::1'] });
    const refused = await decideEgress(networkPolicy(['internal.example:80', '*:80']), 'internal.example', 80, resolve);
    assert.equal(refused.allowed, false);
    assert.match((refused as { reason: string }).reason, /10\.0\.0\.5.*private/);
    assert.deepEqual(await decideEgress(networkPolicy(['internal.example:80', '10.0.0.5:80']), 'internal.example', 80, resolve), {
      allowed: true,
      addresses: ['10.0.0.5'],
    });
    assert.deepEqual(
      await decideEgress(networkPolicy(['mixed.example:80']), 'mixed.example', 80, resolve),
      { allowed: true, addresses: ['203.0.113.9'] },
      'only the public address is dialled',
    );
    assert.equal((await decideEgress(networkPolicy(['*:80']), 'localhost', 80, resolve)).allowed, false);
    assert.deepEqual(await decideEgress(networkPolicy(['localhost:80']), 'localhost', 80, resolve), { allowed: true, addresses: ['127.0.0.1', '::1'] });
    assert.equal((await decideEgress(networkPolicy(['*:80']), '10.0.0.5', 80, resolve)).allowed, false, 'a wildcard never covers a private literal');
  });

  it('refuses a name that does not resolve, saying so', async () => {
    const decision = await decideEgress(networkPolicy(['nowhere.example:443']), 'nowhere.example', 443, resolveTo({}));
    assert.equal(decision.allowed, false);
    assert.match((decision as { reason: string }).reason, /ENOTFOUND/);
  });
});

describe('egress proxy', function () {
  this.timeout(30_000);
  let upstream: Server;
  let port: number;
  let silent: TcpServer;
  let silentPort: number;
  const logs: Array<Record<string, any>> = [];
  const logger = createLogger({
    level: 'info',
    destination: new Writable({
      write(chunk, _encoding, done) {
        for (const line of String(chunk).split('\n')) if (line.trim()) logs.push(JSON.parse(line));
        done();
      },
    }),
  });

  before(async () => {
    upstream = createServer((req, res) =>
      res.end(JSON.stringify({ path: req.url, host: req.headers.host, proxyAuth: req.headers['proxy-authorization'] ?? null })),
    );
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    port = (upstream.address() as { port: number }).port;
    silent = createTcpServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    silentPort = (silent.address() as { port: number }).port;
  });
  after(() => {
    upstream.close();
    silent.close();
  });

  async function withProxy(network: string[], run: (proxy: EgressProxy, resolverCalls: string[]) => Promise<void>, limits: Partial<EgressLimits> = {}) {
    const resolverCalls: string[] = [];
    const resolve: Resolver = async (host) => {
      resolverCalls.push(host);
      return resolveTo({ 'service.test': ['127.0.0.1'] })(host);
    };
    const proxy = await EgressProxy.start({ extensionId: 'tests.egress', policy: networkPolicy(network), logger, limits, resolve });
    try {
      await run(proxy, resolverCalls);
    } finally {
      await proxy.close();
    }
  }

  const viaProxy = (socketPath: string, path: string, headers: Record<string, string> = {}) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      request({ socketPath, path, headers }, (res) => {
        let body = '';
        res
          .setEncoding('utf8')
          .on('data', (c) => (body += c))
          .on('end', () => resolve({ status: res.statusCode!, body }));
      })
        .on('error', reject)
        .end();
    });

  const tunnel = (socketPath: string, authority: string) =>
    new Promise<{ status: number; socket: Socket; head: Buffer }>((resolve, reject) => {
      request({ socketPath, method: 'CONNECT', path: authority })
        .on('connect', (res, socket, head) => resolve({ status: res.statusCode!, socket, head }))
        .on('error', reject)
        .end();
    });

  it('dials the address it checked, resolving each name once, and drops the proxy credentials', async () => {
    await withProxy(['service.test:*', '127.0.0.1:*'], async (proxy, resolverCalls) => {
      const res = await viaProxy(proxy.socketPath, `http://service.test:${port}/hello?x=1`, {
        host: `service.test:${port}`,
        'proxy-authorization': 'Basic c2VjcmV0',
      });
      assert.equal(res.status, 200, res.body);
      assert.deepEqual(JSON.parse(res.body), { path: '/hello?x=1', host: `service.test:${port}`, proxyAuth: null });
      assert.deepEqual(resolverCalls, ['service.test'], 'the system resolver does not know service.test: the proxy connected to what it checked');
    });
  });

  it('answers a refused target with 403 and a stable JSON error, plain and CONNECT', async () => {
    await withProxy([`127.0.0.1:${port}`], async (proxy) => {
      const plain = await viaProxy(proxy.socketPath, `http://127.0.0.1:${silentPort}/`);
      assert.equal(plain.status, 403);
      const { error } = JSON.parse(plain.body);
      assert.equal(error.code, 'NETWORK_DENIED');
      assert.deepEqual(error.details, { extension: 'tests.egress', host: '127.0.0.1', port: silentPort });
      assert.match(error.message, /permissions\.grants\["tests\.egress"\]\.network/);
      const connectRefused = await tunnel(proxy.socketPath, `127.0.0.1:${silentPort}`);
      assert.equal(connectRefused.status, 403);
      connectRefused.socket.destroy();
      const connected = await tunnel(proxy.socketPath, `127.0.0.1:${port}`);
      assert.equal(connected.status, 200);
      connected.socket.destroy();
    });
  });

  it('answers what it cannot forward with 400 and a target it cannot reach with 502', async () => {
    await withProxy([`127.0.0.1:*`], async (proxy) => {
      for (const path of ['/not-absolute', 'https://127.0.0.1/']) {
        const res = await viaProxy(proxy.socketPath, path);
        assert.equal(res.status, 400, path);
        assert.equal(JSON.parse(res.body).error.code, 'BAD_REQUEST');
      }
      const bad = await tunnel(proxy.socketPath, 'no-port-here');
      assert.equal(bad.status, 400);
      bad.socket.destroy();
      const closed = createTcpServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const closedPort = (closed.address() as { port: number }).port;
      await new Promise((resolve) => closed.close(resolve));
      const unreachable = await viaProxy(proxy.socketPath, `http://127.0.0.1:${closedPort}/`);
      assert.equal(unreachable.status, 502);
      assert.equal(JSON.parse(unreachable.body).error.code, 'NETWORK_UNREACHABLE');
    });
  });

  it('holds at most maxConnections per host and answers the next one 503', async () => {
    await withProxy(
      [`127.0.0.1:*`],
      async (proxy) => {
        const open: Socket[] = [];
        for (let i = 0; i < 2; i++) {
          const s = connect(proxy.socketPath);
          await new Promise((resolve) => s.once('connect', resolve));
          open.push(s);
        }
        const third = await viaProxy(proxy.socketPath, `http://127.0.0.1:${port}/`);
        assert.equal(third.status, 503);
        assert.equal(JSON.parse(third.body).error.code, 'SERVICE_UNAVAILABLE');
        open.pop()!.destroy();
        const again = await waitFor(async () => {
          const res = await viaProxy(proxy.socketPath, `http://127.0.0.1:${port}/`);
          return res.status === 200 && res;
        });
        assert.equal(again.status, 200);
        for (const s of open) s.destroy();
      },
      { maxConnections: 2 },
    );
  });

  it('closes a tunnel that stays idle', async () => {
    await withProxy(
      [`127.0.0.1:${silentPort}`],
      async (proxy) => {
        const { status, socket } = await tunnel(proxy.socketPath, `127.0.0.1:${silentPort}`);
        assert.equal(status, 200);
        await new Promise((resolve) => socket.once('close', resolve));
      },
      { idleTimeoutMs: 200 },
    );
  });

  it('logs each refusal with the extension id and removes its socket when closed', async () => {
    let socketPath = '';
    await withProxy([], async (proxy) => {
      socketPath = proxy.socketPath;
      assert.ok(existsSync(socketPath));
      await viaProxy(proxy.socketPath, `http://127.0.0.1:${port}/`);
    });
    assert.ok(logs.some((l) => l.code === 'NETWORK_DENIED' && l.extension === 'tests.egress' && l.target === `127.0.0.1:${port}`));
    assert.equal(existsSync(socketPath), false);
  });
});
