import { availableParallelism, cpus, freemem, totalmem } from 'node:os';
import { defined, runTool, type AcceleratorDetector, type DetectionResult } from '@aion/ext-accelerators/kit';
import { LSCPU_ARGS, parseLscpu, type LscpuFacts } from './parse.js';

export interface CpuDetectorOptions {
  /** The lscpu to run for SIMD features: a name looked up on PATH, or a path. */
  lscpu: string;
  timeoutMs: number;
}

const MIB = 1024 * 1024;

/**
 * The host's processors: always present. Cores, model and memory come from Node; SIMD features from
 * `lscpu --json` on Linux, read once (they do not change while the machine runs). Without lscpu,
 * or when it fails, the features list is empty and the reason is in `tool`.
 */
export class CpuDetector implements AcceleratorDetector {
  private facts?: Promise<{ facts: LscpuFacts; tool?: DetectionResult['tool'] }>;

  constructor(private readonly options: CpuDetectorOptions) {}

  async detect(): Promise<DetectionResult> {
    this.facts ??= this.readFacts();
    const { facts, tool } = await this.facts;
    const model = facts.model ?? cpus()[0]?.model?.trim() ?? 'unknown CPU';
    return {
      present: true,
      ...(tool ? { tool } : {}),
      devices: [
        defined({
          index: 0,
          name: model,
          cores: availableParallelism(),
          architecture: facts.architecture ?? process.arch,
          memoryTotalMiB: Math.floor(totalmem() / MIB),
          memoryFreeMiB: Math.floor(freemem() / MIB),
          memoryUsedMiB: Math.floor((totalmem() - freemem()) / MIB),
          features: facts.features,
        }),
      ],
    };
  }

  private async readFacts(): Promise<{ facts: LscpuFacts; tool?: DetectionResult['tool'] }> {
    if (process.platform !== 'linux') return { facts: { features: [] } };
    try {
      const run = await runTool(this.options.lscpu, LSCPU_ARGS, { timeoutMs: this.options.timeoutMs });
      if (!run) return { facts: { features: [] } };
      return { facts: parseLscpu(run.stdout), tool: { name: 'lscpu' } };
    } catch {
      // The CPU is present whatever lscpu does; a later reading tries again.
      this.facts = undefined;
      return { facts: { features: [] } };
    }
  }
}
