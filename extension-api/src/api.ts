/**
 * The namespaces an author calls (`aion.http.handle(...)`). They resolve the calling extension from
 * the async context its host runs it in, so one host can carry many extensions and every call is
 * attributed to the right one.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { CancellationToken } from 'vscode-jsonrpc';
import { AionError } from './errors.js';
import type { Disposable } from './lifecycle.js';
import type { ExposeDeclaration } from './manifest.js';
import type { HttpHandler, Principal, Remote } from './types.js';

export interface HttpNamespace {
  /** Implements a route declared in `contributes.routes`, e.g. `handle('GET /v1/hello', fn)`. */
  handle(route: string, handler: HttpHandler): Disposable;
}

export interface CommandsNamespace {
  register(command: string, fn: (...args: any[]) => unknown): Disposable;
  execute<T = unknown>(command: string, ...args: unknown[]): Promise<T>;
  /**
   * Runs a command for a signed-in user: pass the credentials the user sent (e.g. the request's
   * `authorization` header). The kernel verifies them and checks the scopes the command declares.
   */
  executeFor<T = unknown>(credentials: { authorization?: string; apiKey?: string }, command: string, ...args: unknown[]): Promise<T>;
  /** Inside a command handler: the user the caller acts for, as verified by the kernel (undefined otherwise). */
  principal(): Principal | undefined;
}

export interface ExtensionsNamespace {
  /** A proxy to another extension's `activate` return value, wherever that extension runs. */
  getApi<T extends object>(extensionId: string): Promise<Remote<T>>;
  /**
   * Inside an API method or contributed implementation: the id of the extension that called it,
   * as verified by the kernel (undefined when the kernel itself called, e.g. for an HTTP route).
   */
  caller(): string | undefined;
}

export interface ContributionsNamespace {
  /** Supplies the runtime implementation of an entry this extension contributed to `point`. */
  register(point: string, id: string, implementation: object): Disposable;
  /** The implementation of a contributed entry, activating its extension on first use. */
  get<T extends object>(point: string, id: string): Promise<Remote<T>>;
  /** Every validated entry contributed to `point`, without activating anything. */
  /** Every entry of `point`, with the contributing extension and what it exposes to a hub (`aion.expose`). */
  list(point: string): Promise<Array<{ extensionId: string; entry: Record<string, unknown>; expose?: ExposeDeclaration }>>;
}

export interface HooksNamespace {
  tap(hook: string, fn: (payload: any, token: CancellationToken) => unknown): Disposable;
  call<T = unknown>(hook: string, payload: unknown): Promise<T>;
}

export interface EventsNamespace {
  emit(event: string, data: unknown): void;
  on(event: string, listener: (data: any) => void): Disposable;
}

export interface RealtimeNamespace {
  /** Sends `event` to every socket.io client in `room` (rooms are authorised by `realtime.authorize`). */
  publish(room: string, event: string, data: unknown): void;
}

/** One kernel process: `id` is unique among the kernels sharing a Redis (`server.redisUrl`). */
export interface KernelMember {
  id: string;
  host: string;
  pid: number;
  startedAt: string;
}

export interface ClusterNamespace {
  /** The kernel this extension runs under. */
  self(): Promise<KernelMember>;
  /**
   * The kernels alive now, this one included: those that renewed their presence in Redis within the
   * liveness window. Undefined without `server.redisUrl`: a kernel alone cannot tell its peers' state.
   */
  members(): Promise<KernelMember[] | undefined>;
}

/** The per-extension object a host builds; the namespaces below delegate to it. */
export interface ExtensionApiBinding {
  readonly extensionId: string;
  readonly http: HttpNamespace;
  readonly commands: CommandsNamespace;
  readonly extensions: ExtensionsNamespace;
  readonly contributions: ContributionsNamespace;
  readonly hooks: HooksNamespace;
  readonly events: EventsNamespace;
  readonly realtime: RealtimeNamespace;
  readonly cluster: ClusterNamespace;
}

/** What code runs as: the extension whose API it calls, the extension that called it, and for whom. */
interface CallFrame {
  readonly binding?: ExtensionApiBinding;
  readonly caller?: string;
  readonly principal?: Principal;
}

// One AsyncLocalStorage, not one per field: each store costs a propagation on every promise created.
// Shared through globalThis so an extension with its own copy of this package still finds its host.
const RUNTIME = Symbol.for('aion.extension-api.frames');

function frames(): AsyncLocalStorage<CallFrame> {
  const g = globalThis as unknown as Record<symbol, AsyncLocalStorage<CallFrame> | undefined>;
  return (g[RUNTIME] ??= new AsyncLocalStorage<CallFrame>());
}

/** For hosts: runs `fn` as code of the extension that `binding` belongs to. */
export function runInExtensionContext<T>(binding: ExtensionApiBinding, fn: () => T): T {
  const store = frames();
  const frame = store.getStore();
  return store.run({ binding, caller: frame?.caller, principal: frame?.principal }, fn);
}

/** For hosts: runs `fn` as a call made by `callerId`, for the kernel-verified `principal` when there is one. */
export function runAsCaller<T>(callerId: string | undefined, fn: () => T, principal?: Principal): T {
  const store = frames();
  return store.run({ binding: store.getStore()?.binding, caller: callerId, principal }, fn);
}

function current(): ExtensionApiBinding {
  const binding = frames().getStore()?.binding;
  if (!binding) {
    throw new AionError('NO_EXTENSION_CONTEXT', 'The Aion API was called outside an extension: call it from activate() or from code activate() started.');
  }
  return binding;
}

export const http: HttpNamespace = { handle: (route, handler) => current().http.handle(route, handler) };

export const commands: CommandsNamespace = {
  register: (command, fn) => current().commands.register(command, fn),
  execute: (command, ...args) => current().commands.execute(command, ...args),
  executeFor: (credentials, command, ...args) => current().commands.executeFor(credentials, command, ...args),
  principal: () => frames().getStore()?.principal,
};

export const extensions: ExtensionsNamespace = {
  getApi: (id) => current().extensions.getApi(id),
  caller: () => frames().getStore()?.caller,
};

export const contributions: ContributionsNamespace = {
  register: (point, id, impl) => current().contributions.register(point, id, impl),
  get: (point, id) => current().contributions.get(point, id),
  list: (point) => current().contributions.list(point),
};

export const hooks: HooksNamespace = {
  tap: (hook, fn) => current().hooks.tap(hook, fn),
  call: (hook, payload) => current().hooks.call(hook, payload),
};

export const events: EventsNamespace = {
  emit: (event, data) => current().events.emit(event, data),
  on: (event, listener) => current().events.on(event, listener),
};

export const realtime: RealtimeNamespace = { publish: (room, event, data) => current().realtime.publish(room, event, data) };

export const cluster: ClusterNamespace = { self: () => current().cluster.self(), members: () => current().cluster.members() };
