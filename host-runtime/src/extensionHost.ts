import { pathToFileURL } from 'node:url';
import {
  AionError,
  DisposableStore,
  ErrorCodes,
  runAsCaller,
  runInExtensionContext,
  toDisposable,
  type CancellationToken,
  type Disposable,
  type ExtensionApiBinding,
  type ExtensionContext,
  type ExtensionModule,
  type HostKind,
  type HttpHandler,
  type LogLevel,
  type Logger,
  type Remote,
} from '@aion/extension-api';
import { HostProtocol, KernelProtocol, type ExtensionDescription, type RpcEndpoint } from '@aion/extension-api/protocol';
import { REQUEST_ID_KEY, currentCallContext, enableCallContext, runInCallContext } from './callContext.js';
import { callWithToken, createRemoteProxy, methodNames } from './remoteProxy.js';
import { ROOT_CONTEXT, context as otelContext } from '@opentelemetry/api';

interface ActiveExtension {
  description: ExtensionDescription;
  module: ExtensionModule;
  api: unknown;
  binding: ExtensionApiBinding;
  subscriptions: Disposable[];
  /** Everything the extension registered through the API; disposed on deactivation. */
  registrations: DisposableStore;
}

type Fn = (...args: unknown[]) => unknown;

/**
 * The host side of the protocol: loads extension code, builds each extension's API binding, and
 * answers the kernel's calls by running the right extension's code in that extension's context.
 */
export class ExtensionHost {
  private readonly active = new Map<string, ActiveExtension>();
  private readonly routes = new Map<string, { extensionId: string; handler: HttpHandler }>();
  private readonly commands = new Map<string, { extensionId: string; fn: Fn }>();
  private readonly contributions = new Map<string, { extensionId: string; impl: Record<string, Fn> }>();
  private readonly hookTaps = new Map<string, { extensionId: string; fn: Fn }>();
  private readonly eventListeners = new Map<string, Set<{ extensionId: string; listener: (data: unknown) => void }>>();
  private tapCounter = 0;
  /** Hooks the kernel reports idle (no taps, nothing activates on them): calls are answered here. */
  private idleHooks = new Map<string, string>();

  constructor(
    private readonly endpoint: RpcEndpoint,
    readonly kind: HostKind,
  ) {
    enableCallContext();
    endpoint.onRequest(HostProtocol.ping, (p) => p);
    endpoint.onRequest(HostProtocol.activate, ({ extension }) => this.activate(extension));
    endpoint.onRequest(HostProtocol.deactivate, ({ extensionId }) => this.deactivate(extensionId));
    endpoint.onRequest(HostProtocol.handleRoute, ({ extensionId, route, request, context }, token) => {
      const entry = this.routes.get(`${extensionId} ${route}`);
      if (!entry) throw new AionError(ErrorCodes.ROUTE_HANDLER_MISSING, `${extensionId} declares ${route} but registered no handler for it with http.handle()`);
      return runInCallContext(context, () => this.inContext(extensionId, () => entry.handler(request, token)));
    });
    endpoint.onRequest(HostProtocol.executeCommand, ({ command, args, callerId, principal, context }, token) => {
      const entry = this.commands.get(command);
      if (!entry) throw new AionError(ErrorCodes.COMMAND_NOT_FOUND, `no handler is registered for command ${command}`);
      return runInCallContext(context, () =>
        this.inContext(entry.extensionId, () => runAsCaller(callerId, () => callWithToken(undefined as never, entry.fn, args, token), principal)),
      );
    });
    endpoint.onRequest(HostProtocol.invokeApi, ({ extensionId, method, args, callerId, context }, token) => {
      const ext = this.active.get(extensionId);
      if (!ext) throw new AionError(ErrorCodes.EXTENSION_NOT_FOUND, `${extensionId} is not active in this host`);
      const fn = (ext.api as Record<string, unknown> | undefined)?.[method];
      if (typeof fn !== 'function') throw new AionError(ErrorCodes.API_METHOD_NOT_FOUND, `${extensionId} has no API method ${method}`);
      return runInCallContext(context, () =>
        this.inContext(extensionId, () => runAsCaller(callerId, () => callWithToken(ext.api as object, fn as Fn, args, token))),
      );
    });
    endpoint.onRequest(HostProtocol.invokeContribution, ({ point, id, method, args, callerId, extensionId, context }, token) => {
      // Keyed by extension too: two extensions in one host never replace each other's implementation.
      const entry = this.contributions.get(`${extensionId} ${point}/${id}`);
      const fn = entry?.impl[method];
      if (!entry || typeof fn !== 'function') throw new AionError(ErrorCodes.CONTRIBUTION_NOT_FOUND, `${point} entry ${id} has no method ${method}`);
      return runInCallContext(context, () => this.inContext(entry.extensionId, () => runAsCaller(callerId, () => callWithToken(entry.impl, fn, args, token))));
    });
    endpoint.onRequest(HostProtocol.callHookTap, ({ tapId, payload, context }, token) => {
      const tap = this.hookTaps.get(tapId);
      if (!tap) throw new AionError(ErrorCodes.HOOK_NOT_FOUND, `hook tap ${tapId} is gone`);
      return runInCallContext(context, () => this.inContext(tap.extensionId, () => tap.fn(payload, token)));
    });
    endpoint.onNotification(HostProtocol.idleHooks, ({ hooks }) => (this.idleHooks = new Map(Object.entries(hooks))));
    endpoint.onNotification(HostProtocol.event, ({ event, data }) => {
      for (const { extensionId, listener } of this.eventListeners.get(event) ?? []) {
        try {
          this.inContext(extensionId, () => listener(data));
        } catch (err) {
          this.log(extensionId, 'error', `event listener for ${event} threw`, { error: String(err) });
        }
      }
    });
  }

  get activeExtensionIds(): string[] {
    return [...this.active.keys()];
  }

  /** Runs `fn` as the extension's code; streams it returns keep running as its code too. */
  private inContext<T>(extensionId: string, fn: () => T): T {
    const ext = this.active.get(extensionId);
    if (!ext) return fn();
    const result = runInExtensionContext(ext.binding, fn);
    // Streams are pulled later, by the RPC layer: each pull runs in this call's context as well.
    const captured = otelContext.active();
    const run: Runner =
      captured === ROOT_CONTEXT ? (f) => runInExtensionContext(ext.binding, f) : (f) => otelContext.with(captured, () => runInExtensionContext(ext.binding, f));
    if (result instanceof Promise) return result.then((value) => bindStreams(value, run)) as T;
    return bindStreams(result, run) as T;
  }

  private log(extensionId: string | undefined, level: LogLevel, message: string, data?: Record<string, unknown>): void {
    // The request this line was written for, so the kernel's log shows it beside the extension id.
    const requestId = otelContext.active().getValue(REQUEST_ID_KEY);
    if (typeof requestId === 'string' && data?.requestId === undefined) data = { ...data, requestId };
    this.endpoint.sendNotification(KernelProtocol.log, { extensionId, level, message, data });
  }

  private async activate(description: ExtensionDescription): Promise<{ apiMethods: string[]; activationMs: number }> {
    const started = performance.now();
    const existing = this.active.get(description.id);
    if (existing) return { apiMethods: methodNames(existing.api), activationMs: 0 };
    let module: ExtensionModule = {};
    if (description.mainPath) {
      try {
        module = (await import(pathToFileURL(description.mainPath).href)) as ExtensionModule;
      } catch (err) {
        throw new AionError(
          ErrorCodes.ACTIVATION_FAILED,
          `could not load ${description.id} from its main module: ${err instanceof Error ? err.message : String(err)}`,
        );
      }
    }
    const registrations = new DisposableStore();
    const ext: ActiveExtension = {
      description,
      module,
      api: undefined,
      binding: this.createBinding(
        description.id,
        registrations,
        new Set((description.manifest.contributes?.routes ?? []).map((r) => normalizeRoute(`${r.method} ${r.path}`))),
      ),
      subscriptions: [],
      registrations,
    };
    this.active.set(description.id, ext);
    try {
      if (typeof module.activate === 'function') {
        const context = this.createContext(ext);
        ext.api = await runInExtensionContext(ext.binding, () => module.activate!(context));
      }
    } catch (err) {
      await this.disposeExtension(ext);
      this.active.delete(description.id);
      throw new AionError(ErrorCodes.ACTIVATION_FAILED, `${description.id} failed to activate: ${err instanceof Error ? err.message : String(err)}`);
    }
    return { apiMethods: methodNames(ext.api), activationMs: performance.now() - started };
  }

  private async deactivate(extensionId: string): Promise<void> {
    const ext = this.active.get(extensionId);
    if (!ext) return;
    this.active.delete(extensionId);
    try {
      await runInExtensionContext(ext.binding, () => ext.module.deactivate?.());
    } finally {
      await this.disposeExtension(ext);
    }
  }

  private async disposeExtension(ext: ActiveExtension): Promise<void> {
    for (const sub of ext.subscriptions.splice(0).reverse()) {
      try {
        await sub.dispose();
      } catch (err) {
        this.log(ext.description.id, 'warn', 'a subscription failed to dispose', { error: String(err) });
      }
    }
    await ext.registrations.dispose().catch(() => undefined);
  }

  private createContext(ext: ActiveExtension): ExtensionContext {
    const d = ext.description;
    const logger = Object.fromEntries(
      (['trace', 'debug', 'info', 'warn', 'error'] as const).map((level) => [
        level,
        (message: string, data?: Record<string, unknown>) => this.log(d.id, level, message, data),
      ]),
    ) as unknown as Logger;
    return {
      extension: { id: d.id, version: d.manifest.version, manifest: d.manifest },
      extensionPath: d.extensionPath,
      storagePath: d.storagePath,
      configuration: {
        get: <T>(key?: string): T => {
          if (!key) return d.configuration as T;
          let value: unknown = d.configuration;
          for (const part of key.split('.')) value = (value as Record<string, unknown> | undefined)?.[part];
          return value as T;
        },
      },
      secrets: {
        get: async (name: string) => (await this.endpoint.sendRequest(KernelProtocol.getSecret, { extensionId: d.id, name })) ?? undefined,
      },
      state: this.createState(ext),
      logger,
      subscriptions: ext.subscriptions,
    };
  }

  /** `ctx.state` is served by the storage extension; the kernel tells it which extension is asking. */
  private createState(ext: ActiveExtension): ExtensionContext['state'] {
    type StateApi = { stateGet(key: string): unknown; stateUpdate(key: string, value: unknown): void; stateKeys(): string[] };
    let api: Promise<Remote<StateApi>> | undefined;
    const storage = () =>
      (api ??= ext.binding.extensions.getApi<StateApi>('aion.storage').catch((err) => {
        api = undefined;
        throw new AionError(ErrorCodes.EXTENSION_NOT_FOUND, `ctx.state needs the aion.storage extension: ${(err as Error).message}`);
      }));
    return {
      get: async <T>(key: string, defaultValue?: T) => {
        const value = await (await storage()).stateGet(key);
        return (value ?? defaultValue) as T | undefined;
      },
      update: async (key: string, value: unknown) => void (await (await storage()).stateUpdate(key, value)),
      keys: async () => (await storage()).stateKeys(),
    };
  }

  private createBinding(extensionId: string, registrations: DisposableStore, declaredRoutes: Set<string>): ExtensionApiBinding {
    const endpoint = this.endpoint;
    const register = (dispose: () => void): Disposable => {
      const d = toDisposable(() => {
        registrations.delete(d);
        dispose();
      });
      return registrations.add(d);
    };
    return {
      extensionId,
      http: {
        handle: (route, handler) => {
          const normalized = normalizeRoute(route);
          // The kernel mounts only declared routes: a handler for any other would never be called.
          if (!declaredRoutes.has(normalized)) {
            const [method, path] = normalized.split(' ');
            throw new AionError(
              ErrorCodes.ROUTE_NOT_DECLARED,
              `${extensionId} handles ${normalized}, which its manifest does not declare: add { "method": "${method}", "path": "${path}" } to contributes.routes in its package.json`,
            );
          }
          const key = `${extensionId} ${normalized}`;
          this.routes.set(key, { extensionId, handler });
          return register(() => this.routes.delete(key));
        },
      },
      commands: {
        register: (command, fn) => {
          this.commands.set(command, { extensionId, fn: fn as Fn });
          endpoint.sendNotification(KernelProtocol.registerCommand, { extensionId, command });
          return register(() => {
            this.commands.delete(command);
            endpoint.sendNotification(KernelProtocol.unregisterCommand, { extensionId, command });
          });
        },
        execute: <T>(command: string, ...args: unknown[]) => {
          const token = args.length && isToken(args[args.length - 1]) ? (args.pop() as CancellationToken) : undefined;
          return endpoint.sendRequest(
            KernelProtocol.executeCommand,
            { command, args, callerId: extensionId, context: currentCallContext() },
            token,
          ) as Promise<T>;
        },
        executeFor: <T>(credentials: { authorization?: string; apiKey?: string }, command: string, ...args: unknown[]) => {
          const token = args.length && isToken(args[args.length - 1]) ? (args.pop() as CancellationToken) : undefined;
          const actingFor = { authorization: credentials?.authorization, apiKey: credentials?.apiKey };
          return endpoint.sendRequest(
            KernelProtocol.executeCommand,
            { command, args, callerId: extensionId, actingFor, context: currentCallContext() },
            token,
          ) as Promise<T>;
        },
        principal: () => undefined,
      },
      extensions: {
        getApi: async (id) => {
          const { apiMethods } = await endpoint.sendRequest(KernelProtocol.getApi, { callerId: extensionId, extensionId: id });
          return createRemoteProxy(apiMethods, (method, args, token) =>
            endpoint.sendRequest(KernelProtocol.invokeApi, { extensionId: id, method, args, callerId: extensionId, context: currentCallContext() }, token),
          );
        },
        caller: () => undefined,
      },
      contributions: {
        register: (point, id, implementation) => {
          const key = `${extensionId} ${point}/${id}`;
          this.contributions.set(key, { extensionId, impl: implementation as Record<string, Fn> });
          endpoint.sendNotification(KernelProtocol.registerContribution, { extensionId, point, id, methods: methodNames(implementation) });
          return register(() => {
            this.contributions.delete(key);
            endpoint.sendNotification(KernelProtocol.unregisterContribution, { extensionId, point, id });
          });
        },
        get: async (point, id) => {
          const { methods } = await endpoint.sendRequest(KernelProtocol.resolveContribution, { point, id });
          return createRemoteProxy(methods, (method, args, token) =>
            endpoint.sendRequest(KernelProtocol.invokeContribution, { point, id, method, args, callerId: extensionId, context: currentCallContext() }, token),
          );
        },
        list: (point) => endpoint.sendRequest(KernelProtocol.listContributions, { point }),
      },
      hooks: {
        tap: (hook, fn) => {
          const tapId = `${extensionId}#${++this.tapCounter}`;
          this.hookTaps.set(tapId, { extensionId, fn: fn as Fn });
          // Not idle any more, before the kernel says so.
          this.idleHooks.delete(hook);
          // A notification, so the kernel has the tap before this extension's activation answer arrives.
          endpoint.sendNotification(KernelProtocol.tapHook, { extensionId, hook, tapId });
          return register(() => {
            this.hookTaps.delete(tapId);
            endpoint.sendNotification(KernelProtocol.untapHook, { tapId });
          });
        },
        call: <T>(hook: string, payload: unknown) => {
          // What the kernel would answer for a hook nobody taps, without the round trip.
          const idle = this.idleHooks.get(hook);
          if (idle !== undefined) return Promise.resolve((idle === 'waterfall' ? payload : undefined) as T);
          return endpoint.sendRequest(KernelProtocol.callHook, { hook, payload, context: currentCallContext() }) as Promise<T>;
        },
      },
      events: {
        emit: (event, data) => endpoint.sendNotification(KernelProtocol.emitEvent, { extensionId, event, data }),
        on: (event, listener) => {
          let set = this.eventListeners.get(event);
          if (!set) {
            this.eventListeners.set(event, (set = new Set()));
            endpoint.sendNotification(KernelProtocol.subscribeEvent, { event });
          }
          const entry = { extensionId, listener };
          set.add(entry);
          return register(() => set!.delete(entry));
        },
      },
      realtime: {
        publish: (room, event, data) => endpoint.sendNotification(KernelProtocol.realtimePublish, { extensionId, room, event, data }),
      },
    };
  }
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function';
}

/**
 * A stream is pulled by the RPC layer, outside any extension's async context; each pull of a stream
 * an extension returned runs in that extension's context, so its generator can call the API.
 */
type Runner = <R>(fn: () => R) => R;

function bindStreams(value: unknown, run: Runner): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (isAsyncIterable(value)) {
    let iterator: AsyncIterator<unknown> | undefined;
    const it = () => (iterator ??= run(() => value[Symbol.asyncIterator]()));
    const bound: AsyncIterableIterator<unknown> = {
      next: (v?: unknown) => run(() => it().next(v)),
      return: (v?: unknown) => run(() => it().return?.(v) ?? Promise.resolve({ done: true as const, value: v })),
      throw: (e?: unknown) => run(() => it().throw?.(e) ?? Promise.reject(e)),
      [Symbol.asyncIterator]: () => bound,
    };
    return bound;
  }
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    value.forEach((item, i) => {
      const next = bindStreams(item, run);
      if (next !== item) (copy ??= value.slice())[i] = next;
    });
    return copy ?? value;
  }
  if (Object.getPrototypeOf(value) !== Object.prototype) return value;
  let copy: Record<string, unknown> | undefined;
  for (const key in value) {
    const item = (value as Record<string, unknown>)[key];
    if (typeof item !== 'object' || item === null) continue;
    const next = bindStreams(item, run);
    if (next !== item) (copy ??= { ...(value as Record<string, unknown>) })[key] = next;
  }
  return copy ?? value;
}

function isToken(value: unknown): boolean {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as CancellationToken).onCancellationRequested === 'function' &&
    'isCancellationRequested' in value
  );
}

/** `get  /v1/x` → `GET /v1/x`: the same key the kernel uses for declared routes. */
export function normalizeRoute(route: string): string {
  const [method, ...rest] = route.trim().split(/\s+/);
  return `${method!.toUpperCase()} ${rest.join(' ')}`;
}
