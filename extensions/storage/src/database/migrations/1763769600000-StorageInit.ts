import { Table, type MigrationInterface, type QueryRunner } from 'typeorm';

/** Storage's own tables: the namespace registry and ctx.state. */
export class StorageInit1763769600000 implements MigrationInterface {
  name = 'StorageInit1763769600000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(
      new Table({
        name: 'aion_storage__namespaces',
        columns: [
          { name: 'namespace', type: 'varchar', length: '64', isPrimary: true },
          { name: 'extension_id', type: 'varchar', length: '214', isUnique: true },
          { name: 'created_at', type: 'bigint' },
        ],
      }),
    );
    await queryRunner.createTable(
      new Table({
        name: 'aion_storage__state',
        columns: [
          { name: 'extension_id', type: 'varchar', length: '214', isPrimary: true },
          { name: 'state_key', type: 'varchar', length: '512', isPrimary: true },
          { name: 'value', type: 'text' },
          { name: 'updated_at', type: 'bigint' },
        ],
      }),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('aion_storage__state');
    await queryRunner.dropTable('aion_storage__namespaces');
  }
}
