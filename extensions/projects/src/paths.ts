import { projectsError } from './errors.js';

/**
 * Checks a path a caller gave inside a project, before touching the disk: relative, no `..` and no
 * `.git` segment (a clone's `.git/config` may hold credentials). Returns the normalized segments.
 */
export function checkRelativePath(relPath: unknown): string[] {
  if (typeof relPath !== 'string' || relPath === '')
    throw projectsError('PATH_OUTSIDE_PROJECT', 'path is required: a file inside the project, e.g. src/index.ts');
  if (relPath.includes('\0')) throw projectsError('PATH_OUTSIDE_PROJECT', 'path may not contain NUL');
  if (relPath.startsWith('/') || relPath.startsWith('\\') || /^[A-Za-z]:/.test(relPath))
    throw projectsError('PATH_OUTSIDE_PROJECT', `"${relPath}" is absolute; give a path relative to the project's root`);
  const segments = relPath.split(/[\\/]+/).filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) throw projectsError('PATH_OUTSIDE_PROJECT', `"${relPath}" contains "..": give a path inside the project`);
  if (segments.includes('.git')) throw projectsError('PATH_OUTSIDE_PROJECT', `"${relPath}" is inside .git, which is not part of the project's files`);
  if (segments.length === 0) throw projectsError('PATH_OUTSIDE_PROJECT', `"${relPath}" is the project's root, not a file`);
  return segments;
}
