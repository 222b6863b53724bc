import { constants } from 'node:fs';
import { open, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import type { ProjectFile } from './api.js';
import { projectsError } from './errors.js';
import { checkRelativePath } from './paths.js';
import { isInside } from './repository.js';

/**
 * Reads a file of the project at `root` (a real path). Symlinks are followed only while they stay in
 * the project; the file is opened without following a link at its last step and checked through its
 * own descriptor, so a link swapped in after the check is refused rather than followed.
 */
export async function readProjectFile(root: string, relPath: string, options: { maxBytes: number; encoding: 'utf8' | 'base64' }): Promise<ProjectFile> {
  const segments = checkRelativePath(relPath);
  const shown = segments.join('/');
  let real: string;
  try {
    real = await realpath(join(root, ...segments));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw projectsError('FILE_NOT_FOUND', `the project has no file ${shown}`);
    if (code === 'ELOOP') throw projectsError('PATH_OUTSIDE_PROJECT', `${shown} is a symlink loop`);
    throw projectsError('FILE_NOT_FOUND', `${shown} cannot be read: ${code ?? (err as Error).message}`);
  }
  if (!isInside(root, real)) throw projectsError('PATH_OUTSIDE_PROJECT', `${shown} leads outside the project (a symlink); only files inside it are read`);
  const relReal = real
    .slice(root.length)
    .split(/[\\/]+/)
    .filter(Boolean);
  if (relReal.includes('.git')) throw projectsError('PATH_OUTSIDE_PROJECT', `${shown} leads into .git, which is not part of the project's files`);
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw projectsError('PATH_OUTSIDE_PROJECT', `${shown} changed into a symlink while it was read`);
    if (code === 'ENOENT') throw projectsError('FILE_NOT_FOUND', `the project has no file ${shown}`);
    throw projectsError('FILE_NOT_FOUND', `${shown} cannot be read: ${code ?? (err as Error).message}`);
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw projectsError('FILE_NOT_FOUND', `${shown} is not a regular file`);
    if (info.size > options.maxBytes)
      throw projectsError('FILE_TOO_LARGE', `${shown} is ${info.size} bytes; the limit is ${options.maxBytes}`, {
        size: info.size,
        maxBytes: options.maxBytes,
      });
    // Read one byte past the cap: a file that grew after stat is still refused.
    const buffer = Buffer.alloc(Math.min(info.size, options.maxBytes) + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length === buffer.length) break;
    }
    if (length > options.maxBytes) throw projectsError('FILE_TOO_LARGE', `${shown} is larger than ${options.maxBytes} bytes`, { maxBytes: options.maxBytes });
    const data = buffer.subarray(0, length);
    return { path: shown, size: length, encoding: options.encoding, content: data.toString(options.encoding) };
  } finally {
    await handle.close();
  }
}
