import type { Remote } from '@aion/extension-api';
import { NamespaceStore, openNamespace } from '@aion/ext-storage/kit';
import type { MigrationStep, StorageApi } from '@aion/ext-storage';
import type { Project } from './api.js';

export function migrations(p: string): MigrationStep[] {
  return [
    {
      name: '001-projects',
      up: [
        `CREATE TABLE ${p}projects (id VARCHAR(64) PRIMARY KEY, tenant_id VARCHAR(64) NOT NULL, owner_id VARCHAR(64) NOT NULL,
          name VARCHAR(200) NOT NULL, repository TEXT NOT NULL, kind VARCHAR(16) NOT NULL, path TEXT NOT NULL,
          created_at BIGINT NOT NULL)`,
        `CREATE INDEX ${p}projects_owner ON ${p}projects (tenant_id, owner_id, created_at)`,
      ],
    },
  ];
}

interface ProjectRow {
  id: string;
  tenant_id: string;
  owner_id: string;
  name: string;
  repository: string;
  kind: string;
  path: string;
  created_at: number | string;
}

const toProject = (r: ProjectRow): Project => ({
  id: r.id,
  name: r.name,
  repository: r.repository,
  path: r.path,
  kind: r.kind === 'clone' ? 'clone' : 'local',
  ownerId: r.owner_id,
  tenantId: r.tenant_id,
  createdAt: new Date(Number(r.created_at)).toISOString(),
});

/** The projects table, in this extension's namespace of aion.storage. */
export class ProjectStore extends NamespaceStore {
  static async open(db: Remote<StorageApi>): Promise<ProjectStore> {
    return new ProjectStore(db, await openNamespace(db, migrations));
  }

  async insert(project: Project): Promise<void> {
    await this.db.execute(`INSERT INTO ${this.p}projects (id, tenant_id, owner_id, name, repository, kind, path, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, [
      project.id,
      project.tenantId,
      project.ownerId,
      project.name,
      project.repository,
      project.kind,
      project.path,
      Date.parse(project.createdAt),
    ]);
  }

  async get(id: string): Promise<Project | undefined> {
    const rows = await this.db.query<ProjectRow>(`SELECT * FROM ${this.p}projects WHERE id = ?`, [id]);
    return rows[0] ? toProject(rows[0]) : undefined;
  }

  /** Newest first; every tenant's when `owner` is undefined (admins). */
  async list(owner: { tenant: string; id: string } | undefined, limit: number): Promise<Project[]> {
    const rows = owner
      ? await this.db.query<ProjectRow>(`SELECT * FROM ${this.p}projects WHERE tenant_id = ? AND owner_id = ? ORDER BY created_at DESC, id DESC LIMIT ?`, [
          owner.tenant,
          owner.id,
          limit,
        ])
      : await this.db.query<ProjectRow>(`SELECT * FROM ${this.p}projects ORDER BY created_at DESC, id DESC LIMIT ?`, [limit]);
    return rows.map(toProject);
  }

  async remove(id: string): Promise<boolean> {
    return (await this.db.execute(`DELETE FROM ${this.p}projects WHERE id = ?`, [id])).changes > 0;
  }
}
