/**
 * What the kernel reports about itself, as the `kernel.telemetry` event: aggregated samples since the
 * previous report, and the state of hosts now. An extension turns it into metrics; the kernel knows
 * no metrics system.
 */

/** The event the kernel emits about once a second, only while something listens to it. */
export const TELEMETRY_EVENT = 'kernel.telemetry';

/** Finished HTTP requests of one route template, method, status and error code, with their durations. */
export interface HttpRequestSamples {
  method: string;
  /** The declared route template (`/v1/sessions/:id`), or `unmatched`: never a raw path. */
  route: string;
  status: number;
  /** The stable error code of an error answer. */
  code?: string;
  durationsMs: number[];
}

/** Kernel → host requests of one host and protocol method, with their durations. */
export interface RpcCallSamples {
  host: string;
  method: string;
  failed: boolean;
  durationsMs: number[];
}

export interface HostSnapshot {
  key: string;
  kind: string;
  state: 'running' | 'unresponsive' | 'exited' | 'disabled';
  pid?: number;
  extensions: string[];
  starts: number;
  crashes: number;
}

/** What `kernel.telemetry` carries: everything since the previous flush, plus the state right now. */
export interface TelemetryBatch {
  intervalMs: number;
  http: HttpRequestSamples[];
  rpc: RpcCallSamples[];
  hosts: HostSnapshot[];
  inFlightRequests: number;
}

/** The event the kernel emits each time an extension's state changes at runtime (activation, disable, enable, host crash). */
export const EXTENSION_STATE_EVENT = 'kernel.extensionState';

/** What `kernel.extensionState` carries: the extension, its new and previous state, and the error that caused it, if any. */
export interface ExtensionStateChange {
  id: string;
  state: 'invalid' | 'skipped' | 'inactive' | 'activating' | 'active' | 'failed' | 'disabled';
  previous: ExtensionStateChange['state'];
  hostKey: string;
  activationMs: number | null;
  error: { code: string; message: string } | null;
}
