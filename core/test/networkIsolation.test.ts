import assert from 'node:assert/strict';
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { ExtensionRegistry, HostManager, Kernel, NetworkIsolation, createLogger, loadConfig } from '../src/index.js';
import { networkIsolationCapability, overrideNetworkIsolationProbe } from '../src/hosts/networkIsolation.js';
import { base, fixture, tempDir, waitFor, writeExtension } from './helpers.js';

const repoNodeModules = fileURLToPath(new URL('../../../node_modules', import.meta.url));

interface Target {
  server: Server;
  port: number;
  hits: number;
}

async function target(host = '127.0.0.1'): Promise<Target> {
  const t = { hits: 0 } as Target;
  t.server = createServer((req, res) => {
    t.hits++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ hello: 'from the target', path: req.url }));
  });
  await new Promise<void>((resolve) => t.server.listen(0, host, resolve));
  t.port = (t.server.address() as { port: number }).port;
  return t;
}

/**
 * A real extension folder: manifest, the probe as its main, and node_modules as an installed extension
 * has them. `bundled` copies provider-kit and undici in, as a published provider ships them: a
 * dedicated host reads only its own folder and the host runtime.
 */
function probeExtension(root: string, name: string, aion: Record<string, unknown>, { bundled = false } = {}): void {
  const dir = writeExtension(
    root,
    name,
    base({
      name,
      publisher: 'fixtures',
      type: 'module',
      main: 'probe.js',
      contributes: { routes: [{ method: 'GET', path: `/v1/net/${name}/try` }] },
      aion: { host: 'dedicated', ...aion },
    }),
  );
  copyFileSync(join(fixture('network'), 'probe.js'), join(dir, 'probe.js'));
  if (!bundled) return symlinkSync(repoNodeModules, join(dir, 'node_modules'));
  const modules = join(dir, 'node_modules');
  mkdirSync(join(modules, '@aion'), { recursive: true });
  symlinkSync(join(repoNodeModules, '@aion', 'extension-api'), join(modules, '@aion', 'extension-api'));
  const providerKit = join(repoNodeModules, '@aion', 'provider-kit');
  for (const part of ['package.json', 'dist/src']) cpSync(join(providerKit, part), join(modules, '@aion', 'provider-kit', part), { recursive: true });
  const undici = join(providerKit, 'node_modules', 'undici');
  for (const part of ['package.json', 'index.js', 'lib']) cpSync(join(undici, part), join(modules, 'undici', part), { recursive: true });
  // provider-kit propagates trace context with the OpenTelemetry API.
  const otelApi = join(repoNodeModules, '@opentelemetry', 'api');
  for (const part of ['package.json', 'build']) cpSync(join(otelApi, part), join(modules, '@opentelemetry', 'api', part), { recursive: true });
  // ...and parses server-sent events with eventsource-parser.
  const sse = join(repoNodeModules, 'eventsource-parser');
  for (const part of ['package.json', 'dist']) cpSync(join(sse, part), join(modules, 'eventsource-parser', part), { recursive: true });
}

interface Running {
  kernel: Kernel;
  logs: Array<Record<string, any>>;
  attempt(name: string, how: string, params?: Record<string, string | number>): Promise<Record<string, any>>;
  stop(): Promise<void>;
}

async function startKernel(extensionsRoot: string, config: Record<string, unknown> = {}): Promise<Running> {
  const dataDir = tempDir('aion-netns-');
  const logs: Array<Record<string, any>> = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line.trim()) logs.push(JSON.parse(line));
      done();
    },
  });
  const kernel = await Kernel.start({
    config: loadConfig({ env: {}, overrides: { dataDir, server: { port: 0, host: '127.0.0.1' }, ...config } }),
    extensionDirs: [extensionsRoot],
    builtins: false,
    logger: createLogger({ level: 'info', destination }),
  });
  return {
    kernel,
    logs,
    attempt: async (name, how, params = {}) => {
      const query = new URLSearchParams({ how, ...Object.fromEntries(Object.entries(params).map(([k, v]) => [k, String(v)])) });
      const res = await fetch(`${kernel.url}/v1/net/${name}/try?${query}`);
      const body = (await res.json()) as Record<string, any>;
      return res.status === 200 ? body : { ok: false, httpStatus: res.status, ...body };
    },
    stop: async () => {
      await kernel.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

const errorCodeOf = (body: string) => (JSON.parse(body) as { error: { code: string } }).error.code;
/** fetch and undici tunnel every origin through the proxy: its 403 to CONNECT fails the call. */
const refusedTunnel = (result: Record<string, any>) => result.ok === false && /Proxy response \(403\)/.test(result.message);
const externalAddress = Object.values(networkInterfaces())
  .flat()
  .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
const record = (kernel: Kernel, id: string) => kernel.get(ExtensionRegistry).require(id);

describe('network isolation of dedicated hosts', function () {
  this.timeout(60_000);
  let allowed: Target;
  let other: Target;
  let external: Target | undefined;
  let root: string;
  let running: Running;

  before(async function () {
    const capability = networkIsolationCapability();
    if (!capability.available) {
      if (process.env.CI) throw new Error(`CI must be able to create network namespaces: ${capability.reason}`);
      console.log(`    (skipped: this machine cannot create network namespaces: ${capability.reason})`);
      this.skip();
    }
    allowed = await target();
    other = await target();
    if (externalAddress) external = await target(externalAddress);
    root = tempDir('aion-netns-ext-');
    probeExtension(root, 'deny', { permissions: { network: 'deny' } });
    probeExtension(root, 'listed', { permissions: { network: [`127.0.0.1:${allowed.port}`, 'example.invalid:443'] } }, { bundled: true });
    probeExtension(root, 'wild', { permissions: { network: [`*:${allowed.port}`] } });
    probeExtension(root, 'pinned', { permissions: { network: [`*:${allowed.port}`, `127.0.0.1:${allowed.port}`] } });
    probeExtension(root, 'granted', { permissions: { network: 'deny' } });
    probeExtension(root, 'open', {});
    running = await startKernel(root, { permissions: { grants: { 'fixtures.granted': { network: [`localhost:${allowed.port}`] } } } });
  });

  after(async () => {
    await running?.stop();
    for (const t of [allowed, other, external]) t?.server.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  const at = (t: Target, host = '127.0.0.1') => `http://${host}:${t.port}/x`;

  describe('an extension with network "deny"', () => {
    it('runs in a network namespace of its own, as the node process itself', async () => {
      const { pid } = await running.attempt('deny', 'self');
      assert.notEqual(readlinkSync(`/proc/${pid}/ns/net`), readlinkSync('/proc/self/ns/net'));
      assert.equal(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0], process.execPath);
    });

    it('is refused by the proxy with fetch, undici and HTTP_PROXY, and its raw sockets find no route', async () => {
      for (const how of ['fetch', 'undici']) {
        const result = await running.attempt('deny', how, { url: at(allowed) });
        assert.ok(refusedTunnel(result), `${how}: ${JSON.stringify(result)}`);
      }
      const viaEnv = await running.attempt('deny', 'proxy-env', { url: at(allowed) });
      assert.equal(viaEnv.status, 403);
      assert.equal(errorCodeOf(viaEnv.body), 'NETWORK_DENIED');
      const ownAgent = await running.attempt('deny', 'undici-own-agent', { url: at(allowed) });
      assert.equal(ownAgent.ok, false);
      assert.equal(ownAgent.code, 'ECONNREFUSED');
      for (const host of ['127.0.0.1', 'localhost']) {
        const raw = await running.attempt('deny', 'net', { host, port: allowed.port });
        assert.equal(raw.ok, false, `net.connect ${host}`);
        assert.equal(raw.code, 'ECONNREFUSED');
      }
      if (external) {
        const raw = await running.attempt('deny', 'net', { host: externalAddress!, port: external.port });
        assert.equal(raw.ok, false, `net.connect ${externalAddress}`);
        assert.match(raw.code, /ENETUNREACH|EHOSTUNREACH|ECONNREFUSED/);
        assert.equal(external.hits, 0);
      }
      assert.equal(allowed.hits, 0, 'no attempt reached the server');
    });

    it('is reported as enforced by the OS', () => {
      const isolation = running.kernel.get(NetworkIsolation);
      assert.equal(isolation.enforcement(record(running.kernel, 'fixtures.deny')), 'os');
      assert.equal(isolation.enforcement(record(running.kernel, 'fixtures.open')), 'unrestricted');
    });

    it('dies with its proxy when its host is killed', async () => {
      const { pid } = await running.attempt('deny', 'self');
      const host = running.kernel.get(HostManager).find('dedicated:fixtures.deny')!;
      const socket = readFileSync(`/proc/${pid}/environ`, 'utf8')
        .split('\0')
        .find((v) => v.startsWith('AION_EGRESS_SOCKET='))!
        .slice('AION_EGRESS_SOCKET='.length);
      assert.ok(existsSync(socket));
      host.started.kill();
      await waitFor(() => !existsSync(`/proc/${pid}`), 5_000);
      await waitFor(() => !existsSync(socket), 5_000);
    });
  });

  describe('an extension with an allow-list', () => {
    it('reaches a listed server through the proxy with plain fetch and undici', async () => {
      const before = allowed.hits;
      for (const how of ['fetch', 'undici']) {
        const result = await running.attempt('listed', how, { url: at(allowed) });
        assert.equal(result.status, 200, `${how}: ${JSON.stringify(result)}`);
        assert.equal(JSON.parse(result.body).hello, 'from the target');
      }
      assert.equal(allowed.hits, before + 2);
    });

    it('reaches it as well with a client that honours HTTP_PROXY, plain and tunnelled', async () => {
      const { httpProxy } = await running.attempt('listed', 'self');
      assert.match(httpProxy, /^http:\/\/127\.0\.0\.1:\d+$/);
      for (const how of ['proxy-env', 'proxy-env-connect']) {
        const result = await running.attempt('listed', how, { url: at(allowed) });
        assert.equal(result.status, 200, `${how}: ${JSON.stringify(result)}`);
      }
    });

    it('is refused a port that is not listed, with 403 NETWORK_DENIED, logged with its id', async () => {
      assert.ok(refusedTunnel(await running.attempt('listed', 'fetch', { url: at(other) })));
      assert.ok(refusedTunnel(await running.attempt('listed', 'undici', { url: at(other) })));
      const plain = await running.attempt('listed', 'proxy-env', { url: at(other) });
      assert.equal(plain.status, 403);
      const error = JSON.parse(plain.body).error;
      assert.equal(error.code, 'NETWORK_DENIED');
      assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${other.port}`));
      const tunnelled = await running.attempt('listed', 'proxy-env-connect', { url: at(other) });
      assert.equal(tunnelled.status, 403);
      assert.equal(errorCodeOf(tunnelled.body), 'NETWORK_DENIED');
      const https = await running.attempt('listed', 'fetch', { url: `https://127.0.0.1:${other.port}/` });
      assert.equal(https.ok, false);
      assert.match(https.message, /403/);
      assert.equal(other.hits, 0);
      const logged = running.logs.find((l) => l.code === 'NETWORK_DENIED' && l.extension === 'fixtures.listed' && l.target === `127.0.0.1:${other.port}`);
      assert.ok(logged, 'the refusal is logged with the extension id');
      assert.equal(logged.level, 40);
    });

    it("keeps a provider working: provider-kit's upstream calls take the proxy", async () => {
      const before = allowed.hits;
      const reached = await running.attempt('listed', 'provider', { url: at(allowed) });
      assert.equal(reached.status, 200, JSON.stringify(reached));
      assert.equal(JSON.parse(reached.body).hello, 'from the target');
      assert.equal(allowed.hits, before + 1);
      const refused = await running.attempt('listed', 'provider', { url: at(other) });
      assert.equal(refused.failure, 'PROVIDER_UNREACHABLE');
      assert.match(refused.message, /NETWORK_DENIED.*allow-list/);
      assert.equal(other.hits, 0);
    });

    it('cannot bypass the proxy with a raw socket or its own undici Agent', async () => {
      const before = allowed.hits;
      const raw = await running.attempt('listed', 'net', { host: '127.0.0.1', port: allowed.port });
      assert.equal(raw.ok, false);
      assert.equal(raw.code, 'ECONNREFUSED');
      const ownAgent = await running.attempt('listed', 'undici-own-agent', { url: at(allowed) });
      assert.equal(ownAgent.ok, false);
      assert.equal(allowed.hits, before);
    });

    it('reaches a name that resolves to a private address only when that address or localhost is listed literally', async () => {
      const before = allowed.hits;
      const wildName = await running.attempt('wild', 'proxy-env', { url: at(allowed, 'localhost') });
      assert.equal(wildName.status, 403, 'a wildcard does not cover loopback');
      assert.match(JSON.parse(wildName.body).error.message, /private or loopback/);
      assert.ok(refusedTunnel(await running.attempt('wild', 'fetch', { url: at(allowed, 'localhost') })));
      assert.ok(refusedTunnel(await running.attempt('wild', 'fetch', { url: at(allowed) })), 'nor a loopback literal');
      assert.ok(refusedTunnel(await running.attempt('listed', 'fetch', { url: at(allowed, 'localhost') })), 'a name is checked by name first');
      assert.equal(allowed.hits, before);
      const pinned = await running.attempt('pinned', 'fetch', { url: at(allowed, 'localhost') });
      assert.equal(pinned.status, 200, 'localhost resolves to 127.0.0.1, which is listed literally');
      const grantedName = await running.attempt('granted', 'fetch', { url: at(allowed, 'localhost') });
      assert.equal(grantedName.status, 200, 'the operator granted localhost literally');
      assert.ok(refusedTunnel(await running.attempt('granted', 'fetch', { url: at(allowed) })), 'the grant names localhost, not the address');
    });
  });

  describe('an extension with unrestricted network', () => {
    it("connects directly, in the kernel's network namespace, with no proxy", async () => {
      const self = await running.attempt('open', 'self');
      assert.equal(self.httpProxy, null);
      assert.equal(readlinkSync(`/proc/${self.pid}/ns/net`), readlinkSync('/proc/self/ns/net'));
      assert.equal((await running.attempt('open', 'net', { host: '127.0.0.1', port: allowed.port })).ok, true);
      assert.equal((await running.attempt('open', 'undici-own-agent', { url: at(allowed) })).status, 200);
    });
  });
});

describe('network isolation where the machine cannot create namespaces', function () {
  this.timeout(60_000);
  let server: Target;
  let root: string;

  before(async () => {
    overrideNetworkIsolationProbe(() => ({ available: false, reason: 'simulated: no network namespaces here' }));
    server = await target();
    root = tempDir('aion-netns-ext-');
    probeExtension(root, 'deny', { permissions: { network: 'deny' } });
    probeExtension(root, 'open', {});
  });

  after(() => {
    overrideNetworkIsolationProbe();
    server?.server.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('refuses to start a restricted extension with NETWORK_ISOLATION_UNAVAILABLE and keeps serving the rest', async () => {
    const running = await startKernel(root);
    try {
      const refused = await running.attempt('deny', 'self');
      assert.equal(refused.httpStatus, 503);
      assert.equal(refused.error.code, 'NETWORK_ISOLATION_UNAVAILABLE');
      assert.match(refused.error.message, /permissions\.enforcement/);
      assert.equal(record(running.kernel, 'fixtures.deny').state, 'failed');
      assert.equal(running.kernel.get(NetworkIsolation).enforcement(record(running.kernel, 'fixtures.deny')), 'refused');
      assert.equal((await fetch(`${running.kernel.url}/healthz`)).status, 200);
      assert.equal((await running.attempt('open', 'net', { host: '127.0.0.1', port: server.port })).ok, true, 'an unrestricted extension still starts');
    } finally {
      await running.stop();
    }
  });

  it('starts it without isolation under advisory enforcement, logged at error level', async () => {
    const running = await startKernel(root, { permissions: { enforcement: 'advisory' } });
    try {
      const raw = await running.attempt('deny', 'net', { host: '127.0.0.1', port: server.port });
      assert.equal(raw.ok, true, 'advisory means not enforced');
      assert.equal(running.kernel.get(NetworkIsolation).enforcement(record(running.kernel, 'fixtures.deny')), 'advisory');
      const loud = running.logs.find((l) => l.code === 'NETWORK_ISOLATION_UNAVAILABLE' && l.extension === 'fixtures.deny');
      assert.ok(loud, 'the missing isolation is logged');
      assert.equal(loud.level, 50);
      assert.match(loud.msg, /NETWORK NOT ENFORCED/);
    } finally {
      await running.stop();
    }
  });
});
