import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Principal } from '@aion/extension-api';
import { LOCAL_PRINCIPAL, type CallContext } from '../src/types.js';
import { newKey, removeDir, signedHostilePack, startService, tempDir } from './support/helpers.js';

const user = (sub: string, scopes: string[] = ['skills:read', 'skills:execute']): Principal => ({ sub, type: 'user', scopes, tenant_id: 'default' });
const as = (principal: Principal): CallContext => ({ principal, via: 'api' });

type Failure = { code: string; message: string; details?: any; headers?: Record<string, string>; status?: number };

describe('gatekeeper', function () {
  this.timeout(60_000);
  const key = newKey();
  let work: string;
  let hub: Awaited<ReturnType<typeof startService>>;

  before(async () => {
    work = tempDir();
    hub = await startService({
      config: { trustedKeys: [key.publicKeyLine], rateLimit: { capacity: 1_000_000, refillPerSecond: 1_000_000 }, maxInputBytes: 64 * 1024 },
      secrets: { SKILL_API_TOKEN: 'tok-123', SKILL_OTHER_TOKEN: 'must-not-leak' },
    });
    await hub.service.installPack(await signedHostilePack(join(work, 'pack'), key));
  });

  after(async () => {
    await hub?.stop();
    removeDir(work);
  });

  const run = (id: string, args: unknown, call: CallContext = as(LOCAL_PRINCIPAL)) => hub.service.execute(id, args, call);
  const failure = async (id: string, args: unknown, call?: CallContext): Promise<Failure> => {
    try {
      await run(id, args, call);
    } catch (err) {
      return err as Failure;
    }
    throw new Error(`${id} did not fail`);
  };

  /** Runs `hostile` while a neighbour keeps calling a well-behaved skill; both must be served. */
  async function whileServing(hostile: () => Promise<Failure>): Promise<Failure> {
    let stop = false;
    let served = 0;
    const neighbour = (async () => {
      while (!stop) {
        const { result } = await run('hostile.echo', { text: `n${served}` });
        assert.deepEqual(result, { text: `n${served}` });
        served++;
        await new Promise((r) => setImmediate(r));
      }
    })();
    const started = performance.now();
    const outcome = await hostile();
    const elapsed = performance.now() - started;
    stop = true;
    await neighbour;
    assert.ok(served > 0, `the neighbour was served ${served} times in ${Math.round(elapsed)} ms`);
    assert.deepEqual((await run('hostile.echo', { text: 'after' })).result, { text: 'after' }, 'served after the hostile call');
    return outcome;
  }

  describe('hostile input', () => {
    it('stops an infinite loop with TIMEOUT', async () => {
      const started = performance.now();
      const err = await whileServing(() => failure('hostile.loop', {}));
      assert.equal(err.code, 'TIMEOUT');
      assert.equal(err.status, 504);
      assert.ok(performance.now() - started < 5000);
    });

    it('stops memory grown past the cap with MEMORY_LIMIT', async () => {
      const err = await whileServing(() => failure('hostile.grow', {}));
      assert.equal(err.code, 'MEMORY_LIMIT');
      assert.match(err.message, /64 pages/);
    });

    it('caps a huge output with OUTPUT_TOO_LARGE', async () => {
      const err = await whileServing(() => failure('hostile.bigout', {}));
      assert.equal(err.code, 'OUTPUT_TOO_LARGE');
      assert.match(err.message, /4096 bytes/);
    });

    it('gives a declared secret and denies one that is not declared', async () => {
      assert.deepEqual((await run('hostile.secret', {})).result, { status: 7, value: 'tok-123' });
      const denied = await whileServing(async () => (await run('hostile.secret-undeclared', {})).result as Failure);
      assert.deepEqual(denied, { status: -1, value: null });
    });

    it('denies a host that is not declared, and a private address', async () => {
      assert.deepEqual((await run('hostile.fetch-undeclared', {})).result, { status: -1 });
      assert.deepEqual((await run('hostile.fetch-private', {})).result, { status: -1 });
    });

    it('refuses arguments that fail the schema with 400 and every problem', async () => {
      const err = await whileServing(() => failure('hostile.echo', { text: 42, extra: true }));
      assert.equal(err.code, 'VALIDATION_FAILED');
      assert.equal(err.status, 400);
      const paths = err.details.errors.map((e: { path: string }) => e.path).sort();
      assert.deepEqual(paths, ['/extra', '/text']);
      const missing = await failure('hostile.echo', {});
      assert.deepEqual(
        missing.details.errors.map((e: { path: string }) => e.path),
        ['/text'],
      );
    });

    it('refuses a result that fails the output schema', async () => {
      const err = await failure('hostile.badout', {});
      assert.equal(err.code, 'OUTPUT_INVALID');
      assert.ok(hub.logger.lines.some((l) => /does not match its output schema/.test(l.message)));
    });

    it('reports a failing skill without host paths or stack frames, and logs the detail', async () => {
      const err = await failure('hostile.fail', {});
      assert.equal(err.code, 'SKILL_FAILED');
      assert.match(err.message, /exited with code 3/);
      assert.doesNotMatch(err.message, /\/home\/someone|\n|\s{2,}at |\.js:\d+/);
      assert.match(err.message, /\[path\]/);
      assert.ok(hub.logger.lines.some((l) => l.level === 'warn' && JSON.stringify(l.data).includes('/home/someone/secret/path.txt')));
    });

    it('caps the size of the arguments', async () => {
      const err = await failure('hostile.echo', { text: 'x'.repeat(70 * 1024) });
      assert.equal(err.code, 'PAYLOAD_TOO_LARGE');
      assert.equal(err.status, 413);
    });
  });

  describe('who may call', () => {
    it('needs skills:execute', async () => {
      const err = await failure('hostile.echo', { text: 'x' }, as(user('rita', ['skills:read'])));
      assert.equal(err.code, 'FORBIDDEN');
      assert.deepEqual(err.details, { missingScopes: ['skills:execute'] });
      assert.deepEqual((await run('hostile.echo', { text: 'x' }, as(user('rune')))).result, { text: 'x' });
    });

    it('answers SKILL_NOT_FOUND and SKILL_DISABLED', async () => {
      assert.equal((await failure('hostile.nothing', {})).code, 'SKILL_NOT_FOUND');
      await hub.service.setEnabled('hostile.echo', false);
      assert.equal((await failure('hostile.echo', { text: 'x' })).code, 'SKILL_DISABLED');
      assert.ok(!hub.service.visibleSkills(user('rune')).some((s) => s.id === 'hostile.echo'));
      await hub.service.setEnabled('hostile.echo', true);
      assert.deepEqual((await run('hostile.echo', { text: 'x' })).result, { text: 'x' });
    });

    it('limits each caller to its rate with Retry-After', async () => {
      const limited = await startService({ config: { trustedKeys: [key.publicKeyLine], rateLimit: { capacity: 3, refillPerSecond: 0.5 } } });
      try {
        await limited.service.installPack(join(work, 'pack'));
        for (let i = 0; i < 3; i++) await limited.service.execute('hostile.echo', { text: 'x' }, as(user('greedy')));
        await assert.rejects(limited.service.execute('hostile.echo', { text: 'x' }, as(user('greedy'))), (err: Failure) => {
          assert.equal(err.code, 'RATE_LIMITED');
          assert.equal(err.status, 429);
          assert.equal(err.headers?.['Retry-After'], '2');
          return true;
        });
        await limited.service.execute('hostile.echo', { text: 'x' }, as(user('patient')));
      } finally {
        await limited.stop();
      }
    });
  });

  describe('runtimes', () => {
    it('runs a process skill for comparison, and reports its failure', async () => {
      const { result } = await run('hostile.native', { text: 'native' });
      assert.equal((result as { echoed: string; tool: string }).echoed, 'native');
      assert.equal((result as { tool: string }).tool, 'hostile.native');
      const err = await failure('hostile.native', { fail: true });
      assert.equal(err.code, 'SKILL_FAILED');
      assert.match(err.message, /asked to fail/);
    });
  });

  it('records calls, errors and durations per skill and caller', async () => {
    await run('hostile.echo', { text: 'u' }, as(user('counted')));
    await failure('hostile.echo', {}, as(user('counted')));
    const [row] = hub.service.usage.list({ skill: 'hostile.echo', caller: 'default/counted' });
    assert.equal(row?.calls, 2);
    assert.equal(row?.errors, 1);
    assert.deepEqual(row?.errorsByCode, { VALIDATION_FAILED: 1 });
    assert.ok(row!.averageMs > 0);
  });

  it('searches over id, title, description and tags, ranked', () => {
    const hits = hub.service.search({ q: 'echo' });
    assert.equal(hits[0]?.id, 'hostile.echo');
    assert.ok(
      hits.some((h) => h.id === 'hostile.native'),
      'description match',
    );
    assert.deepEqual(hits[0]?.devices, [{ id: 'hub', name: 'hub', kind: 'hub', local: true }]);
    assert.equal(hits[0]?.device_count, 1);
    assert.deepEqual(
      hub.service.search({ tags: ['process'] }).map((h) => h.id),
      ['hostile.native'],
    );
    assert.deepEqual(hub.service.search({ q: 'nothing-like-this' }), []);
    assert.ok(hits[0]!.score! > hits[hits.length - 1]!.score!);
  });

  it('offers skills as OpenAI-style tools and runs them by tool name, failures as values', async () => {
    const tools = hub.service.listTools({ skills: ['hostile.echo', 'hostile.native'] });
    assert.deepEqual(
      tools.map((t) => t.function.name),
      ['hostile__echo', 'hostile__native'],
    );
    assert.equal(tools[0]!.type, 'function');
    assert.equal((tools[0]!.function.parameters as { type: string }).type, 'object');
    const ok = await hub.service.executeTool('hostile__echo', '{"text":"tool"}', user('rune'));
    assert.deepEqual(ok, { ...ok, ok: true, skill: 'hostile.echo', result: { text: 'tool' }, content: '{"text":"tool"}' });
    const bad = await hub.service.executeTool('hostile__echo', '{"text":', user('rune'));
    assert.equal(bad.ok, false);
    assert.equal(bad.error?.code, 'VALIDATION_FAILED');
    const invalid = await hub.service.executeTool('hostile__echo', { text: 1 }, user('rune'));
    assert.equal(JSON.parse(invalid.content).error.code, 'VALIDATION_FAILED');
    assert.equal(hub.service.listTools({ principal: user('rita', ['skills:read']) }).length, 0);
  });
});
