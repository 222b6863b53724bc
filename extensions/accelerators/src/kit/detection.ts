/** What a detector reports about one device; the registry adds its id, vendor, node and reading time. */
export interface DetectedDevice {
  /** The vendor tool's own index (nvidia-smi, rocm-smi card N, xpu-smi device id). */
  index: number;
  name: string;
  uuid?: string;
  memoryTotalMiB?: number;
  memoryUsedMiB?: number;
  memoryFreeMiB?: number;
  utilizationPercent?: number;
  temperatureC?: number;
  driverVersion?: string;
  /** The compute runtime and its version: CUDA 12.4, ROCm, Level Zero 1.3. */
  runtime?: { name: string; version?: string };
  /** NVIDIA compute capability (`9.0`) or AMD GFX target (`gfx90a`). */
  computeCapability?: string;
  /** CPU only: logical cores, instruction-set architecture, SIMD features. */
  cores?: number;
  architecture?: string;
  features?: string[];
}

/** A detector's answer. A missing vendor tool is `{ present: false, reason }`, never an error. */
export interface DetectionResult {
  present: boolean;
  /** Why nothing is present (tool not installed, driver not loaded, no devices). */
  reason?: string;
  /** The tool that answered, and its version when it prints one. */
  tool?: { name: string; version?: string };
  devices: DetectedDevice[];
}

/** What a detector extension registers with `contributions.register('accelerators', id, detector)`. */
export interface AcceleratorDetector {
  detect(): Promise<DetectionResult>;
}

export function notPresent(reason: string, tool?: DetectionResult['tool']): DetectionResult {
  return { present: false, reason, ...(tool ? { tool } : {}), devices: [] };
}

/** A number as vendor tools print it; `[N/A]`, `N/A`, `[Not Supported]` and blanks read as unknown. */
export function readNumber(text: string | number | undefined | null): number | undefined {
  if (typeof text === 'number') return Number.isFinite(text) ? text : undefined;
  if (text === undefined || text === null) return undefined;
  const trimmed = text.trim();
  if (trimmed === '' || /^\[?(N\/A|Not Supported|Unknown Error|Insufficient Permissions)\]?$/i.test(trimmed)) return undefined;
  const n = Number(trimmed);
  return Number.isFinite(n) ? n : Number.NaN;
}

/** Drops keys whose value is undefined, so a device carries only what was read. */
export function defined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
