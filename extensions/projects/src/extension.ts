import * as aion from '@aion/extension-api';
import { AionError, ErrorCodes, type HttpRequestData } from '@aion/extension-api';
import type { StorageApi } from '@aion/ext-storage';
import type { Project, ProjectsApi, ProjectUser } from './api.js';
import { ProjectService, type ProjectsConfiguration } from './projectService.js';
import { ProjectStore } from './projectStore.js';

function userOf(req: HttpRequestData): ProjectUser {
  if (!req.principal) throw new AionError(ErrorCodes.UNAUTHENTICATED, 'sign in first');
  return req.principal;
}

/** A project as HTTP clients see it. */
function projectView(p: Project) {
  return {
    id: p.id,
    name: p.name,
    repository: p.repository,
    path: p.path,
    kind: p.kind,
    created_at: p.createdAt,
    owner: { sub: p.ownerId, tenant_id: p.tenantId },
  };
}

export async function activate(ctx: aion.ExtensionContext): Promise<ProjectsApi> {
  const config = ctx.configuration.get<ProjectsConfiguration>();
  const storage = await aion.extensions.getApi<StorageApi>('aion.storage');
  const service = new ProjectService(await ProjectStore.open(storage), config, ctx.storagePath);

  const handle = aion.http.handle;
  ctx.subscriptions.push(
    handle('POST /v1/projects', async (req) => ({ status: 201, body: projectView(await service.create(userOf(req), req.body)) })),
    handle('GET /v1/projects', async (req) => {
      const limit = Math.min(Math.max(Number(req.query.limit ?? config.pageSize) || config.pageSize, 1), 1000);
      return { body: { projects: (await service.list(userOf(req), limit)).map(projectView) } };
    }),
    handle('GET /v1/projects/:id', async (req) => ({ body: projectView(await service.get(req.params.id!, { for: userOf(req) })) })),
    handle('DELETE /v1/projects/:id', async (req) => {
      await service.remove(userOf(req), req.params.id!);
      return { status: 204 };
    }),
  );

  return {
    get: (id, options) => service.get(id, options),
    resolveFile: (id, relPath, options) => service.resolveFile(id, relPath, options),
  };
}

export function deactivate() {}
