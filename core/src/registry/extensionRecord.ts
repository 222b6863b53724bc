import type { ErrorPayload, ExtensionManifest, HostKind } from '@aion/extension-api';

export type ExtensionState = 'invalid' | 'skipped' | 'inactive' | 'activating' | 'active' | 'failed' | 'disabled';

/** Everything the kernel knows about one extension; nothing here is lost when its host dies. */
export interface ExtensionRecord {
  id: string;
  manifest: ExtensionManifest;
  manifestPath: string;
  extensionPath: string;
  /** Where it was found: the built-in folder, the data directory, or an `--extensions-dir`. */
  source: 'builtin' | 'data' | 'external';
  /** Shipped with the kernel: its folder is in the kernel's built-in extensions folder, however it was found. */
  builtin: boolean;
  hostKind: HostKind;
  /** Extensions with the same key share one host process (see hosts/placement.ts). */
  hostKey: string;
  /** How the host enforces this extension's permissions. */
  enforcement: 'trusted' | 'os' | 'advisory';
  /** Why it runs in another host than its manifest asked for, if it does. */
  placementReason?: string;
  state: ExtensionState;
  errors: ErrorPayload[];
  warnings: ErrorPayload[];
  activationEvents: string[];
  activationMs?: number;
  activatedBy?: string;
  apiMethods?: string[];
  configuration: Record<string, unknown>;
  storagePath: string;
}

/** A folder that held a package.json but could not become a record. */
export interface RejectedExtension {
  manifestPath: string;
  id?: string;
  errors: ErrorPayload[];
}
