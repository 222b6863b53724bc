import { TableColumn, type MigrationInterface, type QueryRunner } from 'typeorm';

/** PostgreSQL: the schema, login role and role password of each namespace (null on SQLite and under `guard`). */
export class NamespaceRoles1796428800000 implements MigrationInterface {
  name = 'NamespaceRoles1796428800000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.addColumns('aion_storage__namespaces', [
      new TableColumn({ name: 'db_schema', type: 'varchar', length: '63', isNullable: true }),
      new TableColumn({ name: 'db_role', type: 'varchar', length: '63', isNullable: true }),
      new TableColumn({ name: 'db_password', type: 'varchar', length: '64', isNullable: true }),
    ]);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropColumns('aion_storage__namespaces', ['db_password', 'db_role', 'db_schema']);
  }
}
