import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { startTestKernel, type TestKernel } from '../src/index.js';
import { base, fixture, tempDir, writeExtension } from './helpers.js';

type Listed = {
  id: string | null;
  state: string;
  errors: Array<{ code: string; message: string }>;
  warnings?: Array<{ code: string; message: string }>;
  manifestPath?: string;
  activationEvents?: string[];
};

async function listing(kernel: TestKernel): Promise<Listed[]> {
  return kernel.extensions() as Listed[];
}

describe('manifest loading and validation', () => {
  let root: string;
  let kernel: TestKernel;
  let listed: Listed[];
  const byFolder = (folder: string) => listed.filter((e) => e.manifestPath?.includes(`/${folder}/`) || (e as { id: string }).id?.endsWith(folder));

  before(async () => {
    root = tempDir();
    writeExtension(root, 'not-json', '{ "name": ');
    writeExtension(root, 'no-engines', { name: 'no-engines', publisher: 't', version: '1.0.0' });
    writeExtension(root, 'bad-host', base({ name: 'bad-host', aion: { host: 'cloud' } }));
    writeExtension(root, 'bad-version', base({ name: 'bad-version', version: 'one' }));
    writeExtension(root, 'future-engine', base({ name: 'future-engine', engines: { aion: '^9.0.0' } }));
    writeExtension(root, 'bad-range', base({ name: 'bad-range', engines: { aion: 'soon' } }));
    writeExtension(root, 'routes-no-main', base({ name: 'routes-no-main', contributes: { routes: [{ method: 'GET', path: '/x' }] } }));
    writeExtension(root, 'missing-main', base({ name: 'missing-main', main: 'dist/nowhere.js' }));
    writeExtension(root, 'bad-route', base({ name: 'bad-route', main: 'e.js', contributes: { routes: [{ method: 'FETCH', path: 'x' }] } }), { 'e.js': '' });
    writeExtension(
      root,
      'bad-route-path',
      base({ name: 'bad-route-path', main: 'e.js', contributes: { routes: [{ method: 'GET', path: '/v1/things/:rest*' }] } }),
      { 'e.js': '' },
    );
    writeExtension(root, 'dup-one', base({ name: 'dup' }));
    writeExtension(root, 'dup-two', base({ name: 'dup' }));
    writeExtension(
      root,
      'point-owner',
      base({
        name: 'point-owner',
        contributes: {
          contributionPoints: {
            widgets: {
              schema: { type: 'object', required: ['id', 'size'], properties: { id: { type: 'string' }, size: { type: 'integer' } } },
              activationEventPrefix: 'onWidget',
            },
          },
        },
      }),
    );
    writeExtension(root, 'good-widget', base({ name: 'good-widget', contributes: { widgets: [{ id: 'w1', size: 3 }] } }));
    writeExtension(root, 'bad-widget', base({ name: 'bad-widget', contributes: { widgets: [{ id: 'w2', size: 'big' }] } }));
    writeExtension(root, 'unknown-point', base({ name: 'unknown-point', contributes: { gadgets: [{ id: 'g' }] } }));
    writeExtension(
      root,
      'optional-point',
      base({ name: 'optional-point', contributes: { gadgets: [{ id: 'g' }], gizmos: [{ id: 'z' }] }, aion: { optionalPoints: ['gadgets'] } }),
    );
    writeExtension(root, 'needs-bad', base({ name: 'needs-bad', extensionDependencies: ['t.bad-widget'] }));
    kernel = await startTestKernel({ extensions: [root, fixture('cycle'), fixture('needs-missing')], strict: false });
    listed = await listing(kernel);
  });
  after(async () => {
    await kernel.stop();
    rmSync(root, { recursive: true, force: true });
  });

  const errorOf = (folder: string) => {
    const entry = byFolder(folder)[0];
    assert.ok(entry, `no listing for ${folder}`);
    return entry;
  };

  it('reports a manifest that is not JSON, naming the file', () => {
    const e = errorOf('not-json');
    assert.equal(e.state, 'invalid');
    assert.match(e.errors[0]!.message, /not-json\/package\.json: not valid JSON/);
  });

  it('names the JSON pointer and what was expected for schema errors', () => {
    assert.match(
      errorOf('no-engines')
        .errors.map((x) => x.message)
        .join('\n'),
      /package\.json: \/: must have required property 'engines'/,
    );
    assert.match(errorOf('bad-host').errors[0]!.message, /\/aion\/host: must be equal to one of the allowed values \(kernel, shared, dedicated, remote\)/);
    assert.match(errorOf('bad-version').errors[0]!.message, /\/version: must match pattern/);
    assert.match(
      errorOf('bad-route')
        .errors.map((x) => x.message)
        .join('\n'),
      /\/contributes\/routes\/0\/method/,
    );
  });

  it('checks engines.aion with semver', () => {
    assert.equal(errorOf('future-engine').errors[0]!.code, 'ENGINE_MISMATCH');
    assert.match(errorOf('future-engine').errors[0]!.message, /requires Aion \^9\.0\.0/);
    assert.match(errorOf('bad-range').errors[0]!.message, /not a semver range/);
  });

  it('requires main for code contributions and a main file that exists', () => {
    assert.match(errorOf('routes-no-main').errors[0]!.message, /\/main: required when the extension contributes routes/);
    assert.match(errorOf('missing-main').errors[0]!.message, /dist\/nowhere\.js does not exist/);
  });

  it('refuses a route path the edge cannot match, naming the pointer and the syntax to use, and keeps serving', async () => {
    const refused = errorOf('bad-route-path');
    assert.equal(refused.state, 'invalid');
    assert.equal(refused.errors[0]!.code, 'MANIFEST_INVALID');
    assert.match(refused.errors[0]!.message, /\/contributes\/routes\/0\/path: "\/v1\/things\/:rest\*" is not a route path .*the rest of a path as \*name/);
    assert.equal((await kernel.request('/readyz')).status, 200);
  });

  it('reports two extensions with one id, naming both paths', () => {
    const dup = listed.find((e) => e.errors.some((x) => x.code === 'DUPLICATE_EXTENSION'))!;
    assert.ok(dup);
    assert.match(dup.errors[0]!.message, /dup-one\/package\.json.*dup-two\/package\.json|dup-two\/package\.json.*dup-one\/package\.json/);
    assert.equal(listed.filter((e) => e.id === 't.dup' && e.state !== 'invalid').length, 1);
  });

  it('validates contributions against the declaring extension’s schema and derives activation events', () => {
    const good = listed.find((e) => e.id === 't.good-widget')!;
    assert.equal(good.state, 'inactive');
    assert.ok(good.activationEvents!.includes('onWidget:w1'));
    const bad = listed.find((e) => e.id === 't.bad-widget')!;
    assert.equal(bad.state, 'skipped');
    assert.equal(bad.errors[0]!.code, 'CONTRIBUTION_INVALID');
    assert.match(bad.errors[0]!.message, /\/contributes\/widgets\/0\/size: must be integer/);
  });

  it('skips the dependents of a skipped extension with the reason', () => {
    const dependent = listed.find((e) => e.id === 't.needs-bad')!;
    assert.equal(dependent.state, 'skipped');
    assert.equal(dependent.errors[0]!.code, 'DEPENDENCY_FAILED');
  });

  it('reports a contribution to an undeclared point without failing the extension', () => {
    const e = listed.find((x) => x.id === 't.unknown-point')!;
    assert.equal(e.state, 'inactive');
    assert.equal(e.warnings![0]!.code, 'CONTRIBUTION_POINT_UNKNOWN');
  });

  it('says nothing of a point the manifest contributes to only when its owner is installed (aion.optionalPoints)', () => {
    const e = listed.find((x) => x.id === 't.optional-point')!;
    assert.equal(e.state, 'inactive');
    assert.deepEqual(
      e.warnings!.map((w) => w.message.match(/contributes\/(\w+)/)?.[1]),
      ['gizmos'],
      'a point not named there is still reported',
    );
  });

  it('skips an extension whose dependency is missing', () => {
    const e = listed.find((x) => x.id === 'fixtures.needs-missing')!;
    assert.equal(e.state, 'skipped');
    assert.equal(e.errors[0]!.code, 'DEPENDENCY_MISSING');
    assert.match(e.errors[0]!.message, /fixtures\.not-installed, which is not installed/);
  });

  it('reports a dependency cycle listing the cycle', () => {
    const a = listed.find((x) => x.id === 'fixtures.cycle-a')!;
    assert.equal(a.state, 'skipped');
    assert.equal(a.errors[0]!.code, 'DEPENDENCY_CYCLE');
    assert.match(a.errors[0]!.message, /fixtures\.cycle-[ab] → fixtures\.cycle-[ab] → fixtures\.cycle-[ab]/);
  });

  it('keeps serving: the kernel is ready despite the broken extensions', async () => {
    const res = await kernel.request('/readyz');
    assert.equal(res.status, 200);
  });
});

describe('boot-failure policy', () => {
  it('aborts start-up when an extension with bootFailure "abort" is invalid', async () => {
    const root = tempDir();
    writeExtension(root, 'critical', base({ name: 'critical', extensionDependencies: ['t.absent'], aion: { bootFailure: 'abort' } }));
    await assert.rejects(startTestKernel({ extensions: [root] }), (err: Error & { code?: string }) => {
      assert.match(err.message, /start-up aborted during validation: t\.critical/);
      return true;
    });
    rmSync(root, { recursive: true, force: true });
  });

  it('aborts start-up when such an extension fails to activate', async () => {
    const root = tempDir();
    writeExtension(
      root,
      'explodes',
      base({ name: 'explodes', type: 'module', main: 'e.js', activationEvents: ['onStartup'], aion: { bootFailure: 'abort', host: 'kernel' } }),
      { 'e.js': 'export function activate() { throw new Error("no database"); }' },
    );
    await assert.rejects(
      startTestKernel({ extensions: [root], config: { permissions: { grants: { 't.explodes': { kernelHost: true } } } } }),
      /start-up aborted during start-up activation: t\.explodes \(.*no database/,
    );
    rmSync(root, { recursive: true, force: true });
  });
});

describe('mistakes an author makes get an error, not silence', () => {
  let root: string;
  let kernel: TestKernel;
  let listed: Listed[];
  const find = (name: string) => listed.find((e) => e.manifestPath?.includes(`/${name}/`) || e.id === `t.${name}`)!;

  before(async () => {
    root = tempDir();
    writeExtension(root, 'syntax', '{\n  "name": "syntax",\n  "publisher": "t",,\n}');
    writeExtension(root, 'zero-version', base({ name: 'zero-version', version: '01.2.3' }));
    writeExtension(root, 'huge-name', base({ name: 'huge-name', displayName: 'x'.repeat(5_000_000) }));
    writeExtension(
      root,
      'proto',
      '{"name":"proto","publisher":"t","version":"1.0.0","engines":{"aion":"^0.1.0"},"contributes":{"__proto__":{"polluted":true}}}',
    );
    writeExtension(root, 'typo-event', base({ name: 'typo-event', main: 'e.js', activationEvents: ['onComand:t.go'] }), {
      'e.js': 'export function activate() {}',
    });
    writeExtension(root, 'typo-point', base({ name: 'typo-point', contributes: { comands: [{ command: 't.go' }] } }));
    writeExtension(root, 'undeclared-route', base({ name: 'undeclared-route', type: 'module', main: 'e.js', activationEvents: ['onStartup'] }), {
      'e.js':
        'import * as aion from "@aion/extension-api"; export function activate(ctx) { ctx.subscriptions.push(aion.http.handle("GET /v1/secret", () => ({ body: 1 }))); }',
    });
    // Module resolution of @aion/extension-api from a temporary folder goes through the repository's node_modules.
    const { symlinkSync } = await import('node:fs');
    const { resolve } = await import('node:path');
    symlinkSync(resolve(fixture('.'), '..', '..', '..', 'node_modules'), `${root}/node_modules`);
    kernel = await startTestKernel({ extensions: [root], strict: false });
    listed = await listing(kernel);
  });
  after(async () => {
    await kernel.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('points at the line and column of a JSON syntax error', () => {
    assert.match(find('syntax').errors[0]!.message, /syntax\/package\.json:3:\d+: not valid JSON/);
  });

  it('refuses a version with leading zeros, an oversized displayName, and a __proto__ key', () => {
    assert.match(find('zero-version').errors[0]!.message, /\/version: must match pattern/);
    assert.match(find('huge-name').errors[0]!.message, /\/displayName: must NOT have more than 200 characters/);
    assert.match(find('proto').errors[0]!.message, /\/contributes\/__proto__: the key "__proto__" is not allowed/);
  });

  it('refuses an unknown activation-event kind and suggests the right one', () => {
    const typo = find('typo-event');
    assert.equal(typo.state, 'skipped');
    assert.match(typo.errors[0]!.message, /\/activationEvents\/0: "onComand" is not an activation event .* \(did you mean "onCommand"\?\)/);
  });

  it('warns about an unknown contribution point with a suggestion', () => {
    assert.match(find('typo-point').warnings![0]!.message, /\/contributes\/comands: .* \(did you mean "commands"\?\)/);
  });

  it('fails the activation of a route handled in code but not declared, naming the manifest key to add', () => {
    const undeclared = find('undeclared-route');
    assert.equal(undeclared.state, 'failed');
    assert.match(
      undeclared.errors.at(-1)!.message,
      /GET \/v1\/secret, which its manifest does not declare: add \{ "method": "GET", "path": "\/v1\/secret" \} to contributes\.routes/,
    );
  });

  it('makes startTestKernel throw for an extension under test that does not start, naming file and pointer', async () => {
    const only = tempDir();
    writeExtension(only, 'zero', base({ name: 'zero', version: '01.0.0' }));
    await assert.rejects(
      startTestKernel({ extensions: [only] }),
      (err: Error & { code?: string }) =>
        err.code === 'MANIFEST_INVALID' && /zero\/package\.json: \/version/.test(err.message) && /strict: false/.test(err.message),
    );
    rmSync(only, { recursive: true, force: true });
  });
});
