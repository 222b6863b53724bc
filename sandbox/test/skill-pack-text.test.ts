import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { WasmEngine, type WasmLimits } from '../src/index.js';
import { paths } from './support/assemblyscript.js';

const packRoot = join(paths.sandboxRoot, '../samples/skill-pack-text');
const limits: WasmLimits = { timeoutMs: 5000, memoryPages: 256, maxOutputBytes: 1024 * 1024 };

interface PackBuild {
  buildSkills(options: { onlyStale: boolean }): Promise<string[]>;
  skillNames(): string[];
  skillsDir: string;
}

function fnv1a32(text: string): string {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return hash.toString(16).padStart(8, '0');
}

function fnv1a64(text: string): string {
  let hash = 0xcbf29ce484222325n;
  for (const byte of Buffer.from(text, 'utf8')) hash = ((hash ^ BigInt(byte)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return hash.toString(16).padStart(16, '0');
}

describe('samples/skill-pack-text through the WasmEngine', function () {
  const engine = new WasmEngine({ workers: 2 });
  const hashes = new Map<string, string>();
  const memories = new Map<string, string>();

  before(async function () {
    this.timeout(180_000);
    const build = (await import(pathToFileURL(join(packRoot, 'build.mjs')).href)) as PackBuild;
    await build.buildSkills({ onlyStale: true });
    for (const name of build.skillNames()) {
      const { hash, info } = await engine.compile(new Uint8Array(await readFile(join(build.skillsDir, `${name}.wasm`))));
      hashes.set(name, hash);
      memories.set(name, info.memories.map((m) => `${m.source} ${m.importModule}.${m.importName}`).join());
    }
  });

  after(() => engine.close());

  const run = async (skill: string, input: unknown) => (await engine.run({ hash: hashes.get(skill)!, input, limits })).output;

  it('ships at least six skills, each with bounded imported memory', () => {
    assert.deepEqual([...hashes.keys()], ['extract', 'hash', 'json-query', 'line-diff', 'slugify', 'text-stats']);
    for (const [name, memory] of memories) assert.equal(memory, 'imported env.memory', name);
  });

  it('text-stats counts words, lines, sentences and paragraphs', async () => {
    const text = "Hello world. Hello again!\n\nIt's a new paragraph… Déjà vu, l’été.\n";
    const output = (await run('text-stats', { text, top: 2 })) as Record<string, unknown>;
    assert.deepEqual(output, {
      characters: [...text].length,
      bytes: Buffer.byteLength(text),
      words: 11,
      uniqueWords: 10,
      lines: 3,
      sentences: 4,
      paragraphs: 2,
      averageWordLength: 4.18,
      readingMinutes: 1,
      topWords: [
        { word: 'hello', count: 2 },
        { word: 'a', count: 1 },
      ],
    });
  });

  it('extract finds e-mails, URLs, numbers, hashtags and mentions', async () => {
    const text =
      'Write to Ana.Lopez@example.com or ops@mail.example.org. See https://example.com/docs?q=1 (and http://test.io/a_(b)). Cost: -12.50 EUR, 3 items, v2 #release @maria and @bob_1. Again ana.lopez@example.com.';
    assert.deepEqual(await run('extract', { text }), {
      emails: ['Ana.Lopez@example.com', 'ops@mail.example.org'],
      urls: ['https://example.com/docs?q=1', 'http://test.io/a_(b)'],
      numbers: [-12.5, 3],
      hashtags: ['#release'],
      mentions: ['@maria', '@bob_1'],
    });
    assert.deepEqual(await run('extract', { text: 'a@b.io, a@b.io', kinds: ['emails'], unique: false }), { emails: ['a@b.io', 'a@b.io'] });
    await assert.rejects(
      run('extract', { text: 'x', kinds: ['phones'] }),
      (err: Error & { code?: string }) => err.code === 'SKILL_FAILED' && /unknown kind/.test(err.message),
    );
  });

  it('json-query reads values by dotted path, index and wildcard', async () => {
    const data = {
      users: [
        { name: 'Ana', age: 31, tags: ['a', 'b'] },
        { name: 'Bo "B" é', age: 27 },
      ],
      meta: { ratio: 0.125, big: 12345678901234, neg: -1e-7, none: null },
    };
    assert.deepEqual(await run('json-query', { data, path: 'users.1.name' }), { path: 'users.1.name', found: true, value: 'Bo "B" é' });
    assert.deepEqual(await run('json-query', { data, path: 'users[0].tags' }), { path: 'users.0.tags', found: true, value: ['a', 'b'] });
    assert.deepEqual(await run('json-query', { data, path: 'users.*.age' }), { path: 'users.*.age', found: true, value: [31, 27] });
    assert.deepEqual(await run('json-query', { data, path: 'users.-1.age' }), { path: 'users.-1.age', found: true, value: 27 });
    assert.deepEqual(await run('json-query', { data, path: 'meta' }), { path: 'meta', found: true, value: data.meta });
    assert.deepEqual(await run('json-query', { data, path: 'meta.none' }), { path: 'meta.none', found: true, value: null });
    assert.deepEqual(await run('json-query', { data, path: 'users.5.name' }), { path: 'users.5.name', found: false, value: null });
  });

  it('line-diff answers changes that turn the old text into the new one, and a unified diff', async () => {
    const before = 'a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\n';
    const after = 'a\nB\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\n';
    const output = (await run('line-diff', { before, after, context: 1 })) as {
      added: number;
      removed: number;
      changes: Array<{ op: string; oldLine?: number; newLine?: number; text: string }>;
      unified: string;
    };
    assert.equal(output.added, 2);
    assert.equal(output.removed, 1);
    assert.equal(output.unified, '--- before\n+++ after\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n@@ -11,1 +11,2 @@\n k\n+l\n');
    const oldLines = before.split('\n').slice(0, -1);
    const rebuilt = oldLines.filter((_, i) => !output.changes.some((c) => c.op === 'delete' && c.oldLine === i + 1));
    for (const change of output.changes.filter((c) => c.op === 'insert')) rebuilt.splice(change.newLine! - 1, 0, change.text);
    assert.equal(`${rebuilt.join('\n')}\n`, after);
    assert.deepEqual(await run('line-diff', { before: 'same\n', after: 'same\n' }), {
      identical: true,
      added: 0,
      removed: 0,
      unchanged: 1,
      changes: [],
      unified: '',
    });
  });

  it('hash computes SHA-256 and FNV-1a of the UTF-8 bytes', async () => {
    for (const text of ['', 'héllo wörld', 'a'.repeat(119), '🙂 emoji']) {
      assert.deepEqual(await run('hash', { text }), {
        algorithm: 'sha256',
        hex: createHash('sha256').update(text).digest('hex'),
        bytes: Buffer.byteLength(text),
      });
      assert.equal(((await run('hash', { text, algorithm: 'fnv1a32' })) as { hex: string }).hex, fnv1a32(text));
      assert.equal(((await run('hash', { text, algorithm: 'fnv1a64' })) as { hex: string }).hex, fnv1a64(text));
    }
  });

  it('slugify folds accents and joins words', async () => {
    assert.deepEqual(await run('slugify', { text: "  Ça va? Crème brûlée & Straße — Œuvres complètes (2024) don't Łódź  " }), {
      slug: 'ca-va-creme-brulee-strasse-oeuvres-completes-2024-dont-lodz',
    });
    assert.deepEqual(await run('slugify', { text: 'Hello, World: A Very Long Title Indeed', maxLength: 20, separator: '_' }), { slug: 'hello_world_a_very' });
  });

  it('fails with SKILL_FAILED and a reason on bad input', async () => {
    await assert.rejects(
      run('hash', { text: 42 }),
      (err: Error & { code?: string }) => err.code === 'SKILL_FAILED' && /"text" must be a string/.test(err.message),
    );
    await assert.rejects(
      run('json-query', { path: 'a' }),
      (err: Error & { code?: string }) => err.code === 'SKILL_FAILED' && /"data" is required/.test(err.message),
    );
  });
});
