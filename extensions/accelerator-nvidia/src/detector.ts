import { isAionError } from '@aion/extension-api';
import { notPresent, runTool, type AcceleratorDetector, type DetectionResult } from '@aion/ext-accelerators/kit';
import { absentReason, parseHeader, parseQuery, parseVersion, QUERY_ARGS, VERSION_ARGS, type NvidiaVersions } from './parse.js';

export interface NvidiaDetectorOptions {
  /** The nvidia-smi to run: a name looked up on PATH, or a path. */
  command: string;
  /** Each nvidia-smi run is killed after this long. */
  timeoutMs: number;
}

/** Exit codes nvidia-smi uses for "no GPU here" (6: no devices, 9: no driver): read as not present. */
const ABSENT_EXIT_CODES = [0, 6, 9];

/**
 * NVIDIA GPUs through nvidia-smi (NVML): one `--query-gpu` run per reading, and the CUDA version
 * from `nvidia-smi --version` (or the header of plain `nvidia-smi` on drivers before 525), read
 * again only when the driver version changes.
 */
export class NvidiaDetector implements AcceleratorDetector {
  private versions?: { driver: string | undefined; value: NvidiaVersions };

  constructor(private readonly options: NvidiaDetectorOptions) {}

  async detect(): Promise<DetectionResult> {
    const { command, timeoutMs } = this.options;
    const query = await runTool(command, QUERY_ARGS, { timeoutMs, acceptExitCodes: ABSENT_EXIT_CODES });
    if (!query) return notPresent(`${command} is not installed (not found on PATH)`);
    const absent = absentReason(`${query.stdout}\n${query.stderr}`);
    if (absent) return notPresent(absent, { name: 'nvidia-smi' });
    if (query.exitCode !== 0) return notPresent(`${command} exited with code ${query.exitCode}`, { name: 'nvidia-smi' });
    const devices = parseQuery(query.stdout);
    if (devices.length === 0) return notPresent('nvidia-smi listed no GPUs', { name: 'nvidia-smi' });
    const versions = await this.versionsFor(devices[0]!.driverVersion);
    const runtime = { name: 'CUDA', ...(versions.cudaVersion ? { version: versions.cudaVersion } : {}) };
    return {
      present: true,
      tool: { name: 'nvidia-smi', ...(versions.smiVersion ? { version: versions.smiVersion } : {}) },
      devices: devices.map((d) => ({ ...d, runtime })),
    };
  }

  private async versionsFor(driver: string | undefined): Promise<NvidiaVersions> {
    if (this.versions && this.versions.driver === driver) return this.versions.value;
    const value = await this.readVersions();
    this.versions = { driver, value };
    return value;
  }

  private async readVersions(): Promise<NvidiaVersions> {
    const { command, timeoutMs } = this.options;
    const fromVersion: NvidiaVersions = await runTool(command, VERSION_ARGS, { timeoutMs }).then(
      (run) => (run ? parseVersion(run.stdout) : {}),
      (err: unknown): NvidiaVersions => {
        // Drivers before 525 have no --version; the header below has the same facts.
        if (isAionError(err) && err.code === 'ACCELERATOR_TOOL_FAILED') return {};
        throw err;
      },
    );
    if (fromVersion.cudaVersion) return fromVersion;
    const header = await runTool(command, [], { timeoutMs });
    return header ? { ...parseHeader(header.stdout), ...fromVersion } : fromVersion;
  }
}
