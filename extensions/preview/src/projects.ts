import * as aion from '@aion/extension-api';

/** What this extension reads of `aion.projects` (its API: `get(id, { for })`). */
export interface PreviewProject {
  id: string;
  name: string;
  repository: string;
  /** The working folder on disk: a local folder used in place, or the registry's clone. */
  path: string;
  ownerId: string;
  tenantId: string;
}

export interface ProjectsLookup {
  /** Throws PROJECT_NOT_FOUND when there is none, or `for` may not use it. */
  get(id: string, options?: { for?: aion.Principal }): Promise<PreviewProject>;
}

export function projectsApi(): Promise<ProjectsLookup> {
  return aion.extensions.getApi<ProjectsLookup>('aion.projects') as unknown as Promise<ProjectsLookup>;
}
