import { execFile } from 'node:child_process';
import { stat, realpath, rm, mkdir } from 'node:fs/promises';
import { isAbsolute, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { projectsError } from './errors.js';

/** Where a registered repository comes from. */
export type RepositorySource = { kind: 'local'; path: string } | { kind: 'clone'; url: string; localPath?: string };

const URL_SCHEMES = new Set(['https:', 'http:', 'ssh:', 'git:', 'file:']);
// scp-like syntax git accepts for ssh: user@host:path
const SCP_LIKE = /^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+$/;

/**
 * Reads what the caller sent as `repository`: an absolute local path, or a git URL
 * (https, http, ssh, git, file, or `user@host:path`). Anything else is INVALID_PROJECT.
 */
export function parseRepository(value: unknown): RepositorySource {
  if (typeof value !== 'string' || value.trim() === '')
    throw projectsError('INVALID_PROJECT', 'repository is required: an absolute local path or a git URL (https://, ssh://, file://, user@host:path)');
  if (value.length > 2048 || /[\0\r\n]/.test(value)) throw projectsError('INVALID_PROJECT', 'repository is at most 2048 characters on one line');
  // git would read a leading dash as an option.
  if (value.startsWith('-')) throw projectsError('INVALID_PROJECT', 'repository may not start with "-"');
  if (isAbsolute(value)) return { kind: 'local', path: value };
  if (SCP_LIKE.test(value)) return { kind: 'clone', url: value };
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw projectsError('INVALID_PROJECT', `repository "${value}" is neither an absolute path nor a URL; send /abs/path or https://host/repo.git`);
  }
  if (!URL_SCHEMES.has(url.protocol))
    throw projectsError('INVALID_PROJECT', `repository URLs may use https, http, ssh, git or file, not ${url.protocol.slice(0, -1)}`);
  if (url.protocol === 'file:') return { kind: 'clone', url: value, localPath: fileURLToPath(url) };
  return { kind: 'clone', url: value };
}

/** The real path of an existing folder, or INVALID_PROJECT naming what is wrong. */
export async function existingFolder(path: string): Promise<string> {
  const info = await stat(path).catch(() => undefined);
  if (!info) throw projectsError('INVALID_PROJECT', `${path} does not exist on the server`);
  if (!info.isDirectory()) throw projectsError('INVALID_PROJECT', `${path} is not a folder`);
  return realpath(path);
}

/** Whether `child` is `parent` or inside it (both real paths). */
export function isInside(parent: string, child: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

export interface CloneOptions {
  timeoutMs: number;
  /** Git's allow-list of transports (GIT_ALLOW_PROTOCOL), so no URL reaches `ext::` and friends. */
  protocols: string[];
}

/**
 * Clones `url` into `dest` with the real `git` (no shell). On any failure the half-made folder is
 * removed and REPOSITORY_UNREACHABLE says why, with git's own last lines.
 */
export async function cloneRepository(url: string, dest: string, options: CloneOptions): Promise<void> {
  await mkdir(dest, { recursive: true });
  // A token in the URL stays out of messages.
  const shown = url.replace(/\/\/[^@/]*@/, '//****@');
  const args = ['-c', 'core.hooksPath=/dev/null', 'clone', '--quiet', '--no-recurse-submodules', '--', url, dest];
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/',
    // Never wait for a password or host-key prompt: fail instead.
    GIT_TERMINAL_PROMPT: '0',
    GIT_SSH_COMMAND: 'ssh -o BatchMode=yes -o StrictHostKeyChecking=yes',
    GIT_ALLOW_PROTOCOL: options.protocols.join(':'),
    GIT_CONFIG_NOSYSTEM: '1',
  };
  try {
    await new Promise<void>((resolve, reject) => {
      execFile('git', args, { env, timeout: options.timeoutMs, killSignal: 'SIGKILL', maxBuffer: 1024 * 1024 }, (err, _stdout, stderr) => {
        if (!err) return resolve();
        const e = err as NodeJS.ErrnoException & { killed?: boolean };
        if (e.code === 'ENOENT')
          return reject(projectsError('REPOSITORY_UNREACHABLE', 'git is not installed on the server; install git to register repositories by URL'));
        if (e.killed) return reject(projectsError('REPOSITORY_UNREACHABLE', `cloning ${shown} took longer than ${options.timeoutMs} ms (cloneTimeoutMs)`));
        const said = String(stderr).trim().split('\n').slice(-3).join(' ').slice(0, 500);
        reject(projectsError('REPOSITORY_UNREACHABLE', `git could not clone ${shown}: ${said || e.message}`));
      });
    });
  } catch (err) {
    await rm(dest, { recursive: true, force: true });
    throw err;
  }
}
