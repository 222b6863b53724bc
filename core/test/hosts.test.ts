import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ExtensionRegistry, startTestKernel, type TestKernel } from '../src/index.js';
import { fixture, tempDir, waitFor } from './helpers.js';

const json = async (res: Response) => (await res.json()) as any;
const fastHosts = { hosts: { pingIntervalMs: 100, unresponsiveAfterMs: 1000, restartBackoffMs: 50, maxRestartBackoffMs: 200 } };

describe('extension hosts', () => {
  describe('a shared host', () => {
    let kernel: TestKernel;
    before(async () => (kernel = await startTestKernel({ extensions: [fixture('basic')], config: fastHosts })));
    after(() => kernel.stop());

    it('serves a route from its own child process', async () => {
      const { pid } = await json(await kernel.request('/v1/basic/pid'));
      assert.equal(typeof pid, 'number');
      assert.notEqual(pid, process.pid);
    });

    it('fails calls in flight with EXTENSION_HOST_CRASHED on kill -9, then answers again after the restart', async () => {
      const { pid } = await json(await kernel.request('/v1/basic/pid'));
      const inFlight = kernel.request('/v1/basic/slow?ms=5000');
      await new Promise((r) => setTimeout(r, 300));
      const killedAt = Date.now();
      process.kill(pid, 'SIGKILL');
      const res = await inFlight;
      assert.ok(Date.now() - killedAt < 2000, 'the pending call failed at once, not at its timeout');
      assert.equal(res.status, 503);
      assert.equal((await json(res)).error.code, 'EXTENSION_HOST_CRASHED');
      const after = await waitFor(async () => {
        const r = await kernel.request('/v1/basic/pid');
        return r.status === 200 ? json(r) : undefined;
      });
      assert.notEqual(after.pid, pid, 'a new host process serves the route');
    });

    it('detects a hanging host and names its extensions', async () => {
      void kernel.request('/v1/basic/hang?ms=2500').catch(() => undefined);
      const hung = await waitFor(async () => {
        return kernel.health().hosts.find((h: { kind: string; state: string }) => h.kind === 'shared' && h.state === 'unresponsive');
      }, 5000);
      assert.deepEqual(hung.extensions, ['fixtures.basic']);
      await waitFor(async () => kernel.health().hosts.find((h: { kind: string; state: string }) => h.kind === 'shared' && h.state === 'running'), 8000);
    });
  });

  describe('crash loop', () => {
    let kernel: TestKernel;
    const withAuth = { ...fastHosts, permissions: { grants: { 'fixtures.test-auth': { kernelHost: true } } } };
    before(async () => (kernel = await startTestKernel({ extensions: [fixture('basic'), fixture('test-auth')], config: withAuth })));
    after(() => kernel.stop());
    const as = (token?: string): RequestInit => ({ method: 'POST', headers: token ? { authorization: `Bearer ${token}` } : undefined });

    it('disables the extensions of a host that crashes 3 times within the window, and reports them', async () => {
      for (let i = 0; i < 3; i++) {
        const r = await waitFor(async () => {
          const res = await kernel.request('/v1/basic/pid');
          return res.status === 200 ? json(res) : undefined;
        });
        process.kill(r.pid, 'SIGKILL');
        await waitFor(async () => kernel.health().hosts.every((h: { pid: number }) => h.pid !== r.pid));
      }
      const res = await kernel.request('/v1/basic/ping');
      assert.equal(res.status, 503);
      const body = await json(res);
      assert.equal(body.error.code, 'EXTENSION_DISABLED');
      assert.match(body.error.message, /crashed 3 times/);
      const ext = kernel.extensions().find((e) => e.id === 'fixtures.basic')!;
      assert.equal(ext.state, 'disabled');
      assert.equal((await kernel.request('/healthz')).status, 200, 'the kernel keeps serving');
    });

    it('reports the server degraded, to anyone as a status and to an admin with the reason', async () => {
      const anonymous = await json(await kernel.request('/healthz'));
      assert.equal(anonymous.status, 'degraded');
      assert.equal(anonymous.degraded, undefined, 'no details for anonymous callers');
      const admin = await json(await kernel.request('/healthz', { headers: { authorization: 'Bearer admin' } }));
      assert.ok(
        admin.degraded.some((d: { code: string; host?: string; reason: string }) => d.code === 'EXTENSION_DISABLED' && /crashed 3 times/.test(d.reason)),
      );
      const ready = await kernel.request('/readyz');
      assert.equal(ready.status, 200);
      assert.equal((await json(ready)).status, 'degraded');
    });

    it('lets an admin enable the extensions again, and refuses anyone else', async () => {
      assert.equal((await kernel.request('/v1/extensions/fixtures.basic/enable', as())).status, 401);
      const notAdmin = await kernel.request('/v1/extensions/fixtures.basic/enable', as('good'));
      assert.equal(notAdmin.status, 403);
      const enabled = await kernel.request('/v1/extensions/fixtures.basic/enable', as('admin'));
      assert.equal(enabled.status, 200, await enabled.clone().text());
      assert.equal((await json(enabled)).extensions.find((e: { id: string }) => e.id === 'fixtures.basic').state, 'inactive');
      const ping = await kernel.request('/v1/basic/ping');
      assert.equal(ping.status, 200);
      assert.equal((await json(await kernel.request('/healthz'))).status, 'ok');
    });

    it('lets an admin disable an extension at runtime and enable it again', async () => {
      const disabled = await kernel.request('/v1/extensions/fixtures.basic/disable', as('admin'));
      assert.equal(disabled.status, 200, await disabled.clone().text());
      const refused = await kernel.request('/v1/basic/ping');
      assert.equal(refused.status, 503);
      assert.equal((await json(refused)).error.code, 'EXTENSION_DISABLED');
      assert.equal((await json(await kernel.request('/healthz'))).status, 'degraded');
      assert.equal((await kernel.request('/v1/extensions/fixtures.nope/enable', as('admin'))).status, 404);
      assert.equal((await kernel.request('/v1/extensions/fixtures.basic/enable', as('admin'))).status, 200);
      assert.equal((await kernel.request('/v1/basic/ping')).status, 200);
    });
  });

  describe('a dedicated host', () => {
    let kernel: TestKernel;
    let outside: string;
    before(async () => {
      outside = tempDir();
      writeFileSync(join(outside, 'private.txt'), 'not yours');
      kernel = await startTestKernel({ extensions: [fixture('dedicated-reader')] });
    });
    after(async () => {
      await kernel.stop();
      rmSync(outside, { recursive: true, force: true });
    });

    it('is denied a file read outside its own directories', async () => {
      const res = await json(await kernel.request(`/v1/dedicated/read?path=${encodeURIComponent(join(outside, 'private.txt'))}`));
      assert.deepEqual(res, { ok: false, code: 'ERR_ACCESS_DENIED' });
      const etc = await json(await kernel.request('/v1/dedicated/read?path=/etc/passwd'));
      assert.equal(etc.code, 'ERR_ACCESS_DENIED');
    });

    it('reads its own install directory and writes its storage directory, as declared', async () => {
      const own = await json(await kernel.request(`/v1/dedicated/read?path=${encodeURIComponent(join(fixture('dedicated-reader'), 'package.json'))}`));
      assert.equal(own.ok, true);
      assert.deepEqual(await json(await kernel.request('/v1/dedicated/write')), { ok: true });
      assert.equal(readFileSync(join(kernel.dataDir, 'storage', 'fixtures.dedicated-reader', 'note.txt'), 'utf8'), 'written');
      const elsewhere = await json(await kernel.request(`/v1/dedicated/write?path=${encodeURIComponent(join(outside, 'x.txt'))}`));
      assert.equal(elsewhere.code, 'ERR_ACCESS_DENIED');
    });

    it('cannot start child processes unless it declares childProcess', async () => {
      assert.equal((await json(await kernel.request('/v1/dedicated/spawn'))).code, 'ERR_ACCESS_DENIED');
    });
  });
  describe("the operator's placement", () => {
    it('moves an extension out of the host its manifest asks for', async () => {
      const kernel = await startTestKernel({ extensions: [fixture('basic')], config: { placement: { 'fixtures.basic': 'dedicated' } } });
      try {
        const { pid } = await json(await kernel.request('/v1/basic/pid'));
        assert.notEqual(pid, process.pid);
        const host = kernel.health().hosts.find((h: { extensions: string[] }) => h.extensions.includes('fixtures.basic'));
        assert.equal(host.kind, 'dedicated');
      } finally {
        await kernel.stop();
      }
    });

    it('cannot move an extension that is not built in into the kernel host without the kernelHost grant', async () => {
      const kernel = await startTestKernel({ extensions: [fixture('basic')], config: { placement: { 'fixtures.basic': 'kernel' } }, strict: false });
      try {
        assert.equal((await kernel.request('/v1/basic/pid')).status, 404, 'the refused extension serves nothing');
        const record = kernel.kernel.get(ExtensionRegistry).get('fixtures.basic')!;
        assert.equal(record.state, 'skipped');
        assert.equal(record.errors[0]?.code, 'PERMISSION_DENIED');
        assert.match(record.errors[0]!.message, /kernelHost/);
      } finally {
        await kernel.stop();
      }
    });

    it('rejects an unknown host kind at config load, naming the key', async () => {
      await assert.rejects(
        startTestKernel({ extensions: [fixture('basic')], config: { placement: { 'fixtures.basic': 'elsewhere' } } }),
        /placement\/fixtures\.basic/,
      );
    });
  });
});
