import { NotificationType, RequestType } from 'vscode-jsonrpc';
import type { ExtensionManifest, HostKind } from '../../manifest.js';
import type { LogLevel } from '../../types.js';
import type { ProtocolSlice } from './slice.js';

export interface ExtensionDescription {
  id: string;
  manifest: ExtensionManifest;
  /** Absolute install directory. */
  extensionPath: string;
  /** Absolute path of the module to import, or undefined for manifest-only extensions. */
  mainPath?: string;
  /** Absolute, extension-private storage directory. */
  storagePath: string;
  /** The extension's configuration section, validated and with defaults applied. */
  configuration: Record<string, unknown>;
}

export interface ActivateResult {
  /** Names of the functions on the object `activate` returned: the extension's public API. */
  apiMethods: string[];
  activationMs: number;
}

/** A host's life: liveness, loading and unloading extensions, and the log lines their code writes. */
export const LifecycleProtocol = {
  kernel: {
    log: new NotificationType<{ extensionId?: string; level: LogLevel; message: string; data?: Record<string, unknown> }>('$log'),
  },
  host: {
    ping: new RequestType<{ sentAt: number }, { sentAt: number }, void>('$ping'),
    activate: new RequestType<{ extension: ExtensionDescription; hostKind: HostKind }, ActivateResult, void>('$activate'),
    deactivate: new RequestType<{ extensionId: string }, void, void>('$deactivate'),
  },
} as const satisfies ProtocolSlice;
