import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Sqlite from 'better-sqlite3';
import { startTestKernel, type TestKernel } from '@aion/core';
import { forEachDatabase, STORAGE_EXTENSION_DIR, type DatabaseTarget } from '../src/testing.js';
import { FIXTURES, probe } from './probes.js';

/** Rows of a table, read past the storage extension (to check what it wrote). */
async function rawRows(db: DatabaseTarget, sqlitePath: string, sql: string): Promise<any[]> {
  if (db.name === 'sqlite') {
    const conn = new Sqlite(sqlitePath, { readonly: true });
    try {
      return conn.prepare(sql).all();
    } finally {
      conn.close();
    }
  }
  const client = await db.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

forEachDatabase('aion.storage', (db) => {
  let kernel: TestKernel | undefined;
  let dir: string;
  let sqlitePath: string;
  const start = (withV2 = false) =>
    startTestKernel({
      extensions: [STORAGE_EXTENSION_DIR, join(FIXTURES, 'probe-a'), join(FIXTURES, 'probe-b'), join(FIXTURES, 'probe-c'), join(FIXTURES, 'squatter')],
      config: { extensions: { 'aion.storage': db.storageConfig({ sqlite: { path: sqlitePath } }), 'tests.probe-a': { withV2 } } },
    });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'aion-storage-'));
    sqlitePath = join(dir, 'aion.db');
    kernel = await start();
  });
  after(async () => {
    await kernel?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('applies its own and an extension’s migrations on an empty database', async () => {
    const a = await probe(kernel!, 'a', 'migrated');
    assert.deepEqual(a.result, { applied: ['001-notes'] });
    assert.equal(a.prefix, 'tests_probe_a__');
    const own = await rawRows(db, sqlitePath, 'SELECT name FROM aion_storage__migrations');
    assert.deepEqual(
      own.map((r) => r.name),
      ['StorageInit1763769600000', 'NamespaceRoles1796428800000'],
    );
    const theirs = await rawRows(db, sqlitePath, 'SELECT name, timestamp FROM tests_probe_a__typeorm_migrations');
    assert.deepEqual(
      theirs.map((r) => [r.name, Number(r.timestamp)]),
      [['001-notes', 1]],
    );
    if (db.name === 'sqlite') {
      const conn = new Sqlite(sqlitePath, { readonly: true });
      assert.equal(conn.pragma('journal_mode', { simple: true }), 'wal');
      conn.close();
    }
  });

  it('runs statements and transactions in the caller’s namespace, from a shared, a kernel and a dedicated host', async () => {
    const insert = 'INSERT INTO {p}notes (id, body, created_at) VALUES (?, ?, ?)';
    for (const which of ['a', 'b', 'c'] as const) {
      assert.deepEqual((await probe(kernel!, which, 'execute', insert, ['n1', `hello from ${which}`, 1])).result, { rows: [], changes: 1 });
      const rows = (await probe(kernel!, which, 'query', 'SELECT id, body, created_at FROM {p}notes WHERE id = ?', ['n1'])).result;
      assert.deepEqual(rows, [{ id: 'n1', body: `hello from ${which}`, created_at: 1 }]);
    }
    const returning = await probe(kernel!, 'a', 'execute', 'UPDATE {p}notes SET body = ? WHERE id = ? RETURNING id, body', ['edited', 'n1']);
    assert.deepEqual(returning.result, { rows: [{ id: 'n1', body: 'edited' }], changes: 1 });

    const tx = await probe(kernel!, 'a', 'transaction', [
      { sql: insert.replaceAll('{p}', 'tests_probe_a__'), params: ['n2', 'two', 2] },
      { sql: 'SELECT COUNT(*) AS n FROM tests_probe_a__notes' },
    ]);
    assert.deepEqual(tx.result, [
      { rows: [], changes: 1 },
      { rows: [{ n: 2 }], changes: 0 },
    ]);

    const failed = await probe(kernel!, 'a', 'transaction', [
      { sql: insert.replaceAll('{p}', 'tests_probe_a__'), params: ['n3', 'three', 3] },
      { sql: insert.replaceAll('{p}', 'tests_probe_a__'), params: ['n1', 'duplicate', 4] },
    ]);
    assert.equal(failed.error?.code, 'SQL_FAILED');
    assert.equal(failed.error?.details?.constraint, 'unique');
    const count = await probe(kernel!, 'a', 'query', 'SELECT COUNT(*) AS n FROM {p}notes');
    assert.deepEqual(count.result, [{ n: 2 }], 'the failed transaction left nothing behind');

    const dialect = await probe(kernel!, 'a', 'query', { sqlite: "SELECT 'sqlite' AS d", postgres: "SELECT 'postgres' AS d" });
    assert.deepEqual(dialect.result, [{ d: db.name }]);
    const mismatch = await probe(kernel!, 'a', 'query', 'SELECT * FROM {p}notes WHERE id = ?', []);
    assert.equal(mismatch.error?.code, 'BAD_REQUEST');
  });

  it('refuses another extension’s tables and the catalogs', async () => {
    const other = await probe(kernel!, 'b', 'query', 'SELECT * FROM tests_probe_a__notes');
    assert.equal(other.error?.code, 'SQL_REJECTED');
    const storage = await probe(kernel!, 'b', 'query', 'SELECT * FROM aion_storage__state');
    assert.equal(storage.error?.code, 'SQL_REJECTED');
    const catalog = await probe(kernel!, 'b', 'query', db.name === 'sqlite' ? 'SELECT name FROM sqlite_master' : 'SELECT tablename FROM pg_tables');
    assert.equal(catalog.error?.code, 'SQL_REJECTED');
    const unprefixed = await probe(kernel!, 'b', 'execute', 'CREATE TABLE stray (id TEXT)');
    assert.equal(unprefixed.error?.code, 'SQL_REJECTED');
  });

  it('keeps ctx.state per extension', async () => {
    await probe(kernel!, 'a', 'state', 'update', 'settings', { theme: 'dark', n: 1 });
    await probe(kernel!, 'a', 'state', 'update', 'other', [1, 2]);
    assert.deepEqual((await probe(kernel!, 'a', 'state', 'get', 'settings')).result, { theme: 'dark', n: 1 });
    assert.deepEqual((await probe(kernel!, 'a', 'state', 'keys')).result, ['other', 'settings']);
    assert.equal((await probe(kernel!, 'b', 'state', 'get', 'settings')).result, null, 'b does not see a’s state');
    assert.deepEqual((await probe(kernel!, 'b', 'state', 'keys')).result, []);
    await probe(kernel!, 'c', 'state', 'update', 'settings', 'from a dedicated host');
    assert.equal((await probe(kernel!, 'c', 'state', 'get', 'settings')).result, 'from a dedicated host');
    await probe(kernel!, 'a', 'state', 'update', 'other', null);
    assert.deepEqual((await probe(kernel!, 'a', 'state', 'keys')).result, ['settings']);
  });

  it('keeps storage’s own namespace from an extension whose id maps to it', async () => {
    const res = await kernel!.request('/v1/squatter', { method: 'POST' });
    const answer = (await res.json()) as { result?: unknown; error?: { code: string; message: string } };
    assert.equal(answer.result, undefined, 'aion.storage- read the ctx.state of every extension');
    assert.equal(answer.error?.code, 'NAMESPACE_CONFLICT');
    assert.match(answer.error!.message, /holds aion\.storage's own tables; aion\.storage- cannot use it/);
  });

  it('stores objects per extension with atomic writes and refuses keys that escape', async () => {
    const text = Buffer.from('hello objects').toString('base64');
    const put = await probe(kernel!, 'a', 'putObject', 'docs/readme.txt', text);
    assert.equal(put.result.size, 13);
    await probe(kernel!, 'a', 'putObject', 'docs/b.txt', 'plain text', { encoding: 'utf8' });
    await probe(kernel!, 'a', 'putObject', 'img.bin', Buffer.from([0, 1, 2]).toString('base64'));
    assert.deepEqual((await probe(kernel!, 'a', 'getObject', 'docs/b.txt', { encoding: 'utf8' })).result.data, 'plain text');
    assert.deepEqual((await probe(kernel!, 'a', 'getObject', 'docs/readme.txt')).result.data, text);
    assert.deepEqual(
      (await probe(kernel!, 'a', 'listObjects', 'docs/')).result.map((o: { key: string }) => o.key),
      ['docs/b.txt', 'docs/readme.txt'],
    );
    assert.equal((await probe(kernel!, 'b', 'getObject', 'docs/readme.txt')).result, null, 'b does not see a’s objects');
    assert.deepEqual((await probe(kernel!, 'b', 'listObjects')).result, []);
    for (const key of ['../probe-b/x', '/etc/passwd', 'a/../../x', 'a//b', 'C:\\x']) {
      assert.equal((await probe(kernel!, 'a', 'putObject', key, text)).error?.code, 'INVALID_OBJECT_KEY', key);
    }
    assert.equal((await probe(kernel!, 'a', 'deleteObject', 'img.bin')).result, true);
    assert.equal((await probe(kernel!, 'a', 'deleteObject', 'img.bin')).result, false);
    const tmp = join(kernel!.dataDir, 'objects', '.tmp');
    assert.deepEqual(existsSync(tmp) ? readdirSync(tmp) : [], [], 'no temporary files are left behind');
    assert.ok(existsSync(join(kernel!.dataDir, 'objects', 'tests_probe_a', 'docs', 'readme.txt')));
  });

  it('applies only the new migrations on an existing database and keeps its data', async () => {
    await kernel!.stop();
    kernel = await start(true);
    assert.deepEqual((await probe(kernel, 'a', 'migrated')).result, { applied: ['002-tags'] });
    assert.deepEqual((await probe(kernel, 'b', 'migrated')).result, { applied: [] });
    assert.deepEqual((await probe(kernel, 'c', 'migrated')).result, { applied: [] });
    const rows = await probe(kernel, 'a', 'query', 'SELECT id, body, tag FROM {p}notes ORDER BY id');
    assert.deepEqual(rows.result, [
      { id: 'n1', body: 'edited', tag: null },
      { id: 'n2', body: 'two', tag: null },
    ]);
    assert.deepEqual((await probe(kernel, 'a', 'state', 'get', 'settings')).result, { theme: 'dark', n: 1 }, 'state survives a restart');
    const own = await rawRows(db, sqlitePath, 'SELECT name FROM aion_storage__migrations');
    assert.equal(own.length, 2, 'storage’s own migrations ran once');
  });
});

describe('aion.storage: an unreachable database', () => {
  it('stops start-up with one error that names the URL without its password', async () => {
    const url = 'postgres://aion:s3cret-pw@127.0.0.1:1/aion';
    await assert.rejects(
      startTestKernel({
        extensions: [STORAGE_EXTENSION_DIR],
        config: { extensions: { 'aion.storage': { databaseUrl: url, postgres: { connectTimeoutMs: 2000 } } } },
      }),
      (err: Error) => {
        assert.match(err.message, /could not connect to the database at postgres:\/\/aion:\*\*\*@127\.0\.0\.1:1\/aion: .*ECONNREFUSED/);
        assert.doesNotMatch(err.message, /s3cret/);
        return true;
      },
    );
  });
});
