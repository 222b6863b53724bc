import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { appendFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tar from 'tar';
import { FILE_LIST, keyIdOf, parsePublicKey, safeRelativePath, signPack, SIGNATURE_FILE, verifySignature, trustedKeysFrom } from '../src/packs/signing.js';
import { LOCAL_PRINCIPAL } from '../src/types.js';
import { newKey, removeDir, startService, tempDir, writeHostilePack, signedHostilePack } from './support/helpers.js';

const call = { principal: LOCAL_PRINCIPAL, via: 'api' as const };

describe('skill packs', function () {
  this.timeout(60_000);
  const author = newKey();
  const stranger = newKey();
  let work: string;
  let hub: Awaited<ReturnType<typeof startService>>;

  before(async () => {
    work = tempDir();
    hub = await startService({ config: { trustedKeys: [{ name: 'author', publicKey: author.publicKeyLine }] } });
  });

  after(async () => {
    await hub?.stop();
    removeDir(work);
  });

  const quarantinedIds = async () => (await hub.service.listPacks()).quarantined.map((q) => q.pack);

  describe('signing', () => {
    it('reads keys as PEM or one line and names them by the same id', () => {
      const fromPem = parsePublicKey(author.publicKeyPem);
      const fromLine = parsePublicKey(author.publicKeyLine);
      assert.equal(keyIdOf(fromPem), author.keyId);
      assert.equal(keyIdOf(fromLine), author.keyId);
      assert.throws(() => parsePublicKey('ed25519:AAAA'), { code: 'KEY_INVALID' });
      assert.throws(() => trustedKeysFrom(['not a key']), /trustedKeys\[0\]/);
    });

    it('refuses paths that leave the pack', () => {
      for (const bad of ['../x', '/etc/passwd', 'a/../../b', 'a\\b', '']) assert.throws(() => safeRelativePath(bad), { code: 'PACK_INVALID' }, bad);
      assert.equal(safeRelativePath('a/./b.wasm'), 'a/b.wasm');
    });

    it('lists every file with its hash and signs the list', async () => {
      const dir = await signedHostilePack(join(work, 'signing'), author);
      const list = JSON.parse(await readFile(join(dir, FILE_LIST), 'utf8'));
      assert.deepEqual(Object.keys(list.files).sort(), [
        'bin/echo-skill.mjs',
        'guest.wasm',
        'pack.json',
        'schemas/text.input.json',
        'schemas/text.output.json',
      ]);
      const check = verifySignature(
        await readFile(join(dir, FILE_LIST)),
        await readFile(join(dir, SIGNATURE_FILE), 'utf8'),
        trustedKeysFrom([author.publicKeyLine]),
      );
      assert.equal(check.keyId, author.keyId);
      assert.throws(() => verifySignature(Buffer.from('{}'), undefined, []), { code: 'PACK_UNSIGNED' });
    });
  });

  it('installs a signed folder and runs its skills at once', async () => {
    const dir = await signedHostilePack(join(work, 'good'), author);
    const installed = await hub.service.installPack(dir);
    assert.equal(installed.name, 'hostile');
    assert.equal(installed.signed, true);
    assert.equal(installed.keyId, author.keyId);
    assert.ok(installed.skills.includes('hostile.echo'));
    const { result } = await hub.service.execute('hostile.echo', { text: 'hi' }, call);
    assert.deepEqual(result, { text: 'hi' });
    const installedFiles = readdirSync(join(hub.dataDir, 'skills', 'hostile')).sort();
    assert.deepEqual(installedFiles, ['bin', 'files.json', 'files.sig', 'guest.wasm', 'install.json', 'pack.json', 'schemas']);
  });

  it('installs a signed .tgz written by sign --out, replacing the installed version', async () => {
    const dir = await writeHostilePack(join(work, 'tgz-src'));
    const { files } = await signPack(dir, author.privateKeyPem);
    const archive = join(work, 'hostile.tgz');
    await tar.c({ gzip: true, file: archive, cwd: dir, portable: true }, [...files, FILE_LIST, SIGNATURE_FILE]);
    const installed = await hub.service.installPack(archive);
    assert.equal(installed.replaced, true);
    assert.equal((await hub.service.execute('hostile.echo', { text: 'from tgz' }, call)).result instanceof Object, true);
  });

  it('quarantines a pack signed by an unknown key, and does not load it', async () => {
    const dir = await signedHostilePack(join(work, 'stranger'), stranger, { name: 'strange' });
    await assert.rejects(hub.service.installPack(dir), (err: { code: string; message: string; details: { quarantined: string } }) => {
      assert.equal(err.code, 'PACK_UNKNOWN_SIGNER');
      assert.match(err.message, /quarantine as strange-/);
      return true;
    });
    assert.equal(hub.service.catalog.get('strange.echo'), undefined);
    const listing = await hub.service.listPacks();
    const q = listing.quarantined.find((x) => x.pack === 'strange');
    assert.ok(q, 'listed as quarantined');
    assert.equal(q.code, 'PACK_UNKNOWN_SIGNER');
    assert.ok(existsSync(join(hub.dataDir, 'quarantine', q.id, 'quarantine.json')));
    assert.ok(existsSync(join(hub.dataDir, 'quarantine', q.id, 'guest.wasm')));
    assert.ok(!listing.installed.some((p) => p.name === 'strange'));
  });

  it('quarantines a pack whose files changed after signing', async () => {
    const dir = await signedHostilePack(join(work, 'tampered'), author, { name: 'tampered' });
    await appendFile(join(dir, 'bin/echo-skill.mjs'), '\nprocess.exit(0);\n');
    await assert.rejects(hub.service.installPack(dir), { code: 'PACK_TAMPERED' });
    assert.ok((await quarantinedIds()).includes('tampered'));
  });

  it('quarantines a pack whose file list changed after signing', async () => {
    const dir = await signedHostilePack(join(work, 'relisted'), author, { name: 'relisted' });
    const list = JSON.parse(await readFile(join(dir, FILE_LIST), 'utf8'));
    list.files['guest.wasm'] = '0'.repeat(64);
    await writeFile(join(dir, FILE_LIST), JSON.stringify(list));
    await assert.rejects(hub.service.installPack(dir), { code: 'PACK_BAD_SIGNATURE' });
    assert.ok((await quarantinedIds()).includes('relisted'));
  });

  it('quarantines an unsigned pack, unless --allow-unsigned says otherwise, loudly', async () => {
    const dir = await writeHostilePack(join(work, 'unsigned'), { name: 'unsigned' });
    await assert.rejects(hub.service.installPack(dir), { code: 'PACK_UNSIGNED' });
    assert.ok((await quarantinedIds()).includes('unsigned'));
    const installed = await hub.service.installPack(dir, { allowUnsigned: true });
    assert.equal(installed.signed, false);
    assert.match(installed.warnings.join('\n'), /UNSIGNED PACK/);
    assert.deepEqual((await hub.service.execute('unsigned.echo', { text: 'dev' }, call)).result, { text: 'dev' });
    assert.ok(hub.logger.lines.some((l) => l.level === 'warn' && /UNSIGNED/.test(l.message)));
    const listed = (await hub.service.listPacks()).installed.find((p) => p.name === 'unsigned');
    assert.equal(listed?.signed, false);
  });

  it('quarantines an installed pack changed on disk, at the next load', async () => {
    const dir = await signedHostilePack(join(work, 'later'), author, { name: 'later' });
    await hub.service.installPack(dir);
    assert.ok(hub.service.catalog.get('later.echo'));
    await writeFile(join(hub.dataDir, 'skills', 'later', 'guest.wasm'), new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]));
    await writeFile(join(hub.dataDir, 'skills', 'later', 'pack.json'), await readFile(join(dir, 'pack.json')));
    await appendFile(join(hub.dataDir, 'skills', 'later', 'files.json'), ' ');
    await hub.service.reloadPacks();
    assert.equal(hub.service.catalog.get('later.echo'), undefined);
    assert.ok(!existsSync(join(hub.dataDir, 'skills', 'later')));
    assert.ok((await quarantinedIds()).includes('later'));
  });

  it('refuses an extra file dropped into an installed pack', async () => {
    const dir = await signedHostilePack(join(work, 'extra'), author, { name: 'extra' });
    await hub.service.installPack(dir);
    await writeFile(join(hub.dataDir, 'skills', 'extra', 'payload.wasm'), 'x');
    await writeFile(join(hub.dataDir, 'skills', 'extra', 'install.json'), JSON.stringify({ installedAt: new Date().toISOString(), signed: true, source: '' }));
    await hub.service.reloadPacks();
    assert.equal(hub.service.catalog.get('extra.echo'), undefined);
    assert.ok((await quarantinedIds()).includes('extra'));
  });

  it('refuses an invalid pack with every problem named, without quarantine', async () => {
    const dir = join(work, 'invalid');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'guest.wasm'), new Uint8Array([1, 2, 3]));
    await writeFile(
      join(dir, 'pack.json'),
      JSON.stringify({
        name: 'invalid',
        version: '1.0.0',
        skills: [
          { id: 'other.x', title: 'x', description: 'x', runtime: 'wasm', entry: 'guest.wasm', inputSchema: { type: 'object' } },
          { id: 'invalid.js', title: 'x', description: 'x', runtime: 'js', inputSchema: { type: 'object' } },
          { id: 'invalid.bad id', title: 'x', description: 'x', runtime: 'wasm', entry: 'guest.wasm', inputSchema: { type: 'object' } },
        ],
      }),
    );
    await signPack(dir, author.privateKeyPem);
    await assert.rejects(hub.service.installPack(dir), (err: { code: string; details: { problems: string[] } }) => {
      assert.equal(err.code, 'PACK_INVALID');
      const text = err.details.problems.join('\n');
      assert.match(text, /must start with "invalid\."/);
      assert.match(text, /js skills come from extensions/);
      assert.match(text, /\/id must match pattern/);
      return true;
    });
    assert.ok(!(await quarantinedIds()).includes('invalid'));
  });

  it('refuses at install a module that could take its sandbox thread down, naming the cap', async () => {
    const dir = join(work, 'oversized');
    await mkdir(dir, { recursive: true });
    const entry = (id: string, file: string, limits?: Record<string, number>) => ({
      id: `oversized.${id}`,
      title: id,
      description: id,
      runtime: 'wasm',
      entry: file,
      inputSchema: { type: 'object' },
      ...(limits ? { limits } : {}),
    });
    await writeFile(join(dir, 'table.wasm'), guestModule({ table: { min: 1 } }));
    await writeFile(join(dir, 'functions.wasm'), guestModule({ functions: 100_001 }));
    await writeFile(join(dir, 'memory.wasm'), guestModule({ memoryMin: 65 }));
    await writeFile(
      join(dir, 'pack.json'),
      JSON.stringify({
        name: 'oversized',
        version: '1.0.0',
        skills: [entry('table', 'table.wasm'), entry('functions', 'functions.wasm'), entry('memory', 'memory.wasm', { memory_pages: 64 })],
      }),
    );
    await signPack(dir, author.privateKeyPem);
    await assert.rejects(hub.service.installPack(dir), (err: { code: string; details: { problems: string[] } }) => {
      assert.equal(err.code, 'PACK_INVALID');
      const [table, functions, memory] = err.details.problems;
      assert.match(table!, /oversized\.table.*a table without a maximum size/);
      assert.match(functions!, /oversized\.functions.*100002 functions \(limit 100000\)/);
      assert.match(memory!, /oversized\.memory.*needs 65 pages of memory to start; the limit is 64/);
      return true;
    });
  });

  it('removes a pack and its skills without a restart', async () => {
    const dir = await signedHostilePack(join(work, 'gone'), author, { name: 'gone' });
    await hub.service.installPack(dir);
    assert.ok(hub.service.catalog.get('gone.echo'));
    assert.deepEqual(await hub.service.removePack('gone'), { removed: true });
    assert.equal(hub.service.catalog.get('gone.echo'), undefined);
    await assert.rejects(hub.service.execute('gone.echo', { text: 'x' }, call), { code: 'SKILL_NOT_FOUND' });
    assert.deepEqual(await hub.service.removePack('gone'), { removed: false });
  });

  it('notices packs copied into and removed from the packs folder while it watches', async () => {
    const watching = await startService({ config: { trustedKeys: [author.publicKeyLine], watch: true } });
    try {
      const dir = await signedHostilePack(join(work, 'watched'), author, { name: 'watched' });
      // Installed by another process (the CLI) into the same data directory:
      const other = await startService({ dataDir: watching.dataDir, config: { trustedKeys: [author.publicKeyLine] } });
      await other.service.installPack(dir);
      await other.stop();
      const deadline = Date.now() + 8000;
      while (!watching.service.catalog.get('watched.echo') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.ok(watching.service.catalog.get('watched.echo'), 'loaded without a restart');
      await rm(join(watching.dataDir, 'skills', 'watched'), { recursive: true });
      while (watching.service.catalog.get('watched.echo') && Date.now() < deadline + 8000) await new Promise((r) => setTimeout(r, 50));
      assert.equal(watching.service.catalog.get('watched.echo'), undefined, 'unloaded without a restart');
    } finally {
      await watching.stop();
    }
  });
});

/** A WASI command importing `env.memory`, with a funcref table and extra empty functions if asked: bytes a compiler would not write. */
function guestModule(spec: { table?: { min: number; max?: number }; functions?: number; memoryMin?: number }): Uint8Array {
  const leb = (n: number): number[] => (n < 0x80 ? [n] : [(n & 0x7f) | 0x80, ...leb(n >>> 7)]);
  const name = (text: string) => [...leb(text.length), ...Buffer.from(text)];
  const section = (id: number, items: number[][]) => {
    const body = [...leb(items.length), ...items.flat()];
    return [id, ...leb(body.length), ...body];
  };
  const count = 1 + (spec.functions ?? 0);
  const limits = (l: { min: number; max?: number }) => (l.max === undefined ? [0x00, ...leb(l.min)] : [0x01, ...leb(l.min), ...leb(l.max)]);
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, [[0x60, 0x00, 0x00]]),
    ...section(2, [[...name('env'), ...name('memory'), 0x02, ...limits({ min: spec.memoryMin ?? 1 })]]),
    ...section(
      3,
      Array.from({ length: count }, () => [0x00]),
    ),
    ...(spec.table ? section(4, [[0x70, ...limits(spec.table)]]) : []),
    ...section(7, [[...name('_start'), 0x00, 0x00]]),
    ...section(
      10,
      Array.from({ length: count }, () => [0x02, 0x00, 0x0b]),
    ),
  ]);
}
