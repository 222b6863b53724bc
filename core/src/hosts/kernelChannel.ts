import { AionError, ErrorCodes } from '@aion/extension-api';
import type { Logger } from '../logging.js';
import type { HostConnection } from './hostManager.js';

/**
 * The kernel half of one capability's protocol slice: it answers the slice's `kernel` messages from
 * each host as that host starts. Each lives beside its capability's registry; the kernel binds them
 * all to `TYPES.KernelChannel` and `KernelEndpoint` attaches every one to every host.
 */
export interface KernelChannel {
  attach(host: HostConnection, log: Logger): void;
}

/** Whether `host` runs `extensionId`: a host may act only for its own extensions. */
export function hostRuns(host: HostConnection, extensionId: string | undefined): extensionId is string {
  return extensionId !== undefined && host.extensions.has(extensionId);
}

/** Refuses a request in which a host claims to act for an extension it does not run. */
export function assertHostRuns(host: HostConnection, extensionId: string | undefined): void {
  if (!hostRuns(host, extensionId)) {
    throw new AionError(ErrorCodes.PERMISSION_DENIED, `host ${host.key} acted for ${extensionId ?? 'an unnamed extension'}, which it does not run`);
  }
}
