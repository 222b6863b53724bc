import { dirname, join } from 'node:path';
import { PreviewErrorCodes } from './api.js';
import { copyTree, exists } from './builders/files.js';
import { previewError } from './errors.js';
import { buildEnvironment, runProcess, type RunOptions } from './process.js';

/** Branch, tag or commit names git accepts, never an option (`-…`) or a range/revision expression. */
const GIT_REF = /^[A-Za-z0-9_][A-Za-z0-9._/+-]{0,199}$/;

export function validateGitRef(ref: unknown): string {
  if (
    typeof ref !== 'string' ||
    !GIT_REF.test(ref) ||
    ref.includes('..') ||
    ref.includes('//') ||
    ref.endsWith('.lock') ||
    ref.endsWith('/') ||
    ref.endsWith('.')
  ) {
    throw previewError(
      PreviewErrorCodes.INVALID_GIT_REF,
      `git_ref ${JSON.stringify(String(ref).slice(0, 80))} is not a branch, tag or commit name (letters, digits, . _ / + -, not starting with - or .)`,
    );
  }
  return ref;
}

export interface CheckoutResult {
  commit: string | null;
}

/**
 * Puts the project's sources in `target` without touching the repository: a `git_ref` is checked out
 * from a `--shared` clone (the repository's objects are only read); without one the working folder is
 * copied (`.git` and `node_modules` left out).
 */
export async function checkout(options: {
  repository: string;
  ref: string | undefined;
  target: string;
  git: string;
  run: Omit<RunOptions, 'cwd'>;
}): Promise<CheckoutResult> {
  const { repository, ref, target, git } = options;
  if (!(await exists(repository)))
    throw previewError(PreviewErrorCodes.INVALID_PROJECT_STRUCTURE, `the project's folder ${repository} does not exist on this server`);
  if (ref === undefined) {
    await copyTree(repository, target);
    return { commit: null };
  }
  validateGitRef(ref);
  if (!(await exists(join(repository, '.git'))))
    throw previewError(PreviewErrorCodes.INVALID_PROJECT_STRUCTURE, `git_ref needs a git repository, and ${repository} is not one`);
  const run = (args: string[], cwd: string) => runProcess(git, args, { ...options.run, cwd });
  const env = buildEnvironment({ GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1' });
  // Run from the temp folder, not the repository: git then reads none of the repository's own configuration.
  const clone = await runProcess(git, ['clone', '--quiet', '--shared', '--no-checkout', '--', repository, target], {
    ...options.run,
    cwd: dirname(target),
    env,
  });
  if (clone !== 0) throw previewError(PreviewErrorCodes.PREVIEW_BUILD_FAILED, `git could not read ${repository}; see the build log`);
  // --end-of-options: the ref is never read as an option, whatever it looks like.
  const resolved = await run(['rev-parse', '--quiet', '--verify', '--end-of-options', `${ref}^{commit}`], target);
  const originRef = resolved === 0 ? 0 : await run(['rev-parse', '--quiet', '--verify', '--end-of-options', `origin/${ref}^{commit}`], target);
  if (resolved !== 0 && originRef !== 0) throw previewError(PreviewErrorCodes.INVALID_GIT_REF, `git_ref ${ref} names no branch, tag or commit of the project`);
  const spec = resolved === 0 ? ref : `origin/${ref}`;
  if ((await run(['checkout', '--quiet', '--detach', spec, '--'], target)) !== 0)
    throw previewError(PreviewErrorCodes.PREVIEW_BUILD_FAILED, `git could not check out ${ref}; see the build log`);
  const { execFile } = await import('node:child_process');
  const commit = await new Promise<string | null>((resolve) =>
    execFile(git, ['rev-parse', 'HEAD'], { cwd: target }, (err, stdout) => resolve(err ? null : stdout.trim())),
  );
  return { commit };
}
