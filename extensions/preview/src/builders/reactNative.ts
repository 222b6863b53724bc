import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PreviewErrorCodes, type BuildRequest, type PreviewBuilder } from '../api.js';
import { previewError } from '../errors.js';
import { buildEnvironment, runProcess, signalOf } from '../process.js';
import { exists, readJson } from './files.js';
import { projectSubdir } from './static.js';

function dependsOn(pkg: Record<string, any> | undefined, name: string): boolean {
  return Boolean(pkg?.dependencies?.[name] ?? pkg?.devDependencies?.[name]);
}

/** Whether `app.json` has an `expo` section: such a project is built by the expo builder. */
export async function isExpoProject(projectDir: string): Promise<boolean> {
  const app = await readJson(join(projectDir, 'app.json'));
  return app?.expo !== undefined && app.expo !== null && typeof app.expo === 'object';
}

async function entryFile(request: BuildRequest): Promise<string> {
  if (request.options.entryFile !== undefined) return projectSubdir(request.projectDir, request.options.entryFile, 'builders.react-native.entryFile');
  for (const name of [`index.${request.platform}.js`, 'index.js', 'index.ts', 'index.tsx'])
    if (await exists(join(request.projectDir, name))) return join(request.projectDir, name);
  throw previewError(
    PreviewErrorCodes.INVALID_PROJECT_STRUCTURE,
    `no entry file: add index.js (or index.${request.platform}.js), or set builders.react-native.entryFile`,
  );
}

/** `react-native`: Metro through `react-native bundle`, for ios and android. */
export function reactNativeBuilder(node: () => string): PreviewBuilder {
  return {
    async detect({ projectDir, platform }) {
      if (platform === 'web') return false;
      return dependsOn(await readJson(join(projectDir, 'package.json')), 'react-native') && !(await isExpoProject(projectDir));
    },
    async build(request: BuildRequest, token?: unknown) {
      const cli = join(request.projectDir, 'node_modules', 'react-native', 'cli.js');
      if (!(await exists(cli)))
        throw previewError(
          PreviewErrorCodes.MISSING_DEPENDENCIES,
          'react-native is not installed in the project (node_modules/react-native/cli.js is missing): add it to package.json',
        );
      const entry = await entryFile(request);
      const assets = join(request.outputDir, 'assets');
      await mkdir(assets, { recursive: true });
      const args = [
        cli,
        'bundle',
        '--platform',
        request.platform,
        '--dev',
        'false',
        '--minify',
        'true',
        '--entry-file',
        entry,
        '--bundle-output',
        join(request.outputDir, `index.${request.platform}.bundle`),
        '--assets-dest',
        assets,
        '--reset-cache',
      ];
      const code = await runProcess(node(), args, {
        cwd: request.projectDir,
        logFile: request.logFile,
        deadline: request.deadline,
        signal: signalOf(token),
        env: buildEnvironment({ CI: 'true', NODE_ENV: 'production' }),
      });
      if (code !== 0) throw previewError(PreviewErrorCodes.PREVIEW_BUILD_FAILED, `react-native bundle exited with code ${code}; see the build log`);
    },
  };
}
