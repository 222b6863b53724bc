import { defined, outputInvalid, readNumber, type DetectedDevice } from '@aion/ext-accelerators/kit';

/** The fields asked of `nvidia-smi --query-gpu`, in the order it prints them. */
export const QUERY_FIELDS = [
  'index',
  'name',
  'uuid',
  'memory.total',
  'memory.used',
  'memory.free',
  'utilization.gpu',
  'temperature.gpu',
  'driver_version',
  'compute_cap',
] as const;

/** A string for each field of a tuple of fields. */
type OneCellEach<T extends readonly unknown[]> = { -readonly [K in keyof T]: string };

export const QUERY_ARGS = [`--query-gpu=${QUERY_FIELDS.join(',')}`, '--format=csv,noheader,nounits'] as const;

/** `nvidia-smi --version` (driver 525 and later) prints the CUDA version the driver supports. */
export const VERSION_ARGS = ['--version'] as const;

export interface NvidiaVersions {
  smiVersion?: string;
  driverVersion?: string;
  cudaVersion?: string;
}

/** Lines nvidia-smi prints instead of data when the machine has no usable GPU: not a fault of the detector. */
const ABSENT = [
  { pattern: /couldn't communicate with the NVIDIA driver/i, reason: 'nvidia-smi cannot reach the NVIDIA driver (not loaded, or no NVIDIA GPU)' },
  { pattern: /No devices were found/i, reason: 'nvidia-smi found no NVIDIA devices' },
];

export function absentReason(output: string): string | undefined {
  return ABSENT.find((a) => a.pattern.test(output))?.reason;
}

/**
 * Parses `nvidia-smi --query-gpu=<QUERY_FIELDS> --format=csv,noheader,nounits`: one line per GPU,
 * fields separated by ", ", unavailable values printed as `[N/A]` or `[Not Supported]`.
 */
export function parseQuery(stdout: string): DetectedDevice[] {
  const lines = stdout
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.map((line) => {
    const cells = line.split(/,\s*/);
    if (cells.length !== QUERY_FIELDS.length)
      throw outputInvalid('nvidia-smi', `a line has ${cells.length} fields where ${QUERY_FIELDS.length} were asked for (${QUERY_FIELDS.join(',')})`, line);
    // One string per field asked for: the length was checked above.
    const [index, name, uuid, total, used, free, utilization, temperature, driver, computeCap] = cells as unknown as OneCellEach<typeof QUERY_FIELDS>;
    const n = (label: string, value: string) => {
      const parsed = readNumber(value);
      if (Number.isNaN(parsed)) throw outputInvalid('nvidia-smi', `${label} is "${value}", not a number`, line);
      return parsed;
    };
    const idx = n('index', index);
    if (idx === undefined || !Number.isInteger(idx) || idx < 0) throw outputInvalid('nvidia-smi', `index is "${index}"`, line);
    if (!name) throw outputInvalid('nvidia-smi', 'a GPU has no name', line);
    const known = (value: string) => (/^\[?(N\/A|Not Supported)\]?$/i.test(value.trim()) ? undefined : value.trim() || undefined);
    return defined<DetectedDevice>({
      index: idx,
      name,
      uuid: known(uuid),
      memoryTotalMiB: n('memory.total', total),
      memoryUsedMiB: n('memory.used', used),
      memoryFreeMiB: n('memory.free', free),
      utilizationPercent: n('utilization.gpu', utilization),
      temperatureC: n('temperature.gpu', temperature),
      driverVersion: known(driver),
      computeCapability: known(computeCap),
    });
  });
}

/** Parses `nvidia-smi --version`: `NVIDIA-SMI version  : 550.54.15`, `DRIVER version : …`, `CUDA Version : 12.4`. */
export function parseVersion(stdout: string): NvidiaVersions {
  const field = (label: RegExp) => stdout.match(label)?.[1]?.trim();
  return defined<NvidiaVersions>({
    smiVersion: field(/^NVIDIA-SMI version\s*:\s*(\S+)/im),
    driverVersion: field(/^DRIVER version\s*:\s*(\S+)/im),
    cudaVersion: cuda(field(/^CUDA Version\s*:\s*(\S+)/im)),
  });
}

/** Parses the header of plain `nvidia-smi`: `| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: 12.4 |`. */
export function parseHeader(stdout: string): NvidiaVersions {
  return defined<NvidiaVersions>({
    smiVersion: stdout.match(/NVIDIA-SMI\s+(\d[\w.]*)/)?.[1],
    driverVersion: stdout.match(/Driver Version:\s*(\d[\w.]*)/)?.[1],
    cudaVersion: cuda(stdout.match(/CUDA Version:\s*(\S+)/)?.[1]),
  });
}

function cuda(value: string | undefined): string | undefined {
  return value && /^\d+(\.\d+)*$/.test(value) ? value : undefined;
}
