/**
 * The public API of `aion.projects`, for `import type` by other extensions:
 *
 *   const projects = await aion.extensions.getApi<ProjectsApi>('aion.projects');
 *   const project = await projects.get(id, { for: req.principal });          // PROJECT_NOT_FOUND unless the user owns it
 *   const file = await projects.resolveFile(id, 'src/index.ts', { maxBytes: 65536, for: req.principal });
 *
 * An extension acting for a user passes that user as `for`: the project must then be the user's own
 * (same tenant and owner), or the user an admin. Without `for` the caller is trusted to check
 * `ownerId`/`tenantId` itself.
 */

/** The user a call is made for: a principal as the kernel verified it (`req.principal`). */
export interface ProjectUser {
  sub: string;
  tenant_id: string;
  scopes?: string[];
  /** Devices and API keys act for the user who owns them. */
  owner?: unknown;
  [claim: string]: unknown;
}

export interface Project {
  id: string;
  name: string;
  /** As registered: an absolute local path or a git URL. */
  repository: string;
  /** The working folder on disk to read files from: the local folder itself, or the clone. */
  path: string;
  /** `local`: a folder on this server, used in place; `clone`: a git URL cloned under the data directory. */
  kind: 'local' | 'clone';
  ownerId: string;
  tenantId: string;
  /** ISO 8601. */
  createdAt: string;
}

export interface AccessOptions {
  /** The user the call is made for; the project must be theirs (admins: any). */
  for?: ProjectUser;
}

export interface ResolveFileOptions extends AccessOptions {
  /** Refuse files larger than this (FILE_TOO_LARGE); capped by the `maxFileBytes` configuration. */
  maxBytes?: number;
  /** `utf8` (default) or `base64` for binary files. */
  encoding?: 'utf8' | 'base64';
}

export interface ProjectFile {
  /** The path inside the project, normalized with `/`. */
  path: string;
  size: number;
  encoding: 'utf8' | 'base64';
  content: string;
}

export interface ProjectsApi {
  /** Throws PROJECT_NOT_FOUND when there is none, or `for` may not use it. */
  get(id: string, options?: AccessOptions): Promise<Project>;
  /**
   * A file of the project. `..` segments, absolute paths, `.git/` and symlinks that lead outside the
   * project are refused (PATH_OUTSIDE_PROJECT); FILE_TOO_LARGE past `maxBytes`; FILE_NOT_FOUND.
   */
  resolveFile(id: string, relPath: string, options?: ResolveFileOptions): Promise<ProjectFile>;
}

/** Error codes this extension adds to the common ones. */
export const ProjectsErrorCodes = {
  INVALID_PROJECT: 'INVALID_PROJECT',
  PROJECT_NOT_FOUND: 'PROJECT_NOT_FOUND',
  REPOSITORY_UNREACHABLE: 'REPOSITORY_UNREACHABLE',
  PATH_OUTSIDE_PROJECT: 'PATH_OUTSIDE_PROJECT',
  FILE_TOO_LARGE: 'FILE_TOO_LARGE',
  FILE_NOT_FOUND: 'FILE_NOT_FOUND',
} as const;

/** The HTTP status of each code, for routes of this and other extensions. */
export const ProjectsErrorStatus: Record<keyof typeof ProjectsErrorCodes, number> = {
  INVALID_PROJECT: 400,
  PROJECT_NOT_FOUND: 404,
  REPOSITORY_UNREACHABLE: 422,
  PATH_OUTSIDE_PROJECT: 400,
  FILE_TOO_LARGE: 413,
  FILE_NOT_FOUND: 404,
};
