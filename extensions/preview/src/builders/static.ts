import { isAbsolute, join, normalize, resolve, sep } from 'node:path';
import { PreviewErrorCodes, type BuildRequest, type PreviewBuilder } from '../api.js';
import { previewError } from '../errors.js';
import { copyTree, exists, isDirectory } from './files.js';

/** A folder inside the project, named by configuration; refuses paths that leave the project. */
export function projectSubdir(projectDir: string, relative: unknown, what: string): string {
  if (typeof relative !== 'string' || relative === '' || isAbsolute(relative) || normalize(relative).split(sep).includes('..')) {
    throw previewError(PreviewErrorCodes.INVALID_PROJECT_STRUCTURE, `${what} must be a relative path inside the project, not ${JSON.stringify(relative)}`);
  }
  const path = resolve(projectDir, relative);
  if (path !== projectDir && !path.startsWith(projectDir + sep)) throw previewError(PreviewErrorCodes.INVALID_PROJECT_STRUCTURE, `${what} leaves the project`);
  return path;
}

/** The folder a static site is served from: configured, else `public/` when it has an index.html, else the root. */
async function siteDir(projectDir: string, options: Record<string, unknown>): Promise<string | undefined> {
  if (options.dir !== undefined) return projectSubdir(projectDir, options.dir, 'builders.static.dir');
  for (const candidate of [join(projectDir, 'public'), projectDir]) if (await exists(join(candidate, 'index.html'))) return candidate;
  return undefined;
}

/** `static`: a folder of files (an index.html), copied as is. */
export const staticBuilder: PreviewBuilder = {
  async detect({ projectDir, platform }) {
    return platform === 'web' && (await siteDir(projectDir, {})) !== undefined;
  },
  async build(request: BuildRequest) {
    const dir = await siteDir(request.projectDir, request.options);
    if (!dir || !(await isDirectory(dir))) {
      throw previewError(
        PreviewErrorCodes.INVALID_PROJECT_STRUCTURE,
        'a static preview needs an index.html at the project root or in public/ (or builders.static.dir naming the folder)',
      );
    }
    // The checkout is this build's own copy: links are enough.
    await copyTree(dir, request.outputDir, { link: true });
  },
};
