import { defined, outputInvalid, readNumber, type DetectedDevice } from '@aion/ext-accelerators/kit';

export const DISCOVERY_ARGS = ['discovery', '-j'] as const;
export const deviceArgs = (id: number) => ['discovery', '-d', String(id), '-j'] as const;

const MIB = 1024 * 1024;
const LEVEL_ZERO = { name: 'Level Zero' };

function parseJson(tool: string, stdout: string): Record<string, unknown> {
  let data: unknown;
  try {
    data = JSON.parse(stdout);
  } catch (err) {
    throw outputInvalid(tool, `its JSON does not parse (${(err as Error).message})`, stdout);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw outputInvalid(tool, 'the JSON is not an object', stdout);
  return data as Record<string, unknown>;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() ? value.trim() : typeof value === 'number' ? String(value) : undefined;
}

/** Bytes that xpu-smi prints as a number or a string, in MiB. */
function mib(value: unknown, label: string, stdout: string): number | undefined {
  const n = readNumber(value as string | number | undefined);
  if (Number.isNaN(n)) throw outputInvalid('xpu-smi', `${label} is "${String(value)}", not a number`, stdout);
  return n === undefined ? undefined : Math.floor(n / MIB);
}

/**
 * Parses `xpu-smi discovery -j` (xpu-smi 1.2): `{ "device_list": [{ "device_id": 0, "device_name":
 * "Intel(R) Data Center GPU Max 1550", "device_type": "GPU", "uuid": …, … }] }`. Only GPUs count.
 */
export function parseDiscovery(stdout: string): DetectedDevice[] {
  const data = parseJson('xpu-smi', stdout);
  if (data.error !== undefined) throw outputInvalid('xpu-smi', `it reports an error: ${String(data.error)}`, stdout);
  const list = data.device_list;
  if (!Array.isArray(list)) throw outputInvalid('xpu-smi', 'there is no device_list array', stdout);
  return list
    .filter((d) => typeof d === 'object' && d !== null && (d as Record<string, unknown>).device_type !== 'Unknown')
    .map((d) => deviceFrom(d as Record<string, unknown>, stdout));
}

/** One xpu-smi device object (from the listing, or the details of one device). */
function deviceFrom(d: Record<string, unknown>, stdout: string): DetectedDevice {
  const index = d.device_id;
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 0) throw outputInvalid('xpu-smi', `device_id is ${JSON.stringify(index)}`, stdout);
  const name = text(d.device_name);
  if (!name) throw outputInvalid('xpu-smi', `device ${index} has no device_name`, stdout);
  const total = mib(d.memory_physical_size_byte, 'memory_physical_size_byte', stdout);
  const free = mib(d.memory_free_size_byte, 'memory_free_size_byte', stdout);
  // Integrated GPUs share system memory and report 0 or nothing: their memory is unknown here.
  return defined<DetectedDevice>({
    index,
    name,
    uuid: text(d.uuid),
    memoryTotalMiB: total || undefined,
    memoryFreeMiB: total ? free : undefined,
    memoryUsedMiB: total && free !== undefined ? Math.max(0, total - free) : undefined,
    driverVersion: text(d.driver_version),
    runtime: LEVEL_ZERO,
  });
}

/** Parses `xpu-smi discovery -d <id> -j`: one device's details (memory, driver version), merged into its listing. */
export function parseDeviceDetails(stdout: string, listed: DetectedDevice): DetectedDevice {
  return { ...listed, ...deviceFrom({ device_id: listed.index, device_name: listed.name, ...parseJson('xpu-smi', stdout) }, stdout) };
}

/**
 * Parses `sycl-ls` (oneAPI 2023: `[ext_oneapi_level_zero:gpu:0] Intel(R) Level-Zero, <device> 1.3 [1.3.26241]`;
 * oneAPI 2024 and later: `[level_zero:gpu][level_zero:0] Intel(R) oneAPI Unified Runtime over Level-Zero, <device> 12.55.8 [1.3.29735+27]`).
 * Only Level Zero GPUs count: they are what ONEAPI_DEVICE_SELECTOR=level_zero:<index> selects.
 */
export function parseSyclLs(stdout: string): DetectedDevice[] {
  const devices: DetectedDevice[] = [];
  for (const line of stdout
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean)) {
    if (!line.startsWith('[')) continue;
    if (!/^\[(ext_oneapi_)?level_zero:gpu/.test(line)) continue;
    const m = line.match(/^\[(?:ext_oneapi_)?level_zero:gpu(?::(\d+))?\](?:\[level_zero:(\d+)\])?\s+[^,]+,\s+(.+?)\s+(\d[\w.]*)\s+\[([^\]]+)\]$/);
    if (!m) throw outputInvalid('sycl-ls', 'a Level Zero GPU line is not in the documented form', line);
    const index = Number(m[1] ?? m[2]);
    if (!Number.isInteger(index)) throw outputInvalid('sycl-ls', 'a Level Zero GPU line has no index', line);
    devices.push({ index, name: m[3]!, driverVersion: m[5]!, runtime: LEVEL_ZERO });
  }
  return devices;
}
