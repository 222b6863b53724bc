import {
  toDisposable,
  type CancellationToken,
  type Disposable,
  type DisposableStore,
  type ExtensionApiBinding,
  type ExtensionContext,
  type LogLevel,
  type Principal,
  type HostKind,
} from '@aion/extension-api';
import type { CallContext, ExtensionDescription, RpcEndpoint } from '@aion/extension-api/protocol';

/** What a capability's host half needs from the host it runs in. */
export interface HostServices {
  readonly endpoint: RpcEndpoint;
  /** The kernel host passes values by reference already; other hosts copy every value that crosses. */
  readonly kind: HostKind;
  /**
   * Runs `fn` as code of `extensionId`, inside the call context a message carried and, for a call
   * from an extension or for a user, as that `caller`; streams it returns are pulled the same way.
   */
  run<T>(extensionId: string, context: CallContext | undefined, fn: () => T, caller?: CallerFrame): T;
  /** The object `activate` returned, for an extension active in this host; undefined otherwise. */
  apiOf(extensionId: string): { api: unknown } | undefined;
  log(extensionId: string | undefined, level: LogLevel, message: string, data?: Record<string, unknown>): void;
}

/** Who a call is from: the calling extension (verified by the kernel) and the user it acts for. */
export interface CallerFrame {
  id: string | undefined;
  principal?: Principal;
}

/** One extension, as its binding and context are built. */
export interface ExtensionScope {
  readonly extensionId: string;
  readonly description: ExtensionDescription;
  /** The extension's whole binding, for context parts that call other capabilities (read it lazily). */
  readonly binding: () => ExtensionApiBinding;
  /** Keeps `dispose` until the extension deactivates; disposing the result runs it early. */
  register(dispose: () => void): Disposable;
}

type Namespaces = Omit<ExtensionApiBinding, 'extensionId'>;
type ContextParts = Pick<ExtensionContext, 'secrets' | 'state'>;

/** Per `aion.*` namespace, the capability that builds it for one extension: the compiler checks none is missing. */
export type NamespaceBinders = { readonly [K in keyof Namespaces]: (scope: ExtensionScope) => Namespaces[K] };
/** Per part of the context `activate` receives that a capability serves, the capability that builds it. */
export type ContextBinders = { readonly [K in keyof ContextParts]: (scope: ExtensionScope) => ContextParts[K] };

/** A registration kept in `registrations` until the extension deactivates. */
export function registerIn(registrations: DisposableStore, dispose: () => void): Disposable {
  const d = toDisposable(() => {
    registrations.delete(d);
    dispose();
  });
  return registrations.add(d);
}

/** A trailing cancellation token an author passed to `execute(...)`, taken off the arguments. */
export function popToken(args: unknown[]): CancellationToken | undefined {
  const last = args[args.length - 1];
  const isToken =
    typeof last === 'object' && last !== null && typeof (last as CancellationToken).onCancellationRequested === 'function' && 'isCancellationRequested' in last;
  return isToken ? (args.pop() as CancellationToken) : undefined;
}
