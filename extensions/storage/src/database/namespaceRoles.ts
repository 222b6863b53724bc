import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import pg from 'pg';
import { AionError } from '@aion/extension-api';
import { StorageErrorCodes } from '../api.js';

/** What an extension's statements run as on PostgreSQL: its own login role, owner of its own schema. */
export interface NamespaceGrant {
  namespace: string;
  schema: string;
  role: string;
  password: string;
}

export interface ConfinementLog {
  info(message: string): void;
  warn(message: string): void;
}

const MAX_IDENTIFIER = 63;
/** Advisory lock class for provisioning (7301 is the migration lock), so kernels starting together create each role once. */
const PROVISION_LOCK = 7302;
/** pg_class kinds an extension can own, and the statement that moves each. */
const RELATION_VERBS: Record<string, string> = { r: 'TABLE', p: 'TABLE', v: 'VIEW', m: 'MATERIALIZED VIEW', S: 'SEQUENCE', f: 'FOREIGN TABLE' };

/** A sequence owned by a column moves and changes owner with its table, never alone. */
const NOT_OWNED_SEQUENCE = `NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')))`;

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const ident = (name: string) => pg.escapeIdentifier(name);

function unavailable(message: string): never {
  throw new AionError(StorageErrorCodes.CONFINEMENT_UNAVAILABLE, message, { status: 503 });
}

/** A PostgreSQL name of at most 63 bytes: a longer one keeps its start and ends in a hash of the whole. */
export function postgresName(name: string): string {
  if (name.length <= MAX_IDENTIFIER) return name;
  return `${name.slice(0, MAX_IDENTIFIER - 9)}_${sha256(name).slice(0, 8)}`;
}

/**
 * The role and schema name of a namespace. Roles belong to the whole server, not to one database, so
 * the name carries a tag of the database and base schema: two Aion installations on one server (or two
 * test suites in one database) never share a role.
 */
export function namespaceObjectName(database: string, baseSchema: string, namespace: string): string {
  return postgresName(`aion_${sha256(`${database}/${baseSchema}`).slice(0, 6)}_${namespace}`);
}

/**
 * The SCRAM-SHA-256 verifier of a password, as PostgreSQL stores it: sent instead of the password so
 * the clear text never appears in a server log of the CREATE ROLE statement.
 */
export function scramVerifier(password: string, iterations = 4096): string {
  const salt = randomBytes(16);
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const storedKey = createHash('sha256').update(createHmac('sha256', salted).update('Client Key').digest()).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/** The kernel's database URL with the namespace role's credentials instead of the kernel's. */
export function roleUrl(adminUrl: string, grant: NamespaceGrant): string {
  const url = new URL(adminUrl);
  url.username = encodeURIComponent(grant.role);
  url.password = encodeURIComponent(grant.password);
  url.searchParams.delete('user');
  url.searchParams.delete('password');
  return url.toString();
}

/**
 * Gives each extension namespace a PostgreSQL role that owns one schema and holds no other right, so
 * what the SQL guard misses the database refuses. Runs on the kernel's own (administrative) pool.
 */
export class NamespaceRoles {
  constructor(
    private readonly admin: pg.Pool,
    /** `current_database()` */
    private readonly database: string,
    /** Where storage's own tables live, and where a previous release kept every extension's tables. */
    readonly baseSchema: string,
    private readonly log: ConfinementLog,
  ) {}

  private async withClient<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.admin.connect();
    try {
      return await fn(client);
    } finally {
      client.release();
    }
  }

  /** Refuses to start unless the kernel's user can create roles and schemas; stops PUBLIC from creating objects in the base schema. */
  async prepare(): Promise<void> {
    await this.withClient(async (client) => {
      const { rows } = await client.query(
        `SELECT rolname, rolsuper, rolcreaterole, has_database_privilege(current_database(), 'CREATE') AS can_create_schema FROM pg_roles WHERE rolname = current_user`,
      );
      const me = rows[0] as { rolname: string; rolsuper: boolean; rolcreaterole: boolean; can_create_schema: boolean };
      const optOut = 'or set extensions["aion.storage"].postgres.confinement to "guard" to rely on the SQL guard alone';
      if (!me.rolsuper && !me.rolcreaterole) {
        unavailable(
          `the database user ${me.rolname} may not create roles, so aion.storage cannot give each extension a role of its own: run ALTER ROLE ${ident(me.rolname)} CREATEROLE, ${optOut}`,
        );
      }
      if (!me.can_create_schema) {
        unavailable(
          `the database user ${me.rolname} may not create schemas in ${this.database}, so aion.storage cannot give each extension a schema of its own: run GRANT CREATE ON DATABASE ${ident(this.database)} TO ${ident(me.rolname)}, ${optOut}`,
        );
      }
      const open = await client.query(`SELECT has_schema_privilege('public', $1, 'CREATE') AS open`, [this.baseSchema]);
      if (open.rows[0]?.open) {
        try {
          await client.query(`REVOKE CREATE ON SCHEMA ${ident(this.baseSchema)} FROM PUBLIC`);
        } catch (err) {
          unavailable(
            `every role may create objects in the schema ${this.baseSchema} (where Aion's own tables are) and ${me.rolname} cannot revoke that (${(err as Error).message}): run REVOKE CREATE ON SCHEMA ${ident(this.baseSchema)} FROM PUBLIC as its owner`,
          );
        }
        this.log.warn(
          `revoked CREATE on the schema ${this.baseSchema} from PUBLIC: every role could create objects there (the default before PostgreSQL 15), extension roles included`,
        );
      }
    });
  }

  /** Storage's own tables are the kernel user's alone, even where someone granted them to PUBLIC. */
  async secureOwnTables(prefix: string): Promise<void> {
    await this.withClient(async (client) => {
      const { rows } = await client.query(
        `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND left(c.relname, length($2)) = $2 AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
           AND has_table_privilege('public', c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')`,
        [this.baseSchema, prefix],
      );
      for (const { relname } of rows as Array<{ relname: string }>) {
        await client.query(`REVOKE ALL ON TABLE ${ident(this.baseSchema)}.${ident(relname)} FROM PUBLIC`);
        this.log.warn(`revoked the rights PUBLIC held on ${this.baseSchema}.${relname}`);
      }
    });
  }

  /**
   * Creates (once) the namespace's role and schema, records them in its `aion_storage__namespaces` row
   * (which must exist), and moves tables a previous release left in the base schema into the new one.
   */
  async provision(namespace: string, prefix: string): Promise<NamespaceGrant> {
    return this.withClient(async (client) => {
      await client.query('SELECT pg_advisory_lock($1, hashtext($2))', [PROVISION_LOCK, namespace]);
      try {
        const table = `${ident(this.baseSchema)}.aion_storage__namespaces`;
        const { rows } = await client.query(`SELECT db_schema, db_role, db_password FROM ${table} WHERE namespace = $1`, [namespace]);
        const recorded = rows[0] as { db_schema: string | null; db_role: string | null; db_password: string | null } | undefined;
        if (!recorded) throw new Error(`the namespace ${namespace} is not registered`);
        const name = namespaceObjectName(this.database, this.baseSchema, namespace);
        const grant: NamespaceGrant = {
          namespace,
          role: recorded.db_role ?? name,
          schema: recorded.db_schema ?? name,
          password: recorded.db_password ?? randomBytes(24).toString('base64url'),
        };
        await this.ensureRole(client, grant, recorded.db_password === null);
        await this.ensureSchema(client, grant);
        // Only a namespace that never had a schema of its own can have tables beside storage's.
        if (recorded.db_schema === null) await this.moveLegacyRelations(client, grant, prefix);
        await this.adoptRelations(client, grant);
        if (recorded.db_role === null || recorded.db_schema === null || recorded.db_password === null) {
          await client.query(`UPDATE ${table} SET db_schema = $2, db_role = $3, db_password = $4 WHERE namespace = $1`, [
            namespace,
            grant.schema,
            grant.role,
            grant.password,
          ]);
        }
        return grant;
      } finally {
        await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [PROVISION_LOCK, namespace]).catch(() => undefined);
      }
    });
  }

  /** Sets the recorded password again (a restored backup, a role recreated by hand). */
  async resetPassword(grant: NamespaceGrant): Promise<void> {
    await this.withClient((client) => client.query(`ALTER ROLE ${ident(grant.role)} PASSWORD ${pg.escapeLiteral(scramVerifier(grant.password))}`));
  }

  private async ensureRole(client: pg.PoolClient, grant: NamespaceGrant, newPassword: boolean): Promise<void> {
    const { rows } = await client.query(
      `SELECT r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolreplication, r.rolbypassrls, r.rolcanlogin,
              ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid ORDER BY 1) AS member_of
       FROM pg_roles r WHERE r.rolname = $1`,
      [grant.role],
    );
    const verifier = () => pg.escapeLiteral(scramVerifier(grant.password));
    const existing = rows[0] as
      | {
          rolsuper: boolean;
          rolcreaterole: boolean;
          rolcreatedb: boolean;
          rolreplication: boolean;
          rolbypassrls: boolean;
          rolcanlogin: boolean;
          member_of: string[];
        }
      | undefined;
    if (!existing) {
      try {
        await client.query(
          `CREATE ROLE ${ident(grant.role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS PASSWORD ${verifier()}`,
        );
      } catch (err) {
        // Created meanwhile by a kernel of another database on this server: fall through to the checks.
        if ((err as { code?: string }).code !== '42710' && (err as { code?: string }).code !== '23505') throw err;
        return this.ensureRole(client, grant, true);
      }
      const { rows: me } = await client.query('SELECT rolsuper FROM pg_roles WHERE rolname = current_user');
      // A non-superuser creates the schema for the role and changes owners to it only as its member.
      if (!me[0]?.rolsuper) await client.query(`GRANT ${ident(grant.role)} TO CURRENT_USER`);
      return;
    }
    const extra = [
      existing.rolsuper && 'SUPERUSER',
      existing.rolcreaterole && 'CREATEROLE',
      existing.rolcreatedb && 'CREATEDB',
      existing.rolreplication && 'REPLICATION',
      existing.rolbypassrls && 'BYPASSRLS',
      ...existing.member_of.map((g) => `membership of ${g}`),
    ].filter(Boolean);
    if (extra.length > 0) {
      unavailable(
        `the role ${grant.role} of the namespace ${grant.namespace} holds rights beyond its schema (${extra.join(', ')}); aion.storage will not run the extension's SQL as it until an operator removes them`,
      );
    }
    if (!existing.rolcanlogin) await client.query(`ALTER ROLE ${ident(grant.role)} LOGIN`);
    if (newPassword) await client.query(`ALTER ROLE ${ident(grant.role)} PASSWORD ${verifier()}`);
  }

  private async ensureSchema(client: pg.PoolClient, grant: NamespaceGrant): Promise<void> {
    const { rows } = await client.query(
      `SELECT pg_get_userbyid(nspowner) AS owner, has_schema_privilege('public', oid, 'USAGE, CREATE') AS public_access FROM pg_namespace WHERE nspname = $1`,
      [grant.schema],
    );
    const existing = rows[0] as { owner: string; public_access: boolean } | undefined;
    if (!existing) await client.query(`CREATE SCHEMA ${ident(grant.schema)} AUTHORIZATION ${ident(grant.role)}`);
    else if (existing.owner !== grant.role) await client.query(`ALTER SCHEMA ${ident(grant.schema)} OWNER TO ${ident(grant.role)}`);
    if (existing?.public_access) await client.query(`REVOKE ALL ON SCHEMA ${ident(grant.schema)} FROM PUBLIC`);
  }

  /**
   * Every table, view and sequence in the namespace's schema is its role's: one restored from a dump
   * taken with --no-owner, or created there by hand, would otherwise be out of the extension's reach.
   */
  private async adoptRelations(client: pg.PoolClient, grant: NamespaceGrant): Promise<void> {
    const { rows } = await client.query(
      `SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = $1 AND c.relowner <> $2::regrole AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND ${NOT_OWNED_SEQUENCE}
       ORDER BY c.relname`,
      [grant.schema, grant.role],
    );
    for (const { relname, relkind } of rows as Array<{ relname: string; relkind: string }>) {
      await client.query(`ALTER ${RELATION_VERBS[relkind]!} ${ident(grant.schema)}.${ident(relname)} OWNER TO ${ident(grant.role)}`);
    }
    if (rows.length > 0) this.log.warn(`gave ${rows.length} relation(s) in ${grant.schema} that another role owned back to ${grant.role}`);
  }

  /**
   * Tables, views and sequences named with the prefix in the base schema (where the previous release
   * kept them) move, with their indexes and owned sequences, into the namespace's schema and become
   * its role's, in one transaction.
   */
  private async moveLegacyRelations(client: pg.PoolClient, grant: NamespaceGrant, prefix: string): Promise<void> {
    if (grant.schema === this.baseSchema) return;
    const { rows } = await client.query(
      `SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = $1 AND left(c.relname, length($2)) = $2 AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND ${NOT_OWNED_SEQUENCE}
       ORDER BY c.relname`,
      [this.baseSchema, prefix],
    );
    if (rows.length === 0) return;
    await client.query('BEGIN');
    try {
      for (const { relname, relkind } of rows as Array<{ relname: string; relkind: string }>) {
        const verb = RELATION_VERBS[relkind]!;
        await client.query(`ALTER ${verb} ${ident(this.baseSchema)}.${ident(relname)} SET SCHEMA ${ident(grant.schema)}`);
        await client.query(`ALTER ${verb} ${ident(grant.schema)}.${ident(relname)} OWNER TO ${ident(grant.role)}`);
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
    this.log.info(
      `moved ${rows.length} relation(s) of ${grant.namespace} from ${this.baseSchema} into its own schema ${grant.schema}, owned by its role ${grant.role}`,
    );
  }
}
