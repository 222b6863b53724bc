/**
 * The whole kernel <-> extension-host contract, in one place. Requests a host sends are handled by
 * the kernel (`KernelProtocol`); requests the kernel sends are handled by a host (`HostProtocol`).
 * Only data crosses: JSON values, stream markers and cancellation.
 */
import { NotificationType, RequestType } from 'vscode-jsonrpc';
import type { ExposeDeclaration, ExtensionManifest, HookKind, HostKind } from '../manifest.js';
import type { HttpRequestData, HttpResponseData, LogLevel, Principal } from '../types.js';

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

/**
 * What ties a call to the HTTP request it serves: W3C trace context (`traceparent`, `tracestate`) and the
 * edge's request id. Optional on every message that carries a call; absent when nothing is being traced
 * or served, so a host that ignores it loses nothing but the link.
 */
export interface CallContext {
  traceparent?: string;
  tracestate?: string;
  requestId?: string;
}

/** `callerId` is the calling extension, verified by the kernel; absent for calls from the kernel itself. */
export interface InvokeApiParams {
  extensionId: string;
  method: string;
  args: unknown[];
  callerId?: string;
  context?: CallContext;
}
/** `extensionId` (kernel to host): whose implementation runs, as the kernel resolved it. */
export interface InvokeContributionParams {
  point: string;
  id: string;
  method: string;
  args: unknown[];
  callerId?: string;
  extensionId?: string;
  context?: CallContext;
}
/** Credentials of a signed-in user a caller acts for, as it received them (`commands.executeFor`). */
export interface ActingFor {
  authorization?: string;
  apiKey?: string;
}
/** `callerId`: the extension asking (verified by the kernel); `principal`: the user it acts for, verified by the kernel. */
export interface ExecuteCommandParams {
  command: string;
  args: unknown[];
  callerId?: string;
  actingFor?: ActingFor;
  principal?: Principal;
  context?: CallContext;
}
export interface HandleRouteParams {
  extensionId: string;
  route: string;
  request: HttpRequestData;
  context?: CallContext;
}

/** Requests and notifications a host sends; the kernel implements them. */
export const KernelProtocol = {
  log: new NotificationType<{ extensionId?: string; level: LogLevel; message: string; data?: Record<string, unknown> }>('$log'),
  registerCommand: new NotificationType<{ extensionId: string; command: string }>('$registerCommand'),
  unregisterCommand: new NotificationType<{ extensionId: string; command: string }>('$unregisterCommand'),
  executeCommand: new RequestType<ExecuteCommandParams, unknown, void>('$executeCommand'),
  getApi: new RequestType<{ callerId: string; extensionId: string; context?: CallContext }, { apiMethods: string[] }, void>('$getApi'),
  invokeApi: new RequestType<InvokeApiParams, unknown, void>('$invokeApi'),
  registerContribution: new NotificationType<{ extensionId: string; point: string; id: string; methods: string[] }>('$registerContribution'),
  unregisterContribution: new NotificationType<{ extensionId: string; point: string; id: string }>('$unregisterContribution'),
  resolveContribution: new RequestType<{ point: string; id: string }, { methods: string[] }, void>('$resolveContribution'),
  listContributions: new RequestType<{ point: string }, Array<{ extensionId: string; entry: Record<string, unknown>; expose?: ExposeDeclaration }>, void>(
    '$listContributions',
  ),
  invokeContribution: new RequestType<InvokeContributionParams, unknown, void>('$invokeContribution'),
  tapHook: new NotificationType<{ extensionId: string; hook: string; tapId: string }>('$tapHook'),
  untapHook: new NotificationType<{ tapId: string }>('$untapHook'),
  callHook: new RequestType<{ hook: string; payload: unknown; context?: CallContext }, unknown, void>('$callHook'),
  getSecret: new RequestType<{ extensionId: string; name: string }, string | null, void>('$getSecret'),
  subscribeEvent: new NotificationType<{ event: string }>('$subscribeEvent'),
  emitEvent: new NotificationType<{ extensionId: string; event: string; data: unknown }>('$emitEvent'),
  realtimePublish: new NotificationType<{ extensionId: string; room: string; event: string; data: unknown }>('$realtimePublish'),
};

/** Requests and notifications the kernel sends; every host implements them. */
export const HostProtocol = {
  ping: new RequestType<{ sentAt: number }, { sentAt: number }, void>('$ping'),
  activate: new RequestType<{ extension: ExtensionDescription; hostKind: HostKind }, ActivateResult, void>('$activate'),
  deactivate: new RequestType<{ extensionId: string }, void, void>('$deactivate'),
  handleRoute: new RequestType<HandleRouteParams, HttpResponseData, void>('$handleRoute'),
  executeCommand: new RequestType<ExecuteCommandParams, unknown, void>('$executeCommand'),
  invokeApi: new RequestType<InvokeApiParams, unknown, void>('$invokeApi'),
  invokeContribution: new RequestType<InvokeContributionParams, unknown, void>('$invokeContribution'),
  callHookTap: new RequestType<{ tapId: string; payload: unknown; context?: CallContext }, unknown, void>('$callHookTap'),
  event: new NotificationType<{ event: string; data: unknown }>('$event'),
  /**
   * Declared hooks that nobody taps and nothing activates on, with their kind: a host answers calls
   * to them itself (a waterfall returns its payload) instead of asking the kernel. Sent when a host
   * starts and whenever taps change.
   */
  idleHooks: new NotificationType<{ hooks: Record<string, HookKind> }>('$idleHooks'),
};

/** Stream notifications flow both ways on every connection. */
export const StreamProtocol = {
  chunk: new NotificationType<{ streamId: string; data: unknown }>('$streamChunk'),
  end: new NotificationType<{ streamId: string }>('$streamEnd'),
  error: new NotificationType<{ streamId: string; error: { code: string; message: string; details?: unknown } }>('$streamError'),
  credit: new NotificationType<{ streamId: string; credit: number }>('$streamCredit'),
  cancel: new NotificationType<{ streamId: string }>('$streamCancel'),
};

/** JSON-RPC error code used for every AionError; the stable string code travels in `data.code`. */
export const AION_RPC_ERROR = -32050;

export { StreamBridge, isStreamMarker, type StreamMarker } from './streams.js';
export { RpcEndpoint, toResponseError, fromRpcError } from './endpoint.js';
export * from './frameTransport.js';
