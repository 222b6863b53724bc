import { join } from 'node:path';
import { PreviewErrorCodes, type BuildRequest, type PreviewBuilder } from '../api.js';
import { previewError } from '../errors.js';
import { buildEnvironment, runProcess, signalOf } from '../process.js';
import { copyTree, isDirectory, isEmptyDirectory, readJson } from './files.js';
import { projectSubdir } from './static.js';

const OUTPUT_CANDIDATES = ['dist', 'build', 'out'];

/** `npm-script`: the project's `build` script, then its output folder (builders.npm-script.outputDir, else dist/, build/ or out/). */
export function npmScriptBuilder(npm: () => string): PreviewBuilder {
  return {
    async detect({ projectDir, platform }) {
      const pkg = await readJson(join(projectDir, 'package.json'));
      return platform === 'web' && typeof pkg?.scripts?.build === 'string';
    },
    async build(request: BuildRequest, token?: unknown) {
      const pkg = await readJson(join(request.projectDir, 'package.json'));
      if (typeof pkg?.scripts?.build !== 'string')
        throw previewError(PreviewErrorCodes.INVALID_PROJECT_STRUCTURE, 'the project has no package.json with a "build" script');
      const code = await runProcess(npm(), ['run', 'build'], {
        cwd: request.projectDir,
        logFile: request.logFile,
        deadline: request.deadline,
        signal: signalOf(token),
        env: buildEnvironment({ CI: 'true' }),
      });
      if (code !== 0) throw previewError(PreviewErrorCodes.PREVIEW_BUILD_FAILED, `npm run build exited with code ${code}; see the build log`);
      const configured = request.options.outputDir;
      let output: string | undefined;
      if (configured !== undefined) output = projectSubdir(request.projectDir, configured, 'builders.npm-script.outputDir');
      else for (const name of OUTPUT_CANDIDATES) if (await isDirectory(join(request.projectDir, name))) output ??= join(request.projectDir, name);
      if (!output || !(await isDirectory(output)) || (await isEmptyDirectory(output))) {
        throw previewError(
          PreviewErrorCodes.INVALID_PROJECT_STRUCTURE,
          `the build script wrote no output in ${configured ?? OUTPUT_CANDIDATES.join('/, ') + '/'}; set builders.npm-script.outputDir`,
        );
      }
      await copyTree(output, request.outputDir, { link: true });
    },
  };
}
