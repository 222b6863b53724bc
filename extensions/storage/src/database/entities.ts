import 'reflect-metadata';
import { Column, Entity, PrimaryColumn, type ValueTransformer } from 'typeorm';

/** BIGINT milliseconds arrive as strings from PostgreSQL's driver; the entities speak numbers. */
const milliseconds: ValueTransformer = { to: (v: number) => v, from: (v: string | number | null) => (v === null ? null : Number(v)) };

/** Which extension owns which namespace; a second extension that maps to the same name is refused. */
@Entity({ name: 'aion_storage__namespaces' })
export class NamespaceEntry {
  @PrimaryColumn({ type: 'varchar', length: 64 })
  namespace!: string;

  @Column({ name: 'extension_id', type: 'varchar', length: 214, unique: true })
  extensionId!: string;

  @Column({ name: 'created_at', type: 'bigint', transformer: milliseconds })
  createdAt!: number;

  /** PostgreSQL with `role` confinement: the schema that holds the namespace's tables. */
  @Column({ name: 'db_schema', type: 'varchar', length: 63, nullable: true })
  dbSchema?: string | null;

  /** …and the login role that owns it, as which every statement of the namespace runs. */
  @Column({ name: 'db_role', type: 'varchar', length: 63, nullable: true })
  dbRole?: string | null;

  /** The role's password, generated once; only the kernel's database user can read this table. */
  @Column({ name: 'db_password', type: 'varchar', length: 64, nullable: true, select: false })
  dbPassword?: string | null;
}

/** One key of one extension's `ctx.state`, as JSON text. */
@Entity({ name: 'aion_storage__state' })
export class StateEntry {
  @PrimaryColumn({ name: 'extension_id', type: 'varchar', length: 214 })
  extensionId!: string;

  @PrimaryColumn({ name: 'state_key', type: 'varchar', length: 512 })
  key!: string;

  @Column({ type: 'text' })
  value!: string;

  @Column({ name: 'updated_at', type: 'bigint', transformer: milliseconds })
  updatedAt!: number;
}
