import { pathToFileURL } from 'node:url';
import {
  AionError,
  type AsyncQueue,
  type QueueSink,
  DisposableStore,
  ErrorCodes,
  runAsCaller,
  runInExtensionContext,
  type Disposable,
  type ExtensionApiBinding,
  type ExtensionContext,
  type ExtensionModule,
  type HostKind,
  type CancellationToken,
  type HttpResponseData,
  type LogLevel,
  type Logger,
} from '@aion/extension-api';
import {
  LifecycleProtocol,
  fromRpcError,
  mapStreams,
  toResponseError,
  type ExtensionDescription,
  type CallTapParams,
  type HandleRouteParams,
  type RpcEndpoint,
} from '@aion/extension-api/protocol';
import { ROOT_CONTEXT, context as otelContext } from '@opentelemetry/api';
import { REQUEST_ID_KEY, enableCallContext, runInCallContext } from './callContext.js';
import { registerIn, type CallerFrame, type ContextBinders, type ExtensionScope, type HostServices, type NamespaceBinders } from './capabilities/capability.js';
import { installCapabilities } from './capabilities/index.js';
import { methodNames } from './remoteProxy.js';

interface ActiveExtension {
  description: ExtensionDescription;
  module: ExtensionModule;
  api: unknown;
  binding: ExtensionApiBinding;
  subscriptions: Disposable[];
  /** Everything the extension registered through the API; disposed on deactivation. */
  registrations: DisposableStore;
}

/**
 * The host side of the protocol: loads extension code and runs it in its own context. Each capability's
 * host half (`capabilities/`) answers that capability's messages and builds its part of every binding;
 * this class owns only the host's life: ping, activate, deactivate, log.
 */
export class ExtensionHost {
  private readonly active = new Map<string, ActiveExtension>();
  private readonly namespaces: NamespaceBinders;
  private readonly contextParts: ContextBinders;
  /**
   * For a kernel in the same process: runs a route's handler as `$handleRoute` would, without a message,
   * with errors as the message would have carried them (an AionError with its code).
   */
  readonly handleRoute: (params: HandleRouteParams, token: CancellationToken) => Promise<HttpResponseData>;
  /** For a kernel in the same process: runs a hook tap as `$callHookTap` would, without a message, errors likewise. */
  readonly callTap: (params: CallTapParams, token: CancellationToken) => Promise<unknown>;

  constructor(
    private readonly endpoint: RpcEndpoint,
    readonly kind: HostKind,
  ) {
    enableCallContext();
    endpoint.onRequest(LifecycleProtocol.host.ping, (p) => p);
    endpoint.onRequest(LifecycleProtocol.host.activate, ({ extension }) => this.activate(extension));
    endpoint.onRequest(LifecycleProtocol.host.deactivate, ({ extensionId }) => this.deactivate(extensionId));
    const services: HostServices = {
      endpoint,
      kind,
      run: (extensionId, context, fn, caller) => runInCallContext(context, () => this.inContext(extensionId, fn, caller)),
      apiOf: (extensionId) => this.active.get(extensionId),
      log: (extensionId, level, message, data) => this.log(extensionId, level, message, data),
    };
    const { namespaces, context, handleRoute, callTap } = installCapabilities(services);
    this.namespaces = namespaces;
    this.contextParts = context;
    this.handleRoute = asMessage(handleRoute);
    this.callTap = asMessage(callTap);
  }

  get activeExtensionIds(): string[] {
    return [...this.active.keys()];
  }

  /**
   * Runs `fn` as the extension's code, for `caller` when the call has one; streams it returns keep
   * running as that same call (extension, caller, user, trace) on every pull, whoever pulls them.
   */
  private inContext<T>(extensionId: string, fn: () => T, caller?: CallerFrame): T {
    const ext = this.active.get(extensionId);
    if (!ext) return caller ? runAsCaller(caller.id, fn, caller.principal) : fn();
    const asCall: Runner = caller
      ? (f) => runInExtensionContext(ext.binding, () => runAsCaller(caller.id, f, caller.principal))
      : (f) => runInExtensionContext(ext.binding, f);
    const result = asCall(fn);
    // Streams are pulled later, by the RPC layer or a caller in this host: each pull runs as this call.
    const captured = otelContext.active();
    const run: Runner = captured === ROOT_CONTEXT ? asCall : (f) => otelContext.with(captured, () => asCall(f));
    if (result instanceof Promise) return result.then((value) => bindStreams(value, run)) as T;
    return bindStreams(result, run) as T;
  }

  private log(extensionId: string | undefined, level: LogLevel, message: string, data?: Record<string, unknown>): void {
    // The request this line was written for, so the kernel's log shows it beside the extension id.
    const requestId = otelContext.active().getValue(REQUEST_ID_KEY);
    if (typeof requestId === 'string' && data?.requestId === undefined) data = { ...data, requestId };
    this.endpoint.sendNotification(LifecycleProtocol.kernel.log, { extensionId, level, message, data });
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
    const scope: ExtensionScope = {
      extensionId: description.id,
      description,
      binding: () => ext.binding,
      register: (dispose) => registerIn(registrations, dispose),
    };
    const ext: ActiveExtension = { description, module, api: undefined, binding: this.createBinding(scope), subscriptions: [], registrations };
    this.active.set(description.id, ext);
    try {
      if (typeof module.activate === 'function') {
        const context = this.createContext(ext, scope);
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

  /** Every `aion.*` namespace of one extension, each built by its capability. */
  private createBinding(scope: ExtensionScope): ExtensionApiBinding {
    const binding: Record<string, unknown> = { extensionId: scope.extensionId };
    for (const [namespace, bind] of Object.entries(this.namespaces)) binding[namespace] = bind(scope);
    return binding as unknown as ExtensionApiBinding;
  }

  private createContext(ext: ActiveExtension, scope: ExtensionScope): ExtensionContext {
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
      secrets: this.contextParts.secrets(scope),
      state: this.contextParts.state(scope),
      logger,
      subscriptions: ext.subscriptions,
    };
  }
}

/** `handler` called without a message: its errors become what the message would have carried (an AionError with its code). */
function asMessage<P, R>(handler: (params: P, token: CancellationToken) => R | Promise<R>): (params: P, token: CancellationToken) => Promise<R> {
  const asCarried = (err: unknown) => Promise.reject(fromRpcError(toResponseError(err)));
  // Not an async function: one promise per call on the hot path instead of three.
  return (params, token) => {
    try {
      const answer = handler(params, token);
      return answer instanceof Promise ? answer.catch(asCarried) : Promise.resolve(answer);
    } catch (err) {
      return asCarried(err);
    }
  };
}

/**
 * A stream is pulled by the RPC layer, outside any extension's async context; each pull of a stream
 * an extension returned runs in that extension's context, so its generator can call the API.
 */
type Runner = <R>(fn: () => R) => R;

function bindStreams(value: unknown, run: Runner): unknown {
  return mapStreams(value, (stream) => new BoundStream(stream, run));
}

/**
 * An extension's stream whose every pull runs in the extension's context. A class, not closures: a hub
 * holds one per connected device. A queue is drained by push (`drainTo`) when its consumer asks.
 */
class BoundStream implements AsyncIterableIterator<unknown> {
  private iterator?: AsyncIterator<unknown>;

  constructor(
    private readonly stream: AsyncIterable<unknown>,
    private readonly run: Runner,
  ) {
    // Only a stream that can be drained offers it: a consumer that finds `drainTo` uses it.
    if (typeof (stream as Partial<AsyncQueue<unknown>>).drainTo !== 'function') this.drainTo = undefined;
  }

  private it(): AsyncIterator<unknown> {
    return (this.iterator ??= this.run(() => this.stream[Symbol.asyncIterator]()));
  }

  next(v?: unknown): Promise<IteratorResult<unknown>> {
    return this.run(() => this.it().next(v));
  }

  return(v?: unknown): Promise<IteratorResult<unknown>> {
    return this.run(() => this.it().return?.(v) ?? Promise.resolve({ done: true as const, value: v }));
  }

  throw(e?: unknown): Promise<IteratorResult<unknown>> {
    return this.run(() => this.it().throw?.(e) ?? Promise.reject(e));
  }

  drainTo?(sink: QueueSink<unknown>): void {
    this.run(() => (this.it() as AsyncQueue<unknown>).drainTo(sink));
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<unknown> {
    return this;
  }
}
