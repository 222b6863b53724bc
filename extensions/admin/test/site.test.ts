import assert from 'node:assert/strict';
import { startTestKernel, type TestKernel } from '@aion/core';
import { call, createUser, signInAdmin } from '@aion/ext-auth/testing';
import { io, type Socket } from 'socket.io-client';
import { assertConsoleBuilt, CONSOLE_BUILTINS, rawGet, until } from './helpers.js';

describe('admin console: static files and admin routes', function () {
  let kernel: TestKernel;
  let admin: string;

  before(async () => {
    assertConsoleBuilt();
    kernel = await startTestKernel({ builtins: CONSOLE_BUILTINS });
    admin = (await signInAdmin(kernel)).access_token;
  });
  after(() => kernel?.stop());

  it('serves the page with a strict Content-Security-Policy, no framing, and an ETag', async () => {
    const res = await kernel.request('/admin');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
    const csp = res.headers.get('content-security-policy')!;
    assert.match(csp, /script-src 'self'(;|$)/, 'scripts only from this server');
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(res.headers.get('x-frame-options'), 'DENY');
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    const html = await res.text();
    assert.match(html, /<script type="module" src="\/admin\/app.js"><\/script>/);
    assert.doesNotMatch(html, /<script>|<script type="module">|\son[a-z]+=/i, 'no inline script or handler');
    const again = await kernel.request('/admin', { headers: { 'if-none-match': res.headers.get('etag')! } });
    assert.equal(again.status, 304);
  });

  it('serves each asset with its content type and the same security headers', async () => {
    for (const [file, type] of [
      ['app.js', 'text/javascript; charset=utf-8'],
      ['console.css', 'text/css; charset=utf-8'],
      ['app.js.map', 'application/json; charset=utf-8'],
    ] as const) {
      const res = await kernel.request(`/admin/${file}`);
      assert.equal(res.status, 200, file);
      assert.equal(res.headers.get('content-type'), type, file);
      assert.equal(res.headers.get('x-frame-options'), 'DENY', file);
      assert.ok((await res.text()).length > 100, file);
    }
  });

  it('refuses paths outside the console: .., encoded slashes, other files of the package', async () => {
    for (const path of [
      '/admin/..%2F..%2Fpackage.json',
      '/admin/..%2fsrc%2fextension.js',
      '/admin/%2e%2e%2f%2e%2e%2fpackage.json',
      '/admin/..%5C..%5Cpackage.json',
      '/admin/../package.json',
      '/admin/../../../../etc/passwd',
      '/admin/%2Fetc%2Fpasswd',
      '/admin/package.json',
      '/admin/index.html',
      '/admin/.',
      '/admin/app.js%00.css',
    ]) {
      const res = await rawGet(kernel.url, path);
      assert.ok(res.status === 404, `${path} answered ${res.status}: ${res.body.slice(0, 200)}`);
      assert.doesNotMatch(res.body, /"name": *"@aion|root:x:0/, path);
    }
    const body = JSON.parse((await rawGet(kernel.url, '/admin/..%2F..%2Fpackage.json')).body);
    assert.equal(body.error.code, 'NOT_FOUND');
  });

  it('refuses the admin data to anonymous callers and to users without admin:read', async () => {
    const anonymous = await kernel.request('/v1/admin/overview');
    assert.equal(anonymous.status, 401);
    assert.equal(((await anonymous.json()) as { error: { code: string } }).error.code, 'UNAUTHENTICATED');
    assert.equal((await kernel.request('/v1/extensions')).status, 401);
    assert.equal((await kernel.request('/v1/extensions/aion.observability/disable', { method: 'POST' })).status, 401);
    const alice = await createUser(kernel, admin, 'alice', { scopes: ['sessions:read'] });
    const refused = await call(kernel, 'GET', '/v1/admin/overview', { token: alice.access_token });
    assert.equal(refused.status, 403);
    assert.equal((await call(kernel, 'POST', '/v1/extensions/aion.observability/disable', { token: alice.access_token })).status, 403);
    const allowed = await call(kernel, 'GET', '/v1/admin/overview', { token: admin });
    assert.equal(allowed.status, 200);
  });

  it('lists hosts with pid, memory and restarts once the kernel reports them', async () => {
    const hosts = await until(async () => {
      const body = (await (await call(kernel, 'GET', '/v1/admin/overview', { token: admin })).json()) as { hosts: Array<Record<string, any>> };
      return body.hosts.length > 0 ? body.hosts : undefined;
    }, 'the first host report');
    const kernelHost = hosts.find((h) => h.kind === 'kernel')!;
    assert.ok(kernelHost, JSON.stringify(hosts));
    assert.equal(kernelHost.state, 'running');
    assert.ok(kernelHost.rssBytes > 10 * 1024 * 1024, `resident memory ${kernelHost.rssBytes}`);
    assert.equal(kernelHost.restarts, 0);
  });

  describe('live updates over socket.io', () => {
    const sockets: Socket[] = [];
    const connect = (token: string | undefined) => {
      const socket = io(kernel.url, { auth: token ? { token } : {}, transports: ['websocket'], reconnection: false });
      sockets.push(socket);
      return socket;
    };
    const subscribe = (socket: Socket) =>
      new Promise<{ ok: boolean; error?: { code: string } }>((resolve) => socket.emit('subscribe', { room: 'admin' }, resolve));
    after(() => sockets.forEach((s) => s.disconnect()));

    it('lets an admin join the admin room and pushes extension state changes to it', async () => {
      const socket = connect(admin);
      assert.deepEqual(await subscribe(socket), { ok: true, room: 'admin' });
      const changes: Array<{ id: string; state: string }> = [];
      socket.on('extension', (c: { id: string; state: string }) => changes.push(c));
      assert.equal((await call(kernel, 'POST', '/v1/extensions/aion.observability/disable', { token: admin })).status, 200);
      await until(() => changes.find((c) => c.id === 'aion.observability' && c.state === 'disabled'), 'the disabled state pushed');
      assert.equal((await call(kernel, 'POST', '/v1/extensions/aion.observability/enable', { token: admin })).status, 200);
      await until(() => changes.find((c) => c.id === 'aion.observability' && c.state === 'active'), 'the active state pushed');
    });

    it('refuses the admin room to a user without admin:read', async () => {
      const bob = await createUser(kernel, admin, 'bob', { scopes: ['sessions:read'] });
      const socket = connect(bob.access_token);
      const answer = await subscribe(socket);
      assert.equal(answer.ok, false);
      assert.equal(answer.error?.code, 'FORBIDDEN');
    });
  });
});
