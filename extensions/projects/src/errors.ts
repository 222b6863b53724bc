import { AionError } from '@aion/extension-api';
import { ProjectsErrorCodes, ProjectsErrorStatus } from './api.js';

type Code = keyof typeof ProjectsErrorCodes;

/** An error of this extension, with its HTTP status. */
export function projectsError(code: Code, message: string, details?: unknown): AionError {
  return new AionError(ProjectsErrorCodes[code], message, { status: ProjectsErrorStatus[code], details });
}
