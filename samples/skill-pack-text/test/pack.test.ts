import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startTestKernel, type TestKernel } from '@aion/core';
import { signPack } from '@aion/ext-skills/packs';
import { wrap } from '../src/extension.js';

const sampleRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const testAuth = resolve(sampleRoot, '../../extensions/skills/test/fixtures/test-auth');

describe('sample pack: text', function () {
  this.timeout(120_000);
  let work: string;
  let kernel: TestKernel;

  before(async () => {
    // The modules are build outputs: compile what is stale, then sign a copy of the pack with the sample key.
    const { buildSkills } = (await import(pathToFileURL(join(sampleRoot, 'build.mjs')).href)) as { buildSkills(o: { onlyStale: boolean }): Promise<string[]> };
    await buildSkills({ onlyStale: true });
    work = await mkdtemp(join(tmpdir(), 'aion-text-pack-'));
    const pack = join(work, 'packs', 'text');
    for (const part of ['pack.json', 'README.md', 'schemas', 'dist/skills'])
      await cp(join(sampleRoot, part), join(pack, part), { recursive: true, filter: (src) => !src.endsWith('.stamp') });
    const { keyId, files } = await signPack(pack, await readFile(join(sampleRoot, 'keys/sample.key'), 'utf8'));
    assert.equal(files.filter((f) => f.endsWith('.wasm')).length, 6);
    assert.equal(keyId, '45db3557b3861f6d');
    // A signed pack folder in the packs directory is an installed pack: it is verified when it loads.
    kernel = await startTestKernel({
      builtins: ['aion.skills'],
      extensions: [sampleRoot, testAuth],
      config: {
        extensions: {
          'aion.skills': {
            trustedKeys: [{ name: 'sample', publicKey: await readFile(join(sampleRoot, 'keys/sample.pub'), 'utf8') }],
            packsDir: join(work, 'packs'),
            quarantineDir: join(work, 'quarantine'),
            wasm: { workers: 1 },
          },
        },
      },
    });
  });

  after(async () => {
    await kernel?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  async function run(id: string, args: unknown): Promise<any> {
    const res = await kernel.request(`/v1/skills/${id}/execute`, {
      method: 'POST',
      headers: { authorization: 'Bearer runner', 'content-type': 'application/json' },
      body: JSON.stringify({ args }),
    });
    const body = (await res.json()) as any;
    assert.equal(res.status, 200, JSON.stringify(body));
    return body.result;
  }

  it('loads six signed WASM skills and the js skill', async () => {
    const { skills } = (await (await kernel.request('/v1/skills?limit=100', { headers: { authorization: 'Bearer reader' } })).json()) as any;
    const byId = Object.fromEntries(skills.map((s: { id: string }) => [s.id, s]));
    for (const id of ['text.stats', 'text.extract', 'text.json-query', 'text.line-diff', 'text.hash', 'text.slugify']) {
      assert.equal(byId[id]?.runtime, 'wasm', id);
      assert.equal(byId[id].source.signer, 'sample');
    }
    assert.equal(byId['text.wrap']?.runtime, 'js');
  });

  it('text.stats counts words, sentences and paragraphs', async () => {
    const r = await run('text.stats', { text: 'The cat sat. The cat ran!\n\nA new paragraph here.', top: 2 });
    assert.equal(r.words, 10);
    assert.equal(r.sentences, 3);
    assert.equal(r.paragraphs, 2);
    assert.equal(r.lines, 3);
    assert.deepEqual(r.topWords, [
      { word: 'cat', count: 2 },
      { word: 'the', count: 2 },
    ]);
  });

  it('text.extract finds e-mails, URLs, numbers, hashtags and mentions', async () => {
    const r = await run('text.extract', { text: 'Write to ada@example.com or see https://example.com/docs. Ping @bob about #release 42, version 1.5.' });
    assert.deepEqual(r, { emails: ['ada@example.com'], urls: ['https://example.com/docs'], numbers: [42, 1.5], hashtags: ['#release'], mentions: ['@bob'] });
    assert.deepEqual(await run('text.extract', { text: 'a@b.io a@b.io', kinds: ['emails'], unique: false }), { emails: ['a@b.io', 'a@b.io'] });
  });

  it('text.json-query reads by path, from the end, and over every item', async () => {
    const data = { users: [{ name: 'ada' }, { name: 'bob' }] };
    assert.deepEqual(await run('text.json-query', { data, path: 'users[0].name' }), { path: 'users.0.name', found: true, value: 'ada' });
    assert.equal((await run('text.json-query', { data, path: 'users.-1.name' })).value, 'bob');
    assert.deepEqual((await run('text.json-query', { data, path: 'users.*.name' })).value, ['ada', 'bob']);
    assert.deepEqual(await run('text.json-query', { data, path: 'users.9' }), { path: 'users.9', found: false, value: null });
  });

  it('text.line-diff answers changes and a unified diff', async () => {
    const r = await run('text.line-diff', { before: 'a\nb\nc\n', after: 'a\nB\nc\nd\n', context: 1 });
    assert.equal(r.identical, false);
    assert.equal(r.added, 2);
    assert.equal(r.removed, 1);
    assert.deepEqual(r.changes[0], { op: 'delete', oldLine: 2, text: 'b' });
    assert.match(r.unified, /^--- before\n\+\+\+ after\n@@ /);
    assert.match(r.unified, /\n-b\n\+B\n/);
  });

  it('text.hash agrees with node:crypto', async () => {
    const text = 'héllo, wörld ✓';
    const r = await run('text.hash', { text });
    assert.deepEqual(r, { algorithm: 'sha256', hex: createHash('sha256').update(text).digest('hex'), bytes: Buffer.byteLength(text) });
    assert.equal((await run('text.hash', { text: '', algorithm: 'fnv1a32' })).hex, '811c9dc5');
  });

  it('text.slugify folds accents and cuts at whole words', async () => {
    assert.deepEqual(await run('text.slugify', { text: 'Crème Brûlée — the Best!' }), { slug: 'creme-brulee-the-best' });
    assert.deepEqual(await run('text.slugify', { text: 'One two three four', maxLength: 9, separator: '_' }), { slug: 'one_two' });
  });

  it('text.wrap (js) re-flows paragraphs', async () => {
    const r = await run('text.wrap', { text: 'one two three four five\n\nsix', width: 10, indent: '> ' });
    assert.deepEqual(r, { text: '> one two\n> three\n> four\n> five\n\n> six', lines: 6 });
    assert.deepEqual(wrap({ text: 'averyveryverylongword x', width: 8 }), { text: 'averyveryverylongword\nx', lines: 2 });
  });

  it('refuses arguments outside the schemas', async () => {
    const res = await kernel.request('/v1/skills/text.hash/execute', {
      method: 'POST',
      headers: { authorization: 'Bearer runner', 'content-type': 'application/json' },
      body: JSON.stringify({ args: { text: 'x', algorithm: 'md5' } }),
    });
    assert.equal(res.status, 400);
    const { error } = (await res.json()) as any;
    assert.equal(error.details.errors[0].path, '/algorithm');
  });
});
