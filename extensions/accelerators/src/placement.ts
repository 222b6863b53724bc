import { AionError } from '@aion/extension-api';
import { NO_ACCELERATOR, type AcceleratorDevice, type AcceleratorSnapshot, type GpuRequirement } from './api.js';

/** `a GPU of vendor nvidia with 16384 MiB free`: the requirement as a person reads it. */
export function describeRequirement(requirement: GpuRequirement): string {
  const who = requirement.vendor ? `a GPU of vendor ${requirement.vendor}` : 'a GPU';
  return requirement.memoryMiB ? `${who} with ${requirement.memoryMiB} MiB free` : who;
}

function describeDevice(d: AcceleratorDevice): string {
  const free = d.memoryFreeMiB !== undefined ? `${d.memoryFreeMiB} MiB free` : 'free memory unknown';
  return `${d.id} ${d.name} (${free})`;
}

/** Why a device does not fit, or undefined when it does. */
function misfit(device: AcceleratorDevice, requirement: GpuRequirement): string | undefined {
  if (device.kind !== 'gpu') return 'not a GPU';
  if (requirement.vendor && device.vendor !== requirement.vendor) return `vendor ${device.vendor}`;
  if (requirement.memoryMiB) {
    if (device.memoryFreeMiB === undefined) return 'its free memory is not reported';
    if (device.memoryFreeMiB < requirement.memoryMiB) return `only ${device.memoryFreeMiB} MiB free`;
  }
  return undefined;
}

/**
 * The GPU with the most free memory among those that fit, from the last reading. Memory is not
 * reserved: two calls can be placed on one device; the jobs extension serialises GPU work per worker.
 */
export function findDevice(snapshot: AcceleratorSnapshot, requirement: GpuRequirement = {}): AcceleratorDevice {
  const fitting = snapshot.devices.filter((d) => misfit(d, requirement) === undefined);
  if (fitting.length > 0) return fitting.sort((a, b) => (b.memoryFreeMiB ?? -1) - (a.memoryFreeMiB ?? -1) || a.id.localeCompare(b.id))[0]!;
  const gpus = snapshot.devices.filter((d) => d.kind === 'gpu');
  const seen = gpus.length ? `present: ${gpus.map((d) => `${describeDevice(d)}: ${misfit(d, requirement)}`).join('; ')}` : 'no GPU is present';
  const silent = snapshot.detectors
    .filter((d) => d.kind === 'gpu' && d.state !== 'present')
    .map((d) => `${d.id}: ${d.state === 'error' ? `${d.error?.code} ${d.error?.message}` : (d.reason ?? 'not present')}`);
  throw new AionError(
    NO_ACCELERATOR,
    `This work requires ${describeRequirement(requirement)} and none is available on ${snapshot.node} (${seen}${silent.length ? `; ${silent.join('; ')}` : ''}).`,
    {
      details: {
        required: requirement,
        node: snapshot.node,
        devices: gpus.map((d) => ({ id: d.id, vendor: d.vendor, name: d.name, memoryFreeMiB: d.memoryFreeMiB, misfit: misfit(d, requirement) })),
        detectors: snapshot.detectors.map((d) => ({
          id: d.id,
          state: d.state,
          ...(d.reason ? { reason: d.reason } : {}),
          ...(d.error ? { error: d.error } : {}),
        })),
      },
    },
  );
}
