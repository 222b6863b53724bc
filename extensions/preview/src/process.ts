import { spawn } from 'node:child_process';
import { open } from 'node:fs/promises';
import { PreviewErrorCodes } from './api.js';
import { previewError } from './errors.js';

/** Variables a build may see: what tools need to run, never the kernel's secrets or configuration. */
const PASSED_VARIABLES = [
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'LANG',
  'LC_ALL',
  'TZ',
  'TMPDIR',
  'TERM',
  'SHELL',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY',
  'http_proxy',
  'https_proxy',
  'no_proxy',
  'npm_config_cache',
  'npm_config_registry',
];

/** The environment of a build's processes: the kernel's own is not passed on (it may hold AION_* secrets). */
export function buildEnvironment(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of PASSED_VARIABLES) if (process.env[name] !== undefined) env[name] = process.env[name];
  return { ...env, ...extra };
}

export interface RunOptions {
  cwd: string;
  /** Appended to, stdout and stderr together. */
  logFile: string;
  /** Epoch ms: past it the whole process group is killed and PREVIEW_TIMEOUT thrown. */
  deadline: number;
  env?: NodeJS.ProcessEnv;
  /** Cancelled from outside (job canceled): the group is killed as on timeout. */
  signal?: AbortSignal;
}

/** Kills a detached child's whole process group: npm, its shell and what they started. */
function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

/**
 * Runs a program (never a shell string: arguments are passed as a list) in its own process group,
 * output to `logFile`. Resolves with the exit code; rejects with PREVIEW_TIMEOUT past the deadline.
 */
export async function runProcess(command: string, args: string[], options: RunOptions): Promise<number> {
  const remaining = options.deadline - Date.now();
  if (remaining <= 0) throw previewError(PreviewErrorCodes.PREVIEW_TIMEOUT, 'the preview build ran past its time limit');
  const log = await open(options.logFile, 'a');
  try {
    await log.write(`$ ${[command, ...args].join(' ')}\n`);
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? buildEnvironment(), detached: true, stdio: ['ignore', log.fd, log.fd] });
    let timedOut = false;
    let aborted = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, remaining);
    const onAbort = () => {
      aborted = true;
      killGroup(child.pid);
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const code = await new Promise<number>((resolve, reject) => {
        child.once('error', (err: NodeJS.ErrnoException) =>
          reject(
            err.code === 'ENOENT' ? previewError(PreviewErrorCodes.MISSING_DEPENDENCIES, `${command} is not installed on this server (or not on PATH)`) : err,
          ),
        );
        child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
      });
      // The leader may exit before its children: take the rest of the group down too.
      if (timedOut || aborted) killGroup(child.pid);
      if (timedOut)
        throw previewError(PreviewErrorCodes.PREVIEW_TIMEOUT, `the preview build ran past its time limit while running ${command}; its processes were killed`);
      if (aborted) throw previewError(PreviewErrorCodes.PREVIEW_BUILD_FAILED, 'the preview build was canceled');
      return code;
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
    }
  } finally {
    await log.close();
  }
}

/** Built-in builders get `{ signal }` as their token (they run in this process); others get none. */
export function signalOf(token: unknown): AbortSignal | undefined {
  const signal = (token as { signal?: unknown } | undefined)?.signal;
  return signal instanceof AbortSignal ? signal : undefined;
}
