/**
 * The API of `aion.accelerators`, for other extensions:
 * `const acc = await aion.extensions.getApi<AcceleratorsApi>('aion.accelerators')`.
 */
import type { DetectedDevice } from './kit/detection.js';

export type { AcceleratorDetector, DetectedDevice, DetectionResult } from './kit/detection.js';

/** `gpu` devices are what `resources.gpu` asks for; the `cpu` entry describes the host's processors. */
export type DeviceKind = 'gpu' | 'cpu';

/** One device, as the last reading saw it. */
export interface AcceleratorDevice extends DetectedDevice {
  /** `<detector>:<index>`, e.g. `nvidia:0`: stable while the machine's devices stay put. */
  id: string;
  /** Which machine it is on: `hub` for the machine this kernel runs on. */
  node: string;
  vendor: string;
  kind: DeviceKind;
  /** The `accelerators` entry that found it, and the extension that contributes that entry. */
  detector: string;
  extensionId: string;
  /** When the reading was taken (ISO 8601). */
  readAt: string;
}

/** What a piece of work needs: `resources.gpu` in a skill, provider or queue entry, or a caller's `find()`. */
export interface GpuRequirement {
  /** `nvidia`, `amd` or `intel` (any detector's vendor); any vendor when absent. */
  vendor?: string;
  /** Memory that must be free on the device, in MiB. */
  memoryMiB?: number;
}

/** How one detector fared in the last refresh. */
export interface DetectorStatus {
  id: string;
  extensionId: string;
  vendor: string;
  kind: DeviceKind;
  /** `present`: devices found; `absent`: tool missing or no devices (not a fault); `error`: the detector or its tool failed. */
  state: 'present' | 'absent' | 'error';
  reason?: string;
  error?: { code: string; message: string };
  tool?: { name: string; version?: string };
  devices: number;
  durationMs: number;
  checkedAt: string;
}

export interface AcceleratorSnapshot {
  node: string;
  refreshedAt: string;
  refreshIntervalMs: number;
  devices: AcceleratorDevice[];
  detectors: DetectorStatus[];
}

/** One gauge in the shape prom-client's `getMetricsAsJSON()` uses, so an exporter can take it as it is. */
export interface MetricFamily {
  name: string;
  help: string;
  type: 'gauge';
  values: Array<{ labels: Record<string, string>; value: number }>;
}

export interface AcceleratorsApi {
  /** Every device of the last reading (the first call waits for the first reading). */
  list(): Promise<AcceleratorSnapshot>;
  /**
   * The best GPU for `requirement`: of the right vendor, with `memoryMiB` free, the most free memory
   * first. Fails with NO_ACCELERATOR, naming what was required and what is present, when none fits.
   */
  find(requirement?: GpuRequirement): Promise<AcceleratorDevice>;
  /** Gauges by device: `aion_gpu_utilization_ratio`, `aion_gpu_memory_used_bytes`, `aion_gpu_memory_total_bytes`. */
  readings(): Promise<MetricFamily[]>;
  /** Reads every detector now (joins a refresh already running) and returns the new snapshot. */
  refresh(): Promise<AcceleratorSnapshot>;
}

export const NO_ACCELERATOR = 'NO_ACCELERATOR';
