import { inject, injectable } from 'inversify';
import tapable from 'tapable';
import { AionError, Emitter, ErrorCodes, type CallAccess, type HookKind } from '@aion/extension-api';
import type { Logger } from '../logging.js';
import { TYPES } from '../tokens.js';

const { AsyncSeriesHook, AsyncParallelHook, AsyncSeriesWaterfallHook, AsyncSeriesBailHook } = tapable;

type AnyHook = {
  taps: Array<{ name: string }>;
  tapPromise(options: string | { name: string }, fn: (payload: unknown) => Promise<unknown>): void;
  promise(payload: unknown): Promise<unknown>;
  _resetCompilation?: () => void;
};

/** Hooks the kernel itself calls. */
export const KERNEL_HOOKS: Array<{ name: string; kind: HookKind; tap: CallAccess; description: string }> = [
  // Privileged: a tap sees every credential and decides who is signed in.
  {
    name: 'http.authenticate',
    kind: 'bail',
    tap: 'privileged',
    description: 'Given { headers, method, path, ip }, returns { principal } or { error: { code, message } }; the first answer wins.',
  },
  { name: 'extension.activated', kind: 'series', tap: 'public', description: 'Called with { id, activationMs } after each activation.' },
  {
    name: 'health.check',
    kind: 'waterfall',
    tap: 'public',
    description:
      "Given { checks: [] }, appends { name, status: ok|degraded|failed|unavailable, detail, ms } for what the extension depends on (database, Redis, providers); bounded by each tap. Called for admins' /healthz.",
  },
  {
    name: 'realtime.authorize',
    kind: 'bail',
    tap: 'privileged',
    description: 'Given { principal, room }, returns true or false for a socket.io client joining a room.',
  },
];

interface HookEntry {
  kind: HookKind;
  owner: string;
  tapAccess: CallAccess;
  /** `owner`: only the declaring extension may call it. */
  callAccess: 'public' | 'owner';
  hook: AnyHook;
  tapOwners: Map<string, string>;
  /** The tap, while there is exactly one: called directly, as tapable would with one tap. */
  onlyTap?: (payload: unknown) => Promise<unknown>;
  /** Each tap's function by tap id. */
  tapFns: Map<string, (payload: unknown) => Promise<unknown>>;
}

/** Named hooks with tapable semantics; taps may live in any host. */
@injectable()
export class HookRegistry {
  private readonly hooks = new Map<string, HookEntry>();
  private readonly tapsChanged = new Emitter<void>();
  /** Fires after a tap is added or removed. */
  readonly onDidChangeTaps = this.tapsChanged.event;

  constructor(@inject(TYPES.Logger) private readonly logger: Logger) {
    for (const h of KERNEL_HOOKS) this.declare(h.name, h.kind, 'kernel', h.tap);
  }

  /** Who may tap `name`: `public` for undeclared hooks, which nobody calls but their tappers. */
  tapAccessOf(name: string): CallAccess {
    return this.hooks.get(name)?.tapAccess ?? 'public';
  }

  /** Throws FORBIDDEN when `callerId` may not call `name`: a hook declared `call: owner` admits its owner only. */
  assertMayCall(name: string, callerId: string | undefined): void {
    const entry = this.hooks.get(name);
    if (entry?.callAccess !== 'owner' || entry.owner === callerId) return;
    throw new AionError(ErrorCodes.FORBIDDEN, `only ${entry.owner} calls the hook ${name}${callerId ? `, not ${callerId}` : ''}`, {
      details: { caller: callerId ?? null, hook: name },
    });
  }

  declare(name: string, kind: HookKind, owner: string, tapAccess: CallAccess = 'public', callAccess: 'public' | 'owner' = 'public'): void {
    if (this.hooks.has(name)) throw new AionError(ErrorCodes.MANIFEST_INVALID, `hook ${name} is declared by ${this.hooks.get(name)!.owner} and ${owner}`);
    const hook = (kind === 'series'
      ? new AsyncSeriesHook(['payload'])
      : kind === 'parallel'
        ? new AsyncParallelHook(['payload'])
        : kind === 'waterfall'
          ? new AsyncSeriesWaterfallHook(['payload'])
          : new AsyncSeriesBailHook(['payload'])) as unknown as AnyHook;
    this.hooks.set(name, { kind, owner, tapAccess, callAccess, hook, tapOwners: new Map(), tapFns: new Map() });
  }

  kindOf(name: string): HookKind | undefined {
    return this.hooks.get(name)?.kind;
  }

  has(name: string): boolean {
    return this.hooks.has(name);
  }

  list(): Array<{ name: string; kind: HookKind; owner: string; taps: string[] }> {
    return [...this.hooks.entries()].map(([name, h]) => ({ name, kind: h.kind, owner: h.owner, taps: [...h.tapOwners.values()] }));
  }

  tapCount(name: string): number {
    return this.hooks.get(name)?.hook.taps.length ?? 0;
  }

  tap(name: string, tapId: string, extensionId: string, fn: (payload: unknown) => Promise<unknown>): void {
    const entry = this.hooks.get(name);
    if (!entry) {
      this.logger.warn({ extension: extensionId }, `${extensionId} tapped hook ${name}, which nobody declares; the tap is ignored`);
      return;
    }
    // Over RPC `undefined` arrives as null; bail hooks must still see "no answer".
    const tapFn = (payload: unknown) => fn(payload).then((result) => (result === null ? undefined : result));
    entry.hook.tapPromise({ name: tapId }, tapFn);
    entry.tapOwners.set(tapId, extensionId);
    entry.tapFns.set(tapId, tapFn);
    entry.onlyTap = entry.tapFns.size === 1 ? tapFn : undefined;
    this.tapsChanged.fire();
  }

  untap(tapId: string): void {
    for (const entry of this.hooks.values()) {
      if (!entry.tapOwners.delete(tapId)) continue;
      entry.tapFns.delete(tapId);
      entry.onlyTap = entry.tapFns.size === 1 ? entry.tapFns.values().next().value : undefined;
      entry.hook.taps = entry.hook.taps.filter((t) => t.name !== tapId);
      entry.hook._resetCompilation?.();
      this.tapsChanged.fire();
    }
  }

  /** Removes every tap of an extension whose host went away. */
  forgetExtension(extensionId: string): void {
    for (const entry of this.hooks.values()) {
      for (const [tapId, owner] of entry.tapOwners) if (owner === extensionId) this.untap(tapId);
    }
  }

  call(name: string, payload: unknown): Promise<unknown> {
    const entry = this.hooks.get(name);
    if (!entry) return Promise.reject(new AionError(ErrorCodes.HOOK_NOT_FOUND, `no hook named ${name} is declared`));
    // One tap (every request's http.authenticate, usually): called directly, with tapable's result for its kind.
    const only = entry.onlyTap;
    if (only) {
      if (entry.kind === 'bail') return only(payload);
      if (entry.kind === 'waterfall') return only(payload).then((result) => (result === undefined ? payload : result));
      return only(payload).then(() => undefined);
    }
    return entry.hook.promise(payload);
  }
}
