import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { DataSource } from 'typeorm';
import { startTestKernel, type TestKernel } from '@aion/core';
import type { NamespaceInfo } from '../src/api.js';
import { Database } from '../src/database/database.js';
import { StorageInit1763769600000 } from '../src/database/migrations/1763769600000-StorageInit.js';
import { dropSchema, forEachDatabase, newSchemaName, POSTGRES_TEST_URL, probePostgres, requireServer, STORAGE_EXTENSION_DIR } from '../src/testing.js';
import { FIXTURES, probe } from './probes.js';

const ident = (name: string) => pg.escapeIdentifier(name);
const silent = { info: () => undefined, warn: () => undefined };
/** A statement as the guard would hand it on, for the tests that go around the guard. */
const unguarded = (text: string) => ({ text, paramCount: 0, kind: text.trim().split(/\s+/)[0]!.toUpperCase() });

function refusedByTheDatabase(sql: string) {
  return (err: { code?: string; message?: string }) => {
    assert.equal(err.code, 'PERMISSION_DENIED', `${sql}: ${err.code} ${err.message}`);
    assert.match(err.message ?? '', /tests_probe_a may use only the objects in its own schema/);
    assert.doesNotMatch(err.message ?? '', /permission denied|must be/, 'the server’s own text stays out of the message');
    return true;
  };
}

forEachDatabase(
  'aion.storage: a PostgreSQL role and schema per namespace',
  (db) => {
    let kernel: TestKernel | undefined;
    let admin: pg.Client | undefined;
    let a: NamespaceInfo;
    let b: NamespaceInfo;
    let roleA: string;
    const start = (postgres: Record<string, unknown> = {}) =>
      startTestKernel({
        extensions: [STORAGE_EXTENSION_DIR, join(FIXTURES, 'probe-a'), join(FIXTURES, 'probe-b')],
        config: { extensions: { 'aion.storage': db.storageConfig({ postgres }) } },
      });

    before(async () => {
      kernel = await start();
      a = (await probe(kernel, 'a', 'namespace')).result;
      b = (await probe(kernel, 'b', 'namespace')).result;
      admin = await db.connect();
      roleA = (await admin.query(`SELECT db_role FROM ${ident(db.schema!)}.aion_storage__namespaces WHERE namespace = 'tests_probe_a'`)).rows[0].db_role;
    });
    after(async () => {
      await admin?.end();
      await kernel?.stop();
    });

    it('gives each extension a login role that owns its own schema and holds nothing else', async () => {
      assert.equal(a.confinement, 'role');
      assert.ok(a.schema && b.schema && a.schema !== b.schema && a.schema !== db.schema, JSON.stringify([a, b]));
      const recorded = await admin!.query(`SELECT namespace, db_schema, db_role FROM ${ident(db.schema!)}.aion_storage__namespaces ORDER BY namespace`);
      assert.deepEqual(
        recorded.rows.map((r) => [r.namespace, r.db_schema, r.db_role]),
        [
          ['tests_probe_a', a.schema, a.schema],
          ['tests_probe_b', b.schema, b.schema],
        ],
      );
      const role = await admin!.query(
        `SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolinherit,
                NOT EXISTS (SELECT 1 FROM pg_auth_members WHERE member = pg_roles.oid) AS member_of_nothing
         FROM pg_roles WHERE rolname = $1`,
        [roleA],
      );
      assert.deepEqual(role.rows[0], {
        rolcanlogin: true,
        rolsuper: false,
        rolcreaterole: false,
        rolcreatedb: false,
        rolreplication: false,
        rolbypassrls: false,
        rolinherit: false,
        member_of_nothing: true,
      });
      const owner = await admin!.query('SELECT pg_get_userbyid(nspowner) AS owner FROM pg_namespace WHERE nspname = $1', [a.schema]);
      assert.equal(owner.rows[0].owner, roleA);
      const rights = await admin!.query(
        `SELECT has_schema_privilege($1, $2, 'USAGE, CREATE') AS own_schema,
                has_schema_privilege($1, $3, 'USAGE, CREATE') AS other_schema,
                has_schema_privilege($1, $4, 'USAGE, CREATE') AS base_schema,
                has_schema_privilege($1, 'public', 'CREATE') AS create_in_public,
                has_table_privilege($1, $5, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE') AS other_table,
                has_table_privilege($1, $6, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE') AS storage_table`,
        [roleA, a.schema, b.schema, db.schema, `${b.schema}.tests_probe_b__notes`, `${db.schema}.aion_storage__state`],
      );
      assert.deepEqual(rights.rows[0], {
        own_schema: true,
        other_schema: false,
        base_schema: false,
        create_in_public: false,
        other_table: false,
        storage_table: false,
      });
    });

    it('runs each extension’s migrations in its own schema, as its role', async () => {
      const relations = await admin!.query(
        `SELECT n.nspname AS schema, c.relname AS name, c.relkind AS kind, pg_get_userbyid(c.relowner) AS owner
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY($1) AND c.relname LIKE 'tests\\_probe\\_%' ORDER BY 1, 2`,
        [[db.schema, a.schema, b.schema]],
      );
      const ofA = relations.rows.filter((r) => r.schema === a.schema);
      assert.deepEqual(
        ofA.map((r) => [r.name, r.kind, r.owner]),
        [
          ['tests_probe_a__notes', 'r', roleA],
          ['tests_probe_a__notes_created', 'i', roleA],
          ['tests_probe_a__notes_pkey', 'i', roleA],
          ['tests_probe_a__typeorm_migrations', 'r', roleA],
          ['tests_probe_a__typeorm_migrations_id_seq', 'S', roleA],
        ],
      );
      assert.deepEqual(
        relations.rows.filter((r) => r.schema === db.schema),
        [],
        'nothing of an extension lives beside storage’s own tables',
      );
      assert.deepEqual((await probe(kernel!, 'a', 'query', 'SELECT current_user AS who')).result, [{ who: roleA }]);
    });

    it('refuses a hostile extension that slips past the guard, with PERMISSION_DENIED, and keeps serving', async () => {
      assert.deepEqual((await probe(kernel!, 'b', 'execute', 'CREATE SEQUENCE {p}counter')).result, { rows: [], changes: 0 });
      assert.deepEqual((await probe(kernel!, 'b', 'query', "SELECT nextval('{p}counter') AS n")).result, [{ n: 1 }]);
      // The guard reads no string literal on PostgreSQL, so a sequence named in one gets past it.
      const unqualified = await probe(kernel!, 'a', 'query', "SELECT setval('tests_probe_b__counter', 1000) AS n");
      assert.equal(unqualified.error?.code, 'SQL_FAILED', 'outside its search path, the name means nothing');
      assert.match(unqualified.error!.message, /does not exist/);
      // …and no token check can see a name that arrives as a parameter.
      const attempts: Array<[string, string[]]> = [
        [`SELECT setval('${b.schema}.tests_probe_b__counter', 1000) AS n`, []],
        [`SELECT nextval('${b.schema}.tests_probe_b__counter') AS n`, []],
        ['SELECT setval(?, 1000) AS n', ['tests_probe_b__counter']],
        ['SELECT setval(?, 1000) AS n', [`${b.schema}.tests_probe_b__counter`]],
      ];
      for (const [sql, params] of attempts) {
        const answer = await probe(kernel!, 'a', 'query', sql, params);
        assert.ok(answer.error, `${sql} ${params} ran: ${JSON.stringify(answer.result)}`);
        if (params[0] === 'tests_probe_b__counter') assert.equal(answer.error.code, 'SQL_FAILED');
        else refusedByTheDatabase(sql)(answer.error);
      }
      const edge = await kernel!.request('/v1/probe-a', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ op: 'execute', args: [`SELECT setval('${b.schema}.tests_probe_b__counter', 1000)`], rethrow: true }),
      });
      const body = (await edge.json()) as { error: { code: string; message: string } };
      assert.equal(edge.status, 403, JSON.stringify(body));
      assert.equal(body.error.code, 'PERMISSION_DENIED');
      assert.doesNotMatch(body.error.message, /permission denied/);
      assert.deepEqual((await probe(kernel!, 'b', 'query', 'SELECT last_value AS n FROM {p}counter')).result, [{ n: 1 }], 'b’s sequence is untouched');
      assert.deepEqual((await probe(kernel!, 'a', 'query', 'SELECT COUNT(*) AS n FROM {p}notes')).result, [{ n: 0 }], 'a still reaches its own tables');
    });

    it('refuses, at the database, every statement of the lower layer that reaches outside the namespace', async () => {
      assert.deepEqual((await probe(kernel!, 'b', 'execute', "INSERT INTO {p}notes (id, body, created_at) VALUES ('b1', 'of b', 1)")).result, {
        rows: [],
        changes: 1,
      });
      const database = await Database.open({
        url: POSTGRES_TEST_URL,
        sqlitePath: '',
        busyTimeoutMs: 5_000,
        checkpointIntervalMs: 1_000,
        poolSize: 1,
        connectTimeoutMs: 5_000,
        schema: db.schema,
        confinement: 'role',
        namespacePoolSize: 1,
        log: silent,
      });
      try {
        const namespaceA = await database.openNamespace('tests_probe_a', 'tests_probe_a__');
        assert.deepEqual((await namespaceA.run(unguarded('SELECT COUNT(*) AS n FROM tests_probe_a__notes'))).rows, [{ n: 0 }]);
        const outside = [
          `SELECT * FROM ${b.schema}.tests_probe_b__notes`,
          `INSERT INTO ${b.schema}.tests_probe_b__notes (id, body, created_at) VALUES ('a1', 'from a', 1)`,
          `UPDATE ${b.schema}.tests_probe_b__notes SET body = 'from a'`,
          `DELETE FROM ${b.schema}.tests_probe_b__notes`,
          `TRUNCATE ${b.schema}.tests_probe_b__notes`,
          `ALTER TABLE ${b.schema}.tests_probe_b__notes ADD COLUMN stolen TEXT`,
          `DROP TABLE ${b.schema}.tests_probe_b__notes`,
          `SELECT * FROM ${db.schema}.aion_storage__state`,
          `SELECT db_role, db_password FROM ${db.schema}.aion_storage__namespaces`,
          `CREATE TABLE ${db.schema}.tests_probe_a__squat (id INTEGER)`,
          'CREATE TABLE public.tests_probe_a__squat (id INTEGER)',
          'CREATE SCHEMA tests_probe_a__more',
          'SET ROLE postgres',
          'SET SESSION AUTHORIZATION postgres',
          `ALTER ROLE ${ident(roleA)} SUPERUSER`,
          `ALTER ROLE ${ident(roleA)} CREATEROLE`,
          'CREATE ROLE tests_probe_a__friend',
          `GRANT ${ident(b.schema!)} TO ${ident(roleA)}`,
          "SELECT pg_read_file('/etc/hostname')",
        ];
        for (const sql of outside) await assert.rejects(namespaceA.run(unguarded(sql)), refusedByTheDatabase(sql));
        // RESET ROLE goes back to the session's user, which is the namespace's role itself.
        const [, whoAmI] = await namespaceA.batch([
          { statement: unguarded('RESET ROLE'), params: [] },
          { statement: unguarded('SELECT current_user AS who, session_user AS session'), params: [] },
        ]);
        assert.deepEqual(whoAmI!.rows, [{ who: roleA, session: roleA }]);
        await assert.rejects(
          namespaceA.batch([
            { statement: unguarded('RESET SESSION AUTHORIZATION'), params: [] },
            { statement: unguarded(`SET search_path TO ${b.schema}, ${db.schema}`), params: [] },
            { statement: unguarded(`SELECT * FROM ${b.schema}.tests_probe_b__notes`), params: [] },
          ]),
          refusedByTheDatabase('RESET SESSION AUTHORIZATION; SELECT … FROM b'),
        );
      } finally {
        await database.close();
      }
      assert.deepEqual((await probe(kernel!, 'b', 'query', 'SELECT id, body FROM {p}notes')).result, [{ id: 'b1', body: 'of b' }], 'b’s table is as b left it');
    });

    it('creates each role and schema once, reuses them across restarts, and takes back at start what another role was given', async () => {
      const catalog = async () =>
        (
          await admin!.query(
            `SELECT r.rolname, r.oid::text AS role_oid, s.rolpassword, n.nspname, n.oid::text AS schema_oid
             FROM ${ident(db.schema!)}.aion_storage__namespaces ns JOIN pg_roles r ON r.rolname = ns.db_role
             JOIN pg_authid s ON s.oid = r.oid JOIN pg_namespace n ON n.nspname = ns.db_schema ORDER BY 1`,
          )
        ).rows;
      const first = await catalog();
      assert.equal(first.length, 2);
      assert.match(first[0].rolpassword, /^SCRAM-SHA-256\$4096:/, 'only a verifier reached the server');
      await kernel!.stop();
      await assert.rejects(start({ confinement: 'guard' }), /already live in schemas of their own roles .* set postgres\.confinement back to "role"/);
      // As a restore with --no-owner leaves it: a table of b's owned by someone else.
      await admin!.query(`ALTER TABLE ${ident(b.schema!)}.tests_probe_b__notes OWNER TO CURRENT_USER`);
      // As a database older than PostgreSQL 15, or a careless grant, leaves it.
      await admin!.query(`GRANT CREATE, USAGE ON SCHEMA ${ident(db.schema!)} TO PUBLIC`);
      await admin!.query(`GRANT SELECT ON TABLE ${ident(db.schema!)}.aion_storage__state TO PUBLIC`);
      kernel = await start();
      const opened = await admin!.query(
        `SELECT has_schema_privilege('public', $1, 'CREATE') AS create_in_base, has_table_privilege('public', $2, 'SELECT') AS read_state`,
        [db.schema, `${db.schema}.aion_storage__state`],
      );
      assert.deepEqual(opened.rows[0], { create_in_base: false, read_state: false }, 'storage took back what PUBLIC was given');
      assert.deepEqual((await probe(kernel, 'a', 'migrated')).result, { applied: [] });
      assert.deepEqual((await probe(kernel, 'b', 'query', 'SELECT id FROM {p}notes')).result, [{ id: 'b1' }]);
      assert.deepEqual(await catalog(), first, 'the same roles, passwords and schemas');
    });

    it('will not run an extension’s SQL as a role that gained a right, and keeps serving the others', async () => {
      await admin!.query(`ALTER ROLE ${ident(roleA)} CREATEDB`);
      await kernel!.stop();
      kernel = await start();
      const res = await kernel.request('/v1/probe-a', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ op: 'namespace' }),
      });
      const body = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(res.status, 503, JSON.stringify(body));
      assert.match(body.error.message, /the role \S+ of the namespace tests_probe_a holds rights beyond its schema \(CREATEDB\)/);
      assert.deepEqual((await probe(kernel, 'b', 'query', 'SELECT id FROM {p}notes')).result, [{ id: 'b1' }]);
    });
  },
  { only: ['postgres'] },
);

forEachDatabase(
  'aion.storage: upgrading a PostgreSQL database of the previous release',
  (db) => {
    let kernel: TestKernel | undefined;
    after(async () => kernel?.stop());

    it('moves the tables it kept beside storage’s into the extension’s schema, owned by its role, and keeps data and applied migrations', async () => {
      const admin = await db.connect();
      try {
        await admin.query(`CREATE SCHEMA ${ident(db.schema!)}`);
        // The previous release: storage's first migration, and the extension's tables in the same schema.
        const previous = new DataSource({
          type: 'postgres',
          url: POSTGRES_TEST_URL,
          schema: db.schema,
          migrations: [StorageInit1763769600000],
          migrationsTableName: 'aion_storage__migrations',
          extra: { options: `-c search_path=${db.schema}` },
        });
        await previous.initialize();
        await previous.runMigrations();
        await previous.destroy();
        for (const sql of [
          "INSERT INTO aion_storage__namespaces (namespace, extension_id, created_at) VALUES ('tests_probe_a', 'tests.probe-a', 1)",
          'CREATE TABLE tests_probe_a__notes (id VARCHAR(36) PRIMARY KEY, body TEXT NOT NULL, created_at BIGINT NOT NULL)',
          'CREATE INDEX tests_probe_a__notes_created ON tests_probe_a__notes (created_at)',
          'CREATE TABLE tests_probe_a__typeorm_migrations (id SERIAL NOT NULL PRIMARY KEY, timestamp BIGINT NOT NULL, name VARCHAR NOT NULL)',
          "INSERT INTO tests_probe_a__typeorm_migrations (timestamp, name) VALUES (1, '001-notes')",
          "INSERT INTO tests_probe_a__notes (id, body, created_at) VALUES ('n1', 'kept', 1)",
          'CREATE SEQUENCE tests_probe_a__counter',
          'CREATE VIEW tests_probe_a__recent AS SELECT id FROM tests_probe_a__notes',
        ]) {
          await admin.query(sql);
        }

        kernel = await startTestKernel({
          extensions: [STORAGE_EXTENSION_DIR, join(FIXTURES, 'probe-a')],
          config: { extensions: { 'aion.storage': db.storageConfig(), 'tests.probe-a': { withV2: true } } },
        });
        assert.deepEqual((await probe(kernel, 'a', 'migrated')).result, { applied: ['002-tags'] }, '001-notes is not applied again');
        const info: NamespaceInfo = (await probe(kernel, 'a', 'namespace')).result;
        assert.deepEqual((await probe(kernel, 'a', 'query', 'SELECT id, body, tag FROM {p}notes')).result, [{ id: 'n1', body: 'kept', tag: null }]);
        assert.deepEqual((await probe(kernel, 'a', 'query', 'SELECT id FROM {p}recent')).result, [{ id: 'n1' }]);
        assert.deepEqual((await probe(kernel, 'a', 'query', "SELECT nextval('{p}counter') AS n")).result, [{ n: 1 }]);

        const relations = await admin.query(
          `SELECT n.nspname AS schema, c.relname AS name, pg_get_userbyid(c.relowner) AS owner
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = ANY($1) AND c.relname LIKE 'tests\\_probe\\_a\\_\\_%' ORDER BY 2`,
          [[db.schema, info.schema]],
        );
        assert.deepEqual(
          relations.rows.map((r) => [r.schema, r.name, r.owner]),
          [
            'tests_probe_a__counter',
            'tests_probe_a__notes',
            'tests_probe_a__notes_created',
            'tests_probe_a__notes_pkey',
            'tests_probe_a__recent',
            'tests_probe_a__typeorm_migrations',
            'tests_probe_a__typeorm_migrations_id_seq',
            'tests_probe_a__typeorm_migrations_pkey',
          ].map((name) => [info.schema, name, info.schema]),
        );
      } finally {
        await admin.end();
      }
    });
  },
  { only: ['postgres'] },
);

describe('aion.storage: the rights of the kernel’s PostgreSQL user', function () {
  const suffix = randomBytes(4).toString('hex');
  const plain = `aion_test_plain_${suffix}`;
  const manager = `aion_test_manager_${suffix}`;
  const plainSchema = newSchemaName();
  const managerSchema = newSchemaName();
  let superuser: pg.Client | undefined;
  let kernel: TestKernel | undefined;
  const urlAs = (user: string) => Object.assign(new URL(POSTGRES_TEST_URL), { username: user, password: '' }).toString();
  const start = (user: string, schema: string, extra: Record<string, unknown> = {}) =>
    startTestKernel({
      extensions: [STORAGE_EXTENSION_DIR, join(FIXTURES, 'probe-a'), join(FIXTURES, 'probe-b')],
      config: { extensions: { 'aion.storage': { databaseUrl: urlAs(user), postgres: { schema, ...extra } } } },
    });

  before(async function () {
    this.timeout(10_000);
    requireServer(this, `PostgreSQL at ${POSTGRES_TEST_URL}`, await probePostgres());
    superuser = new pg.Client({ connectionString: POSTGRES_TEST_URL });
    await superuser.connect();
    const database = ident((await superuser.query('SELECT current_database() AS d')).rows[0].d);
    await superuser.query(`CREATE ROLE ${plain} LOGIN`);
    await superuser.query(`CREATE SCHEMA ${plainSchema} AUTHORIZATION ${plain}`);
    await superuser.query(`CREATE ROLE ${manager} LOGIN CREATEROLE`);
    await superuser.query(`GRANT CREATE ON DATABASE ${database} TO ${manager}`);
    await superuser.query(`CREATE SCHEMA ${managerSchema} AUTHORIZATION ${manager}`);
  });
  afterEach(async () => {
    await kernel?.stop();
    kernel = undefined;
  });
  after(async () => {
    if (!superuser) return;
    await dropSchema(plainSchema);
    await dropSchema(managerSchema);
    for (const role of [plain, manager]) {
      await superuser.query(`DROP OWNED BY ${role}`);
      await superuser.query(`DROP ROLE ${role}`);
    }
    await superuser.end();
  });

  it('refuses to start when the user may not create roles, naming both ways out', async () => {
    await assert.rejects(start(plain, plainSchema), (err: Error) => {
      assert.match(
        err.message,
        new RegExp(`the database user ${plain} may not create roles.*ALTER ROLE "${plain}" CREATEROLE.*postgres\\.confinement to "guard"`),
      );
      return true;
    });
    kernel = await start(plain, plainSchema, { confinement: 'guard' });
    const info: NamespaceInfo = (await probe(kernel, 'a', 'namespace')).result;
    assert.deepEqual([info.confinement, info.schema], ['guard', plainSchema]);
    assert.deepEqual((await probe(kernel, 'a', 'query', 'SELECT current_user AS who')).result, [{ who: plain }], 'with guard, SQL runs as the kernel’s user');
    // Both namespaces share the kernel's pool: their prepared statements must not take each other's names.
    for (let i = 0; i < 3; i++) {
      assert.deepEqual((await probe(kernel, 'b', 'query', 'SELECT COUNT(*) AS n FROM {p}notes')).result, [{ n: 0 }]);
      assert.deepEqual((await probe(kernel, 'a', 'query', "SELECT 'a' AS who")).result, [{ who: 'a' }]);
    }
  });

  it('gives roles with a user that may create roles without being a superuser', async () => {
    kernel = await start(manager, managerSchema);
    const info: NamespaceInfo = (await probe(kernel, 'a', 'namespace')).result;
    assert.equal(info.confinement, 'role');
    assert.deepEqual((await probe(kernel, 'a', 'query', 'SELECT current_user AS who')).result, [{ who: info.schema }]);
    assert.deepEqual((await probe(kernel, 'a', 'migrated')).result, { applied: ['001-notes'] });
    const refused = await probe(kernel, 'a', 'query', `SELECT setval('${managerSchema}.aion_storage__migrations_id_seq', 1) AS n`);
    assert.equal(refused.error?.code, 'PERMISSION_DENIED', JSON.stringify(refused));
  });
});
