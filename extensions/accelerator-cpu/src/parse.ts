import { outputInvalid } from '@aion/ext-accelerators/kit';

export const LSCPU_ARGS = ['--json'] as const;

/** SIMD and matrix extensions, as Linux names them in the CPU flags (x86 and Arm). */
const SIMD =
  /^(mmx|sse|sse2|pni|ssse3|sse4_1|sse4_2|sse4a|avx|avx2|avx512\w*|avx_vnni\w*|avx10\w*|fma|fma4|f16c|amx_\w+|asimd\w*|fphp|sve\w*|sme\w*|i8mm|bf16)$/;

export interface LscpuFacts {
  model?: string;
  vendor?: string;
  architecture?: string;
  /** SIMD features (SSE3 under its common name: Linux calls it `pni`). */
  features: string[];
}

type Row = { field?: unknown; data?: unknown; children?: Row[] };

/**
 * Parses `lscpu --json` (util-linux 2.38): `{ "lscpu": [{ "field": "Flags:", "data": "fpu vme … avx2" }, …] }`;
 * newer releases may nest rows under `children`, which are read as well.
 */
export function parseLscpu(stdout: string): LscpuFacts {
  let data: unknown;
  try {
    data = JSON.parse(stdout);
  } catch (err) {
    throw outputInvalid('lscpu', `its JSON does not parse (${(err as Error).message})`, stdout);
  }
  const rows = (data as { lscpu?: unknown } | null)?.lscpu;
  if (!Array.isArray(rows)) throw outputInvalid('lscpu', 'there is no "lscpu" array', stdout);
  const fields = new Map<string, string>();
  const visit = (list: Row[]) => {
    for (const row of list) {
      if (typeof row?.field === 'string' && typeof row.data === 'string') fields.set(row.field.replace(/:$/, '').trim(), row.data.trim());
      if (Array.isArray(row?.children)) visit(row.children);
    }
  };
  visit(rows as Row[]);
  const flags = (fields.get('Flags') ?? '').split(/\s+/).filter(Boolean);
  return {
    model: fields.get('Model name'),
    vendor: fields.get('Vendor ID'),
    architecture: fields.get('Architecture'),
    features: [...new Set(flags.filter((f) => SIMD.test(f)).map((f) => (f === 'pni' ? 'sse3' : f)))],
  };
}
