import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EXTENSION_STATE_EVENT, type ExtensionStateChange } from '@aion/extension-api';
import { EventBus } from '../src/events/eventBus.js';
import { ActivationService, startTestKernel, type TestKernel } from '../src/index.js';
import { base, fixture, tempDir, writeExtension } from './helpers.js';

type Ext = { id: string; state: string; activatedBy: string | null; activationMs: number | null; errors: Array<{ code: string; message: string }> };
const extensions = async (k: TestKernel) => k.extensions() as Ext[];

describe('activation', () => {
  let kernel: TestKernel;
  let root: string;
  let inRepo: string;

  before(async () => {
    root = tempDir();
    // Inside the repository, so these extensions resolve @aion/extension-api from the workspace.
    inRepo = mkdtempSync(join(fileURLToPath(new URL('.', import.meta.url)), 'tmp-hooks-'));
    writeExtension(
      root,
      'fails',
      base({ name: 'fails', type: 'module', main: 'e.js', contributes: { routes: [{ method: 'GET', path: '/v1/fails' }] }, aion: { host: 'kernel' } }),
      { 'e.js': 'export function activate() { throw new Error("cannot start"); }' },
    );
    writeExtension(
      root,
      'after-fails',
      base({
        name: 'after-fails',
        type: 'module',
        main: 'e.js',
        extensionDependencies: ['t.fails'],
        contributes: { routes: [{ method: 'GET', path: '/v1/after-fails' }] },
        aion: { host: 'kernel' },
      }),
      { 'e.js': 'export function activate() {}' },
    );
    // A hook only its owner calls (`call: owner`), tapped by a third extension, and an outsider that calls it anyway.
    const callHook = (route: string, tag: string) =>
      `import * as aion from '@aion/extension-api';\nexport function activate(ctx) { ctx.subscriptions.push(aion.http.handle('GET ${route}', async () => { try { return { body: await aion.hooks.call('t.vouched', { tags: ['${tag}'] }) }; } catch (err) { return { status: 403, body: { code: err.code, message: err.message } }; } })); }\n`;
    writeExtension(
      inRepo,
      'vouches',
      base({
        name: 'vouches',
        type: 'module',
        main: 'e.js',
        activationEvents: ['onStartup'],
        contributes: { hooks: [{ name: 't.vouched', kind: 'waterfall', call: 'owner' }], routes: [{ method: 'GET', path: '/v1/vouches' }] },
      }),
      { 'e.js': callHook('/v1/vouches', 'owner') },
    );
    writeExtension(inRepo, 'taps-vouched', base({ name: 'taps-vouched', type: 'module', main: 'e.js', activationEvents: ['onStartup'] }), {
      'e.js': `import * as aion from '@aion/extension-api';\nexport function activate(ctx) { ctx.subscriptions.push(aion.hooks.tap('t.vouched', (p) => ({ ...p, tags: [...p.tags, 'tapped'] }))); }\n`,
    });
    writeExtension(
      inRepo,
      'outsider',
      base({ name: 'outsider', type: 'module', main: 'e.js', contributes: { routes: [{ method: 'GET', path: '/v1/outsider' }] }, aion: { host: 'dedicated' } }),
      { 'e.js': callHook('/v1/outsider', 'forged') },
    );
    const secrets = join(root, 'secrets.json');
    writeFileSync(secrets, JSON.stringify({ 'fixtures.basic': { BASIC_TOKEN: 's3cr3t-value' } }));
    kernel = await startTestKernel({
      extensions: [fixture('basic'), fixture('dependent'), root, inRepo],
      config: {
        secretsFile: secrets,
        permissions: { grants: { 'fixtures.dependent': { kernelHost: true }, 't.fails': { kernelHost: true }, 't.after-fails': { kernelHost: true } } },
      },
    });
  });
  after(async () => {
    await kernel.stop();
    rmSync(root, { recursive: true, force: true });
    rmSync(inRepo, { recursive: true, force: true });
  });

  it('activates dependencies first, and records why and how long', async () => {
    const list = await extensions(kernel);
    const basic = list.find((e) => e.id === 'fixtures.basic')!;
    const dependent = list.find((e) => e.id === 'fixtures.dependent')!;
    assert.equal(dependent.state, 'active');
    assert.equal(dependent.activatedBy, 'onStartup');
    assert.equal(basic.state, 'active');
    assert.equal(basic.activatedBy, 'dependency of fixtures.dependent');
    assert.ok(typeof basic.activationMs === 'number' && basic.activationMs >= 100, 'the 150 ms activation is measured');
    const sum = await (await kernel.request('/v1/dependent/sum')).json();
    assert.deepEqual(sum, { atActivation: 42, now: 3, caller: 'fixtures.dependent' });
  });

  it('streams values across extensions in different hosts', async () => {
    assert.deepEqual(await (await kernel.request('/v1/dependent/count')).json(), { seen: [1, 2, 3, 4, 5] });
  });

  it('runs a waterfall hook declared by one extension and tapped from another host', async () => {
    assert.deepEqual(await (await kernel.request('/v1/basic/fire-hook')).json(), { tags: ['basic', 'dependent'] });
  });

  it('lets only its owner call a hook declared call: owner', async () => {
    assert.deepEqual(await (await kernel.request('/v1/vouches')).json(), { tags: ['owner', 'tapped'] });
    const refused = await kernel.request('/v1/outsider');
    assert.equal(refused.status, 403);
    assert.deepEqual(await refused.json(), { code: 'FORBIDDEN', message: 'only t.vouches calls the hook t.vouched, not t.outsider' });
  });

  it('executes commands through the kernel and reports unknown ones', async () => {
    assert.deepEqual(await (await kernel.request('/v1/basic/call-command?id=basic.add')).json(), { result: 5 });
    const res = await kernel.request('/v1/basic/call-command?id=nobody.here');
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'COMMAND_NOT_FOUND');
  });

  it('gives an extension only the secrets it declares', async () => {
    assert.deepEqual(await (await kernel.request('/v1/basic/secret?name=BASIC_TOKEN')).json(), { value: 's3cr3t-value' });
    const denied = await kernel.request('/v1/basic/secret?name=PATH');
    assert.equal(denied.status, 403);
    assert.deepEqual(await denied.json(), { code: 'SECRET_NOT_DECLARED' });
  });

  it('marks a failed activation with its error and does not activate its dependents', async () => {
    const res = await kernel.request('/v1/after-fails');
    assert.equal(res.status, 503);
    const body = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'DEPENDENCY_FAILED');
    const list = await extensions(kernel);
    const fails = list.find((e) => e.id === 't.fails')!;
    assert.equal(fails.state, 'failed');
    assert.match(fails.errors[0]!.message, /cannot start/);
    assert.equal(list.find((e) => e.id === 't.after-fails')!.state, 'failed');
    const again = await kernel.request('/v1/fails');
    assert.equal(again.status, 503, 'a failed extension stays failed');
  });

  it('tells kernel.extensionState listeners of every runtime change: disable, enable, activation', async () => {
    const changes: ExtensionStateChange[] = [];
    const listening = kernel.kernel.get(EventBus).on(EXTENSION_STATE_EVENT, (c) => changes.push(c as ExtensionStateChange));
    try {
      const activation = kernel.kernel.get(ActivationService);
      await activation.activate('fixtures.basic');
      await activation.disable('fixtures.basic', 'fixtures.basic was disabled by a test');
      await activation.enable('fixtures.basic');
      await activation.activate('fixtures.basic');
      const basic = changes.filter((c) => c.id === 'fixtures.basic').map((c) => `${c.previous}>${c.state}`);
      assert.deepEqual(basic, ['active>disabled', 'disabled>inactive', 'inactive>activating', 'activating>active']);
      const disabled = changes.find((c) => c.state === 'disabled')!;
      assert.deepEqual(disabled.error, { code: 'EXTENSION_DISABLED', message: 'fixtures.basic was disabled by a test' });
      assert.equal(typeof changes.at(-1)!.activationMs, 'number');
    } finally {
      listening.dispose();
    }
  });
});

describe('lazy activation', () => {
  let kernel: TestKernel;
  before(async () => (kernel = await startTestKernel({ extensions: [fixture('basic')] })));
  after(() => kernel.stop());

  it('does not activate before the first trigger, then activates exactly once under concurrent triggers', async () => {
    assert.equal((await extensions(kernel))[0]!.state, 'inactive');
    const answers = await Promise.all(
      Array.from({ length: 25 }, () => kernel.request('/v1/basic/ping').then((r) => r.json() as Promise<{ activations: number }>)),
    );
    assert.deepEqual(new Set(answers.map((a) => a.activations)), new Set([1]));
    const ext = (await extensions(kernel))[0]!;
    assert.equal(ext.state, 'active');
    assert.equal(ext.activatedBy, 'onRoute:GET /v1/basic/ping');
  });
});
