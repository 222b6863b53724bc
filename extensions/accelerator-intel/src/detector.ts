import { notPresent, runTool, type AcceleratorDetector, type DetectionResult } from '@aion/ext-accelerators/kit';
import { deviceArgs, DISCOVERY_ARGS, parseDeviceDetails, parseDiscovery, parseSyclLs } from './parse.js';

export interface IntelDetectorOptions {
  /** xpu-smi and sycl-ls to run: names looked up on PATH, or paths. */
  xpuSmi: string;
  syclLs: string;
  timeoutMs: number;
}

/**
 * Intel GPUs through xpu-smi (listing, then each device's memory and driver); without xpu-smi,
 * through sycl-ls (names and driver versions only: no memory, so `memoryMiB` requirements do not match).
 */
export class IntelDetector implements AcceleratorDetector {
  constructor(private readonly options: IntelDetectorOptions) {}

  async detect(): Promise<DetectionResult> {
    const { xpuSmi, syclLs, timeoutMs } = this.options;
    const discovery = await runTool(xpuSmi, DISCOVERY_ARGS, { timeoutMs });
    if (discovery) {
      const listed = parseDiscovery(discovery.stdout);
      if (listed.length === 0) return notPresent('xpu-smi listed no GPUs', { name: 'xpu-smi' });
      const devices = await Promise.all(
        listed.map(async (d) => {
          const details = await runTool(xpuSmi, deviceArgs(d.index), { timeoutMs });
          return details ? parseDeviceDetails(details.stdout, d) : d;
        }),
      );
      return { present: true, tool: { name: 'xpu-smi' }, devices };
    }
    const sycl = await runTool(syclLs, [], { timeoutMs });
    if (!sycl) return notPresent(`neither ${xpuSmi} nor ${syclLs} is installed (not found on PATH)`);
    const devices = parseSyclLs(sycl.stdout);
    if (devices.length === 0) return notPresent('sycl-ls lists no Level Zero GPU', { name: 'sycl-ls' });
    return { present: true, tool: { name: 'sycl-ls' }, devices };
  }
}
