/**
 * For tests of extensions that use projects: the extension's folder, and real git repositories made
 * with the real `git` binary in a temporary folder.
 *
 *   const repo = await createGitRepo({ 'src/index.ts': 'export const x = 1;\n' });
 *   // POST /v1/projects { name: 'demo', repository: repo.path }  or  { repository: repo.url }
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The folder of this extension, for `startTestKernel({ extensions: [STORAGE_EXTENSION_DIR, PROJECTS_EXTENSION_DIR, …] })`. */
export const PROJECTS_EXTENSION_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface TestRepo {
  /** The real path of the working folder. */
  path: string;
  /** `file://` URL of the same repository, for clone tests. */
  url: string;
  /** Runs git in the repository. */
  git(...args: string[]): Promise<string>;
  remove(): void;
}

/** A git repository with `files` (path → content) committed on `main`. */
export async function createGitRepo(files: Record<string, string>, options: { parent?: string } = {}): Promise<TestRepo> {
  const path = realpathSync(mkdtempSync(join(options.parent ?? tmpdir(), 'aion-repo-')));
  const git = async (...args: string[]) =>
    (
      await run(
        'git',
        ['-c', 'user.name=Aion Test', '-c', 'user.email=test@aion.invalid', '-c', 'init.defaultBranch=main', '-c', 'commit.gpgsign=false', ...args],
        { cwd: path, env: { PATH: process.env.PATH, HOME: path, GIT_CONFIG_NOSYSTEM: '1' } },
      )
    ).stdout;
  await git('init', '--quiet');
  for (const [file, content] of Object.entries(files)) {
    mkdirSync(dirname(join(path, file)), { recursive: true });
    writeFileSync(join(path, file), content);
  }
  await git('add', '--all');
  await git('commit', '--quiet', '--allow-empty', '-m', 'initial');
  return { path, url: pathToFileURL(path).href, git, remove: () => rmSync(path, { recursive: true, force: true }) };
}
