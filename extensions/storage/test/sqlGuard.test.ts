import assert from 'node:assert/strict';
import { SqlGuard, namespaceOf } from '../src/database/sqlGuard.js';

const rejects = (guard: SqlGuard, sql: string, pattern: RegExp) =>
  assert.throws(
    () => guard.check(sql),
    (err: { code?: string; message?: string }) => err.code === 'SQL_REJECTED' && pattern.test(err.message ?? ''),
    `expected ${sql} to be rejected with ${pattern}`,
  );

describe('SqlGuard', () => {
  const sqlite = new SqlGuard('sqlite', 'aion_sessions__');
  const postgres = new SqlGuard('postgres', 'aion_sessions__');

  it('derives namespaces from extension ids', () => {
    assert.equal(namespaceOf('aion.sessions'), 'aion_sessions');
    assert.equal(namespaceOf('acme.my-ext.v2'), 'acme_my_ext_v2');
    assert.equal(namespaceOf('a_.b'), 'a_b');
  });

  it('passes ordinary statements on the own tables and rewrites ? for PostgreSQL', () => {
    const sql = "SELECT s.id, s.title FROM aion_sessions__sessions s WHERE s.owner_id = ? AND s.title <> '?' AND s.id > ? -- ?\nORDER BY s.id";
    assert.equal(sqlite.check(sql).text, sql);
    assert.equal(sqlite.check(sql).paramCount, 2);
    assert.match(postgres.check(sql).text, /owner_id = \$1 AND s\.title <> '\?' AND s\.id > \$2 -- \?/);
    assert.equal(postgres.check('INSERT INTO aion_sessions__m (id) VALUES (?) ON CONFLICT (id) DO NOTHING RETURNING id').paramCount, 1);
    assert.equal(sqlite.check('WITH x AS (SELECT 1 AS n) SELECT n FROM x;').kind, 'WITH');
    assert.equal(postgres.check("SELECT '{}'::text, E'it\\'s', $$a__b$$ AS x FROM aion_sessions__t").kind, 'SELECT');
  });

  it('refuses tables of other namespaces however they are written', () => {
    rejects(sqlite, 'SELECT * FROM aion_auth__users', /outside this extension's namespace/);
    rejects(sqlite, 'SELECT * FROM "aion_auth__users"', /outside/);
    rejects(sqlite, 'SELECT * FROM `AION_AUTH__USERS`', /outside/);
    rejects(sqlite, 'SELECT * FROM [aion_auth__users]', /outside/);
    rejects(sqlite, "SELECT * FROM 'aion_auth__users'", /outside/);
    rejects(sqlite, "SELECT * FROM aion_sessions__a WHERE tag = 'x__y'", /outside/);
    rejects(sqlite, 'SELECT * FROM main.aion_auth__users', /outside/);
    rejects(postgres, 'SELECT * FROM public.aion_auth__users', /outside/);
    rejects(sqlite, 'SELECT * FROM aion_sessions_x__users', /outside/);
    rejects(sqlite, 'SELECT * FROM aion_sessions__a JOIN aion_storage__state ON 1 = 1', /outside/);
    rejects(postgres, 'CREATE TABLE aion_sessions__t (id TEXT REFERENCES aion_auth__users (id))', /outside/);
  });

  it('refuses catalogs, pragmas and functions that run SQL or reach the server', () => {
    rejects(sqlite, 'SELECT name FROM sqlite_master', /not available/);
    rejects(sqlite, "SELECT * FROM pragma_table_info('aion_auth__users')", /not available|outside/);
    rejects(postgres, 'SELECT * FROM information_schema.tables', /not available/);
    rejects(postgres, 'SELECT * FROM pg_catalog.pg_tables', /not available/);
    rejects(postgres, "SELECT query_to_xml('select 1', true, true, '')", /not available/);
    rejects(postgres, "SELECT set_config('search_path', 'x', false)", /not available/);
    rejects(postgres, "SELECT pg_read_file('/etc/passwd')", /not available/);
    rejects(postgres, 'SELECT U&"\\0061ion_auth__users" FROM x', /U& escapes/);
    rejects(sqlite, "SELECT load_extension('x')", /not available/);
  });

  it('allows only the statement kinds an extension needs, one at a time', () => {
    rejects(sqlite, "ATTACH DATABASE 'x.db' AS x", /ATTACH statements are not allowed/);
    rejects(sqlite, 'PRAGMA journal_mode = DELETE', /PRAGMA statements/);
    rejects(postgres, 'SET search_path = aion_auth', /SET statements/);
    rejects(postgres, 'BEGIN', /transaction\(\)/);
    rejects(postgres, 'DO $$ BEGIN END $$', /DO statements/);
    rejects(sqlite, 'DELETE FROM aion_sessions__a; DELETE FROM aion_sessions__b', /one statement per call/);
    rejects(postgres, 'SELECT * INTO aion_sessions__copy FROM aion_sessions__a', /INTO is only allowed in INSERT INTO/);
    rejects(postgres, 'CREATE FUNCTION aion_sessions__f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql', /CREATE FUNCTION is not allowed/);
    rejects(sqlite, 'SELECT * FROM aion_sessions__a WHERE id = :id', /named parameters/);
    rejects(postgres, 'SELECT * FROM aion_sessions__a WHERE id = $1', /use \?/);
  });

  it('refuses statements that change the session’s role or settings, alone or after another', () => {
    for (const sql of [
      'RESET ROLE',
      'reset role',
      'SET ROLE postgres',
      'SET LOCAL ROLE postgres',
      'SET SESSION AUTHORIZATION postgres',
      'RESET SESSION AUTHORIZATION',
      'RESET ALL',
      'SET search_path = public',
      'DISCARD ALL',
      'GRANT SELECT ON aion_sessions__t TO PUBLIC',
    ]) {
      rejects(postgres, sql, /statements are not allowed/);
    }
    rejects(postgres, 'SELECT 1; RESET ROLE', /one statement per call/);
    rejects(postgres, 'SELECT 1 /* ; */ ; SET SESSION AUTHORIZATION postgres', /one statement per call/);
    rejects(postgres, "SELECT set_config('role', 'postgres', false)", /not available/);
    rejects(postgres, 'ALTER TABLE aion_sessions__t OWNER TO postgres', /OWNER is not allowed/);
  });

  it('requires the prefix on everything created, altered or dropped', () => {
    assert.equal(sqlite.check('CREATE TABLE IF NOT EXISTS aion_sessions__t (id TEXT PRIMARY KEY)').kind, 'CREATE');
    assert.equal(postgres.check('CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS aion_sessions__t_x ON aion_sessions__t (x)').kind, 'CREATE');
    assert.equal(postgres.check('CREATE INDEX ON aion_sessions__t (x)').kind, 'CREATE');
    assert.equal(sqlite.check('CREATE TRIGGER aion_sessions__tr AFTER INSERT ON aion_sessions__t BEGIN UPDATE aion_sessions__t SET x = 1; END').kind, 'CREATE');
    assert.equal(postgres.check('ALTER TABLE aion_sessions__t RENAME TO aion_sessions__u').kind, 'ALTER');
    assert.equal(sqlite.check('DROP TABLE IF EXISTS aion_sessions__t').kind, 'DROP');
    rejects(sqlite, 'CREATE TABLE notes (id TEXT)', /must be named aion_sessions__<name>/);
    rejects(sqlite, 'CREATE INDEX notes_idx ON aion_sessions__t (id)', /must be named/);
    rejects(postgres, 'CREATE TABLE other.aion_sessions__t (id TEXT)', /schema-qualified/);
    rejects(postgres, 'ALTER TABLE aion_sessions__t RENAME TO notes', /must be named/);
    rejects(postgres, 'ALTER TABLE aion_sessions__t SET SCHEMA public', /SCHEMA is not allowed/);
    rejects(sqlite, 'DROP TABLE aion_sessions__a, notes', /must be named/);
    rejects(postgres, 'CREATE TRIGGER aion_sessions__tr AFTER INSERT ON aion_sessions__t EXECUTE FUNCTION f()', /CREATE TRIGGER is not allowed/);
  });
});
