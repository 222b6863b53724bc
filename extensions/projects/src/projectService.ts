import { randomUUID } from 'node:crypto';
import { realpath, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { AccessOptions, Project, ProjectFile, ProjectUser, ResolveFileOptions } from './api.js';
import { projectsError } from './errors.js';
import { readProjectFile } from './files.js';
import type { ProjectStore } from './projectStore.js';
import { cloneRepository, existingFolder, isInside, parseRepository } from './repository.js';

export interface ProjectsConfiguration {
  cloneTimeoutMs: number;
  maxFileBytes: number;
  localRoots: string[];
  protocols: string[];
  cloneHosts: string[];
  pageSize: number;
}

/** Who a principal acts for: devices and API keys for their owner, a user for itself. */
export function ownerOf(user: ProjectUser): { tenant: string; id: string } {
  return { tenant: user.tenant_id, id: typeof user.owner === 'string' ? user.owner : user.sub };
}

export function isAdmin(user: ProjectUser): boolean {
  return !!user.scopes && (user.scopes.includes('*') || user.scopes.includes('projects:admin'));
}

function checkUser(value: unknown): ProjectUser {
  const u = value as ProjectUser | null;
  if (!u || typeof u !== 'object' || typeof u.sub !== 'string' || typeof u.tenant_id !== 'string' || (u.scopes !== undefined && !Array.isArray(u.scopes))) {
    throw projectsError('INVALID_PROJECT', '`for` is the user the call is made for: { sub, tenant_id, scopes } as the kernel verified it');
  }
  return u;
}

function checkName(value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') throw projectsError('INVALID_PROJECT', 'name is required: a short label such as "web-app"');
  const name = value.trim();
  if (name.length > 200 || /[\u0000-\u001f\u007f]/.test(name))
    throw projectsError('INVALID_PROJECT', 'name is at most 200 characters, without control characters');
  return name;
}

/** Projects: registration (a local folder or a clone), ownership, and confined file reads. */
export class ProjectService {
  private readonly reposDir: string;

  constructor(
    private readonly store: ProjectStore,
    private readonly config: ProjectsConfiguration,
    storagePath: string,
  ) {
    this.reposDir = join(storagePath, 'repos');
  }

  /** Registers a project for `user`. A local folder (or a file:// URL) must lie in `localRoots`, unless the user is an admin. */
  async create(user: ProjectUser, body: unknown): Promise<Project> {
    if (!body || typeof body !== 'object' || Array.isArray(body))
      throw projectsError('INVALID_PROJECT', 'send a JSON object { "name": "…", "repository": "/abs/path or git URL" }');
    const { name: rawName, repository: rawRepository } = body as Record<string, unknown>;
    const name = checkName(rawName);
    const source = parseRepository(rawRepository);
    const owner = ownerOf(user);
    const id = `prj_${randomUUID().replace(/-/g, '')}`;
    let path: string;
    if (source.kind === 'local') {
      path = await existingFolder(source.path);
      await this.checkLocalAccess(user, path, source.path);
    } else {
      if (source.localPath !== undefined) {
        const real = await realpath(source.localPath).catch(() => undefined);
        if (real) await this.checkLocalAccess(user, real, source.localPath);
        else throw projectsError('REPOSITORY_UNREACHABLE', `${source.localPath} does not exist on the server`);
      }
      const scheme = /^([a-z]+):\/\//.exec(source.url)?.[1] ?? 'ssh';
      if (!this.config.protocols.includes(scheme))
        throw projectsError(
          'INVALID_PROJECT',
          `${scheme} repositories are not allowed here; allowed: ${this.config.protocols.join(', ')} (configuration protocols)`,
        );
      this.checkCloneHost(source.url);
      const dest = join(this.reposDir, id);
      await cloneRepository(source.url, dest, { timeoutMs: this.config.cloneTimeoutMs, protocols: this.config.protocols });
      path = await realpath(dest);
    }
    const project: Project = {
      id,
      name,
      repository: String(rawRepository),
      path,
      kind: source.kind,
      ownerId: owner.id,
      tenantId: owner.tenant,
      createdAt: new Date().toISOString(),
    };
    try {
      await this.store.insert(project);
    } catch (err) {
      if (project.kind === 'clone') await rm(path, { recursive: true, force: true });
      throw err;
    }
    return project;
  }

  /** With `cloneHosts` set, the server fetches only from those hosts (`host` or `*.domain`). */
  private checkCloneHost(url: string): void {
    if (this.config.cloneHosts.length === 0 || url.startsWith('file:')) return;
    const host = (/^[^@/:]+@([^:/]+):/.exec(url)?.[1] ?? new URL(url).hostname).toLowerCase();
    const allowed = this.config.cloneHosts.some((h) => {
      const pattern = h.toLowerCase();
      return pattern.startsWith('*.') ? host.endsWith(pattern.slice(1)) : host === pattern;
    });
    if (!allowed)
      throw projectsError(
        'INVALID_PROJECT',
        `cloning from ${host} is not allowed here; allowed hosts: ${this.config.cloneHosts.join(', ')} (configuration cloneHosts)`,
      );
  }

  private async checkLocalAccess(user: ProjectUser, real: string, given: string): Promise<void> {
    if (isAdmin(user)) return;
    for (const root of this.config.localRoots) {
      const realRoot = await realpath(root).catch(() => undefined);
      if (realRoot && isInside(realRoot, real)) return;
    }
    throw projectsError(
      'INVALID_PROJECT',
      this.config.localRoots.length === 0
        ? `only admins may register folders of the server (${given}); register a git URL instead, or ask an operator to list a folder in localRoots`
        : `${given} is not inside a folder open to projects (localRoots: ${this.config.localRoots.join(', ')})`,
    );
  }

  /** The project, when `user` may use it (always when no user is given: the caller checks). */
  async get(id: unknown, options: AccessOptions = {}): Promise<Project> {
    if (typeof id !== 'string' || id === '') throw projectsError('PROJECT_NOT_FOUND', 'a project id is required');
    const project = id.length <= 64 ? await this.store.get(id) : undefined;
    if (!project) throw projectsError('PROJECT_NOT_FOUND', `there is no project ${id}`);
    if (options.for !== undefined) {
      const user = checkUser(options.for);
      const owner = ownerOf(user);
      // Someone else's project reads as missing: its existence is not revealed.
      if (!isAdmin(user) && (project.tenantId !== owner.tenant || project.ownerId !== owner.id))
        throw projectsError('PROJECT_NOT_FOUND', `there is no project ${id}`);
    }
    return project;
  }

  list(user: ProjectUser, limit: number): Promise<Project[]> {
    return this.store.list(isAdmin(user) ? undefined : ownerOf(user), limit);
  }

  /** Removes the registration, and the clone when the server made one. */
  async remove(user: ProjectUser, id: string): Promise<void> {
    const project = await this.get(id, { for: user });
    await this.store.remove(project.id);
    if (project.kind === 'clone' && isInside(this.reposDir, project.path) && project.path !== this.reposDir)
      await rm(project.path, { recursive: true, force: true });
  }

  async resolveFile(id: unknown, relPath: unknown, options: ResolveFileOptions = {}): Promise<ProjectFile> {
    const project = await this.get(id, options);
    const maxBytes = options.maxBytes === undefined ? this.config.maxFileBytes : Math.min(options.maxBytes, this.config.maxFileBytes);
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw projectsError('INVALID_PROJECT', 'maxBytes is a non-negative integer');
    const encoding = options.encoding ?? 'utf8';
    if (encoding !== 'utf8' && encoding !== 'base64') throw projectsError('INVALID_PROJECT', 'encoding is utf8 or base64');
    // The root itself may have been replaced by a link since registration: read through its real path.
    const root = await realpath(project.path).catch(() => {
      throw projectsError('FILE_NOT_FOUND', `the folder of project ${project.id} (${project.path}) is gone`);
    });
    if (root !== project.path)
      throw projectsError('PATH_OUTSIDE_PROJECT', `the folder of project ${project.id} now leads elsewhere (${project.path} → ${root}); register it again`);
    return readProjectFile(root, relPath as string, { maxBytes, encoding });
  }
}
