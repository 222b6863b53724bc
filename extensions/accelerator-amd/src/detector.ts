import { AionError } from '@aion/extension-api';
import { DetectorErrorCodes, notPresent, runTool, type AcceleratorDetector, type DetectionResult } from '@aion/ext-accelerators/kit';
import { absentReason, parseRocmSmi, ROCM_SMI_ARGS } from './parse.js';

export interface AmdDetectorOptions {
  /** The rocm-smi to run: a name looked up on PATH, or a path. */
  command: string;
  timeoutMs: number;
}

/** AMD GPUs through rocm-smi: product name, VRAM, utilization, temperature, unique id, driver version. */
export class AmdDetector implements AcceleratorDetector {
  constructor(private readonly options: AmdDetectorOptions) {}

  async detect(): Promise<DetectionResult> {
    const { command, timeoutMs } = this.options;
    // rocm-smi exits non-zero on machines without the driver; the output says which case it is.
    const run = await runTool(command, ROCM_SMI_ARGS, { timeoutMs, acceptExitCodes: [0, 1, 2] });
    if (!run) return notPresent(`${command} is not installed (not found on PATH)`);
    const absent = absentReason(`${run.stdout}\n${run.stderr}`);
    if (absent && !run.stdout.includes('{')) return notPresent(absent, { name: 'rocm-smi' });
    if (run.exitCode !== 0 && !run.stdout.includes('{')) {
      const said = (run.stderr || run.stdout).trim().split('\n')[0] ?? '';
      throw new AionError(DetectorErrorCodes.TOOL_FAILED, `${command} exited with code ${run.exitCode}${said ? `: ${said}` : ''}`, {
        details: { tool: command, exitCode: run.exitCode },
      });
    }
    const devices = parseRocmSmi(run.stdout);
    if (devices.length === 0) return notPresent('rocm-smi listed no GPUs', { name: 'rocm-smi' });
    return { present: true, tool: { name: 'rocm-smi' }, devices };
  }
}
