import { join } from 'node:path';
import { PreviewErrorCodes, type BuildRequest, type PreviewBuilder } from '../api.js';
import { previewError } from '../errors.js';
import { buildEnvironment, runProcess, signalOf } from '../process.js';
import { exists } from './files.js';
import { isExpoProject } from './reactNative.js';

/** `expo`: `expo export` for the token's platform; chosen for projects whose app.json has an `expo` section. */
export function expoBuilder(node: () => string): PreviewBuilder {
  return {
    async detect({ projectDir }) {
      return isExpoProject(projectDir);
    },
    async build(request: BuildRequest, token?: unknown) {
      const cli = join(request.projectDir, 'node_modules', 'expo', 'bin', 'cli');
      if (!(await exists(cli)))
        throw previewError(
          PreviewErrorCodes.MISSING_DEPENDENCIES,
          'expo is not installed in the project (node_modules/expo/bin/cli is missing): add it to package.json',
        );
      const args = [cli, 'export', '--platform', request.platform, '--output-dir', request.outputDir, '--clear'];
      const code = await runProcess(node(), args, {
        cwd: request.projectDir,
        logFile: request.logFile,
        deadline: request.deadline,
        signal: signalOf(token),
        env: buildEnvironment({ CI: '1', EXPO_NO_TELEMETRY: '1', EXPO_OFFLINE: '1' }),
      });
      if (code !== 0) throw previewError(PreviewErrorCodes.PREVIEW_BUILD_FAILED, `expo export exited with code ${code}; see the build log`);
    },
  };
}
