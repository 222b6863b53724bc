import { SandboxError } from '../errors.js';

/** The accelerator a native skill is placed on, as `aion.accelerators` reports it. */
export interface AcceleratorSelection {
  /** `nvidia`, `amd` or `intel`. */
  vendor: string;
  /** The vendor tool's index of the device. */
  index: number;
  /** NVIDIA: the GPU's UUID, preferred over the index because CUDA may enumerate in another order. */
  uuid?: string;
}

/**
 * The variable that makes the vendor runtime show the skill only its device. It selects; it does
 * not isolate: a process that ignores it can still open other devices the OS lets it open.
 */
export function visibleDeviceEnvironment(device: AcceleratorSelection): Record<string, string> {
  if (!Number.isInteger(device.index) || device.index < 0) throw new SandboxError('INVALID_REQUEST', 'accelerator.index must be a non-negative integer.');
  switch (device.vendor) {
    case 'nvidia':
      return { CUDA_VISIBLE_DEVICES: device.uuid && /^(GPU|MIG)-[0-9A-Za-z-]+$/.test(device.uuid) ? device.uuid : String(device.index) };
    case 'amd':
      return { HIP_VISIBLE_DEVICES: String(device.index) };
    case 'intel':
      return { ONEAPI_DEVICE_SELECTOR: `level_zero:${device.index}` };
    default:
      throw new SandboxError('INVALID_REQUEST', `There is no way to hand a ${device.vendor} device to a process skill; nvidia, amd and intel are supported.`);
  }
}
