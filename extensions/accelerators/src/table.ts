import type { AcceleratorSnapshot } from './api.js';

const dash = '-';

function memory(used: number | undefined, total: number | undefined): string {
  if (total === undefined) return dash;
  const gib = (mib: number) => (mib / 1024).toFixed(1);
  return used === undefined ? `${gib(total)} GiB` : `${gib(used)}/${gib(total)} GiB`;
}

/** `aion accelerators` for a terminal: one row per device, then how each detector fared. */
export function renderTable(snapshot: AcceleratorSnapshot): string {
  const header = ['DEVICE', 'NODE', 'NAME', 'MEMORY', 'UTIL', 'TEMP', 'DRIVER', 'RUNTIME', 'COMPUTE'];
  const rows = snapshot.devices.map((d) => [
    d.id,
    d.node,
    d.kind === 'cpu' ? `${d.name}${d.cores ? ` (${d.cores} cores)` : ''}` : d.name,
    memory(d.memoryUsedMiB, d.memoryTotalMiB),
    d.utilizationPercent === undefined ? dash : `${d.utilizationPercent}%`,
    d.temperatureC === undefined ? dash : `${d.temperatureC} C`,
    d.driverVersion ?? dash,
    d.runtime ? `${d.runtime.name}${d.runtime.version ? ` ${d.runtime.version}` : ''}` : dash,
    d.computeCapability ?? (d.features?.length ? simdSummary(d.features) : dash),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  const out = [line(header), ...rows.map(line)];
  if (rows.length === 0) out.push('(no devices)');
  out.push('', 'Detectors:');
  for (const s of snapshot.detectors) {
    const what =
      s.state === 'present'
        ? `${s.devices} device${s.devices === 1 ? '' : 's'}`
        : s.state === 'absent'
          ? `not present: ${s.reason}`
          : `ERROR ${s.error?.code}: ${s.error?.message}`;
    out.push(`  ${s.id.padEnd(10)} ${s.extensionId.padEnd(28)} ${what}${s.tool ? ` [${s.tool.name}${s.tool.version ? ` ${s.tool.version}` : ''}]` : ''}`);
  }
  return out.join('\n');
}

/** The widest SIMD families a CPU has, for one table cell. */
function simdSummary(features: readonly string[]): string {
  const picks = ['avx512f', 'avx2', 'avx', 'sse4_2', 'sve2', 'sve', 'asimd', 'neon', 'amx_tile'];
  const have = picks.filter((p) => features.includes(p));
  return have.length ? have.slice(0, 3).join(' ') : dash;
}
