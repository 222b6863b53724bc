import { spawn } from 'node:child_process';
import { AionError } from '@aion/extension-api';

export interface ToolRunOptions {
  /** The tool is killed (its whole process group) after this long. */
  timeoutMs: number;
  /** Stdout past this many bytes kills the tool and fails the run. Default 4 MiB. */
  maxOutputBytes?: number;
  /** Exit codes that still count as an answer (the caller reads stdout and stderr). Default: only 0. */
  acceptExitCodes?: readonly number[];
}

export interface ToolRun {
  stdout: string;
  stderr: string;
  exitCode: number;
  durationMs: number;
}

/** Codes a detector's failures carry; the registry shows them per detector and keeps serving the rest. */
export const DetectorErrorCodes = {
  TOOL_TIMEOUT: 'ACCELERATOR_TOOL_TIMEOUT',
  TOOL_FAILED: 'ACCELERATOR_TOOL_FAILED',
  OUTPUT_INVALID: 'ACCELERATOR_OUTPUT_INVALID',
} as const;

const STDERR_KEEP = 2048;

/**
 * Runs a vendor tool found on PATH. Resolves `undefined` when the tool is not installed (the
 * accelerator is "not present", not broken); a tool that outlives `timeoutMs` is killed with its
 * process group, so a wrapper script's children die with it, and the run fails with TOOL_TIMEOUT.
 */
export function runTool(command: string, args: readonly string[], options: ToolRunOptions): Promise<ToolRun | undefined> {
  const maxOutput = options.maxOutputBytes ?? 4 * 1024 * 1024;
  const accepted = options.acceptExitCodes ?? [0];
  const started = performance.now();
  return new Promise((resolve, reject) => {
    let settled = false;
    const stdout: Buffer[] = [];
    let stdoutBytes = 0;
    let stderr = '';
    // Its own process group, so a timeout kills everything the tool started, not only the tool.
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, LC_ALL: 'C' } });
    const killGroup = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    const finish = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      outcome();
    };
    const timer = setTimeout(() => {
      killGroup();
      finish(() =>
        reject(
          new AionError(DetectorErrorCodes.TOOL_TIMEOUT, `${command} did not answer within ${options.timeoutMs} ms and was killed.`, {
            details: { tool: command, timeoutMs: options.timeoutMs },
          }),
        ),
      );
    }, options.timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => {
      stdoutBytes += chunk.length;
      if (stdoutBytes > maxOutput) {
        killGroup();
        finish(() =>
          reject(
            new AionError(DetectorErrorCodes.OUTPUT_INVALID, `${command} printed more than ${maxOutput} bytes and was stopped.`, {
              details: { tool: command },
            }),
          ),
        );
        return;
      }
      stdout.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < STDERR_KEEP) stderr = (stderr + chunk.toString('utf8')).slice(0, STDERR_KEEP);
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') finish(() => resolve(undefined));
      else
        finish(() =>
          reject(new AionError(DetectorErrorCodes.TOOL_FAILED, `${command} could not be started: ${err.code ?? err.message}.`, { details: { tool: command } })),
        );
    });
    child.on('close', (code, signal) => {
      const run: ToolRun = { stdout: Buffer.concat(stdout).toString('utf8'), stderr, exitCode: code ?? -1, durationMs: performance.now() - started };
      if (code !== null && accepted.includes(code)) finish(() => resolve(run));
      else {
        const how = signal ? `was ended by ${signal}` : `exited with code ${code}`;
        // Some tools (nvidia-smi) print their errors on stdout.
        const said = firstLine(stderr) || firstLine(run.stdout);
        finish(() =>
          reject(
            new AionError(DetectorErrorCodes.TOOL_FAILED, `${command} ${how}${said ? `: ${said}` : ''}`, {
              details: { tool: command, exitCode: code, signal, output: said },
            }),
          ),
        );
      }
    });
  });
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0]!.slice(0, 300);
}

/** The malformed-output error, naming the tool and what was wrong, with a sample of what it printed. */
export function outputInvalid(tool: string, problem: string, output: string): AionError {
  return new AionError(DetectorErrorCodes.OUTPUT_INVALID, `${tool} printed output this detector cannot read: ${problem}.`, {
    details: { tool, sample: output.slice(0, 400) },
  });
}
