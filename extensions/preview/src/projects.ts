import * as aion from '@aion/extension-api';
import type { ProjectsApi } from '@aion/ext-projects';

/** `aion.projects`: `get(id, { for })` gives a project's working folder (`path`), owner and tenant. */
export function projectsApi(): Promise<aion.Remote<ProjectsApi>> {
  return aion.extensions.getApi<ProjectsApi>('aion.projects');
}
