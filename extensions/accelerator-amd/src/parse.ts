import { defined, outputInvalid, readNumber, type DetectedDevice } from '@aion/ext-accelerators/kit';

/** `rocm-smi --showproductname --showmeminfo vram --json`, plus utilization, temperature, unique id and driver version. */
export const ROCM_SMI_ARGS = [
  '--showproductname',
  '--showmeminfo',
  'vram',
  '--showuse',
  '--showtemp',
  '--showuniqueid',
  '--showdriverversion',
  '--json',
] as const;

const MIB = 1024 * 1024;

/** What rocm-smi prints instead of JSON on a machine without a usable AMD GPU. */
const ABSENT = [
  { pattern: /amdgpu not found|Driver not initialized/i, reason: 'rocm-smi cannot find the amdgpu driver (not loaded, or no AMD GPU)' },
  { pattern: /No AMD GPUs? (specified|found|detected)/i, reason: 'rocm-smi found no AMD GPUs' },
];

export function absentReason(output: string): string | undefined {
  return ABSENT.find((a) => a.pattern.test(output))?.reason;
}

type Card = Record<string, unknown>;

/** A field by its label, ignoring case: ROCm 5 prints `Card series`, ROCm 6 `Card Series`. */
function field(card: Card, ...labels: string[]): string | undefined {
  for (const label of labels) {
    const key = Object.keys(card).find((k) => k.toLowerCase() === label.toLowerCase());
    const value = key === undefined ? undefined : card[key];
    if (typeof value === 'string' || typeof value === 'number') {
      const text = String(value).trim();
      if (text && !/^(N\/A|\[?Not Supported\]?)$/i.test(text)) return text;
    }
  }
  return undefined;
}

/**
 * Parses `rocm-smi … --json` (ROCm 5.x and 6.x): an object with one `cardN` key per GPU holding
 * string values (`"VRAM Total Memory (B)": "68702699520"`), and a `system` key with the driver version.
 * rocm-smi may print warnings before the JSON; they are skipped.
 */
export function parseRocmSmi(stdout: string): DetectedDevice[] {
  const start = stdout.indexOf('{');
  if (start < 0) throw outputInvalid('rocm-smi', 'there is no JSON object in it', stdout);
  let data: unknown;
  try {
    data = JSON.parse(stdout.slice(start));
  } catch (err) {
    throw outputInvalid('rocm-smi', `its JSON does not parse (${(err as Error).message})`, stdout);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw outputInvalid('rocm-smi', 'the JSON is not an object of cards', stdout);
  const system = (data as Record<string, Card>).system ?? {};
  const driverVersion = typeof system === 'object' ? field(system, 'Driver version') : undefined;
  const cards = Object.entries(data as Record<string, unknown>).filter(([key]) => /^card\d+$/.test(key));
  return cards
    .map(([key, value]) => {
      if (typeof value !== 'object' || value === null) throw outputInvalid('rocm-smi', `${key} is not an object`, stdout);
      const card = value as Card;
      const number = (label: string, ...labels: string[]) => {
        const text = field(card, label, ...labels);
        const n = readNumber(text);
        if (Number.isNaN(n)) throw outputInvalid('rocm-smi', `${key} "${label}" is "${text}", not a number`, stdout);
        return n;
      };
      const totalBytes = number('VRAM Total Memory (B)');
      const usedBytes = number('VRAM Total Used Memory (B)');
      const totalMiB = totalBytes === undefined ? undefined : Math.floor(totalBytes / MIB);
      const usedMiB = usedBytes === undefined ? undefined : Math.floor(usedBytes / MIB);
      const gfx = field(card, 'GFX Version');
      return defined<DetectedDevice>({
        index: Number(key.slice(4)),
        name: field(card, 'Card Series', 'Card series', 'Device Name', 'Card Model', 'Card model') ?? key,
        uuid: field(card, 'Unique ID', 'GUID'),
        memoryTotalMiB: totalMiB,
        memoryUsedMiB: usedMiB,
        memoryFreeMiB: totalMiB !== undefined && usedMiB !== undefined ? Math.max(0, totalMiB - usedMiB) : undefined,
        utilizationPercent: number('GPU use (%)'),
        temperatureC: number('Temperature (Sensor edge) (C)', 'Temperature (Sensor junction) (C)'),
        driverVersion,
        runtime: { name: 'ROCm' },
        computeCapability: gfx && /^gfx[0-9a-f]+$/i.test(gfx) ? gfx.toLowerCase() : undefined,
      });
    })
    .sort((a, b) => a.index - b.index);
}
