import assert from 'node:assert/strict';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { ContributionRegistry, startTestKernel, type TestKernel } from '@aion/core';
import { signInAdmin, call } from '@aion/ext-auth/testing';
import { startFakeOpenAI, type FakeOpenAI } from '@aion/ext-provider-openai/testing';
import type { RouteContribution } from '@aion/extension-api';
import { openApiPath } from '../src/openapi.js';

/** Every built-in extension, as `aion serve` loads them, with the OpenAI-compatible provider pointed at a fake. */
describe('the API document and the route audit, over every built-in extension', function () {
  let kernel: TestKernel;
  let openai: FakeOpenAI;
  let document: any;

  before(async () => {
    openai = await startFakeOpenAI();
    kernel = await startTestKernel({
      builtins: true,
      config: {
        extensions: {
          'aion.provider-openai': { baseUrl: openai.url, apiKeySecret: '', timeoutMs: 20_000 },
          'aion.router': { providers: { openai: { enabled: true } } },
        },
      },
    });
    const res = await kernel.request('/v1/openapi.json');
    assert.equal(res.status, 200);
    document = await res.json();
  });
  after(async () => {
    await kernel?.stop();
    await openai?.close();
  });

  const routes = () =>
    kernel.kernel
      .get(ContributionRegistry)
      .list('routes')
      .map((c) => ({ extensionId: c.extensionId, route: c.entry as unknown as RouteContribution }));

  it('is a valid OpenAPI 3.1 document', async () => {
    const validator = new Validator();
    const result = await validator.validate(document);
    assert.equal(validator.version, '3.1');
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2));
  });

  it("lists every route served, the kernel's included, with its scopes and auth", () => {
    for (const { extensionId, route } of routes()) {
      const op = document.paths[openApiPath(route.path).path]?.[route.method.toLowerCase()];
      assert.ok(op, `${route.method} ${route.path} of ${extensionId} is missing`);
      assert.equal(op['x-aion-extension'], extensionId);
      assert.deepEqual(op['x-aion-scopes'], route.scopes ?? []);
    }
    assert.deepEqual(document.paths['/v1/extensions'].get['x-aion-scopes'], ['extensions:read']);
    assert.deepEqual(
      document.paths['/v1/sessions/{id}'].get.parameters.map((p: any) => p.name),
      ['id'],
    );
    assert.deepEqual(
      document.paths['/v1/sessions'].post.security.map((s: any) => Object.keys(s)[0]),
      ['bearer', 'apiKey'],
    );
  });

  it('carries the request and response schemas of the representative routes', () => {
    const json = (op: any, where: 'request' | 'response') =>
      where === 'request' ? op.requestBody?.content['application/json'].schema : op.responses['200'].content?.['application/json'].schema;
    for (const [path, method, both] of [
      ['/v1/auth/login', 'post', true],
      ['/v1/sessions', 'post', true],
      ['/v1/sessions', 'get', false],
      ['/v1/tasks', 'post', true],
      ['/v1/chat/completions', 'post', true],
      ['/v1/skills/{id}/execute', 'post', true],
    ] as const) {
      const op = document.paths[path][method];
      assert.ok(json(op, 'response'), `${method} ${path} response schema`);
      if (both) assert.ok(json(op, 'request'), `${method} ${path} request schema`);
    }
  });

  it('answers what the declared response schemas say (contract check against real calls)', async () => {
    const ajv = new Ajv2020({ strict: false });
    const check = async (path: string, method: string, res: Response) => {
      const body = await res.json();
      const schema = document.paths[path][method].responses['200'].content['application/json'].schema;
      assert.ok(ajv.validate(schema, body), `${method} ${path} (${res.status}): ${ajv.errorsText()} in ${JSON.stringify(body).slice(0, 300)}`);
    };
    const admin = await signInAdmin(kernel);
    const login = await call(kernel, 'POST', '/v1/auth/login', { body: { username: 'nobody', password: 'x' } });
    assert.equal(login.status, 401);
    await check('/v1/sessions', 'post', await call(kernel, 'POST', '/v1/sessions', { token: admin.access_token, body: { title: 'contract' } }));
    await check('/v1/sessions', 'get', await call(kernel, 'GET', '/v1/sessions', { token: admin.access_token }));
    await check(
      '/v1/tasks',
      'post',
      await call(kernel, 'POST', '/v1/tasks', { token: admin.access_token, body: { intent: 'chat', messages: [{ role: 'user', content: 'hi' }], wait: true } }),
    );
    const completion = await call(kernel, 'POST', '/v1/chat/completions', {
      token: admin.access_token,
      body: { model: 'auto', messages: [{ role: 'user', content: 'hi' }] },
    });
    assert.equal(completion.status, 200, await completion.clone().text());
    await check('/v1/chat/completions', 'post', completion);
    const { username, password } = await import('@aion/ext-auth/testing').then((m) => m.initialAdmin(kernel));
    await check('/v1/auth/login', 'post', await call(kernel, 'POST', '/v1/auth/login', { body: { username, password } }));
  });

  it('serves /docs from this server: the viewer package, no CDN, only its own files', async () => {
    const page = await kernel.request('/docs');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    const html = await page.text();
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    assert.ok(assets.length >= 3);
    for (const asset of assets) {
      assert.match(asset, /^\/docs\//, `${asset} is served locally`);
      const res = await kernel.request(asset);
      assert.equal(res.status, 200, asset);
    }
    assert.match(await (await kernel.request('/docs/swagger-initializer.js')).text(), /\/v1\/openapi\.json/);
    for (const probe of ['/docs/package.json', '/docs/..%2F..%2Fpackage.json', '/docs/swagger-ui-bundle.js.map']) {
      const res = await kernel.request(probe);
      assert.equal(res.status, 404, probe);
    }
  });

  it('route audit: every route that declares scopes or requires auth answers an anonymous caller 401 and no data', async () => {
    const audited: string[] = [];
    for (const { extensionId, route } of routes()) {
      const path = route.path.replace(/:([A-Za-z0-9_]+)/g, 'audit-$1');
      const res = await kernel.request(path, {
        method: route.method,
        headers: route.method === 'GET' || route.method === 'DELETE' ? {} : { 'content-type': 'application/json' },
        body: route.method === 'GET' || route.method === 'DELETE' ? undefined : '{}',
      });
      const body = await res.text();
      const auth = route.auth ?? (route.scopes?.length ? 'required' : 'optional');
      if (auth === 'required') {
        if (route.websocket) assert.ok(res.status === 401 || res.status === 426, `${route.method} ${route.path} (${extensionId}) answered ${res.status}`);
        else {
          assert.equal(res.status, 401, `${route.method} ${route.path} (${extensionId}) answered an anonymous caller ${res.status}: ${body.slice(0, 200)}`);
          assert.equal(JSON.parse(body).error.code, 'UNAUTHENTICATED');
        }
        audited.push(`${route.method} ${route.path}`);
      } else assert.notEqual(res.status, 500, `${route.method} ${route.path} (${extensionId}) failed for an anonymous caller: ${body.slice(0, 200)}`);
    }
    assert.ok(audited.includes('GET /v1/extensions'));
    assert.ok(audited.includes('GET /metrics'));
    assert.ok(audited.length > 40, `${audited.length} routes audited`);
    const anonymousHealth = (await (await kernel.request('/healthz')).json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(anonymousHealth).sort(), ['counts', 'status'], '/healthz names no host, pid, extension or dependency to anonymous callers');
  });

  it('shows an admin the dependency checks on /healthz: database and providers', async () => {
    const admin = await signInAdmin(kernel);
    const health = (await (await call(kernel, 'GET', '/healthz', { token: admin.access_token })).json()) as any;
    const database = health.checks.find((c: any) => c.name === 'database');
    assert.equal(database?.status, 'ok', JSON.stringify(health.checks));
    assert.match(database.detail, /sqlite/);
    assert.equal(health.checks.find((c: any) => c.name === 'provider:openai')?.status, 'ok');
  });
});
