import type { AcceleratorSnapshot, MetricFamily } from './api.js';

const MIB = 1024 * 1024;

/** Gauges by device from one snapshot: what an exporter publishes at /metrics. */
export function gauges(snapshot: AcceleratorSnapshot): MetricFamily[] {
  const gpus = snapshot.devices.filter((d) => d.kind === 'gpu');
  const labels = (d: (typeof gpus)[number]) => ({ device: d.id, node: d.node, vendor: d.vendor, name: d.name, ...(d.uuid ? { uuid: d.uuid } : {}) });
  const family = (name: string, help: string, value: (d: (typeof gpus)[number]) => number | undefined): MetricFamily => ({
    name,
    help,
    type: 'gauge',
    values: gpus.flatMap((d) => {
      const v = value(d);
      return v === undefined ? [] : [{ labels: labels(d), value: v }];
    }),
  });
  return [
    family('aion_gpu_utilization_ratio', "Share of time the GPU was busy over the vendor tool's sample period (0 to 1).", (d) =>
      d.utilizationPercent === undefined ? undefined : d.utilizationPercent / 100,
    ),
    family('aion_gpu_memory_used_bytes', 'GPU memory in use, in bytes.', (d) => (d.memoryUsedMiB === undefined ? undefined : d.memoryUsedMiB * MIB)),
    family('aion_gpu_memory_total_bytes', 'GPU memory in all, in bytes.', (d) => (d.memoryTotalMiB === undefined ? undefined : d.memoryTotalMiB * MIB)),
  ];
}
