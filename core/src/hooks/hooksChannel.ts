import { inject, injectable } from 'inversify';
import { ErrorCodes, type HookKind } from '@aion/extension-api';
import { HooksProtocol } from '@aion/extension-api/protocol';
import { runInCallContext } from '@aion/host-runtime';
import { ActivationService } from '../activation/activationService.js';
import { HostManager, type HostConnection } from '../hosts/hostManager.js';
import { hostRuns, type KernelChannel } from '../hosts/kernelChannel.js';
import type { Logger } from '../logging.js';
import { PermissionService } from '../permissions/permissionService.js';
import { ExtensionRegistry } from '../registry/extensionRegistry.js';
import { HookRegistry } from './hookRegistry.js';

/** The kernel half of `aion.hooks`: taps held by hosts, hook calls from hosts and the kernel, idle hooks. */
@injectable()
export class HooksChannel implements KernelChannel {
  private idleHooksScheduled = false;

  constructor(
    @inject(HookRegistry) private readonly hooks: HookRegistry,
    @inject(ActivationService) private readonly activation: ActivationService,
    @inject(HostManager) private readonly hosts: HostManager,
    @inject(PermissionService) private readonly permissions: PermissionService,
    @inject(ExtensionRegistry) private readonly registry: ExtensionRegistry,
  ) {
    hooks.onDidChangeTaps(() => this.scheduleIdleHooks());
  }

  /** Runs a hook's taps, activating what activates on it first. */
  call(hook: string, payload: unknown): Promise<unknown> {
    const activates = this.activation.extensionsFor(`onHook:${hook}`);
    // The hot path (every HTTP request calls http.authenticate) skips work when nobody listens.
    if (activates.length === 0 && this.hooks.tapCount(hook) === 0 && this.hooks.has(hook))
      return Promise.resolve(this.hooks.kindOf(hook) === 'waterfall' ? payload : undefined);
    if (activates.length > 0) return this.activation.activateByEvent(`onHook:${hook}`).then(() => this.hooks.call(hook, payload));
    return this.hooks.call(hook, payload);
  }

  /** Hooks a host may answer itself, as `call` would: declared, no taps, nothing activates on them. */
  idleHooks(): Record<string, HookKind> {
    const idle: Record<string, HookKind> = {};
    for (const h of this.hooks.list()) {
      if (h.taps.length === 0 && this.activation.extensionsFor(`onHook:${h.name}`).length === 0) idle[h.name] = h.kind;
    }
    return idle;
  }

  /** Tells every host which hooks are idle, once per burst of tap changes. */
  private scheduleIdleHooks(): void {
    if (this.idleHooksScheduled) return;
    this.idleHooksScheduled = true;
    queueMicrotask(() => {
      this.idleHooksScheduled = false;
      const hooks = this.idleHooks();
      for (const host of this.hosts.all()) if (host.state !== 'exited') host.endpoint.sendNotification(HooksProtocol.host.idle, { hooks });
    });
  }

  attach(host: HostConnection, log: Logger): void {
    const e = host.endpoint;
    // Tap ids are the host's own; scoped by host here so one host can never name another's tap.
    const kernelTapId = (tapId: string) => `${host.key}|${tapId}`;
    e.onNotification(HooksProtocol.kernel.tap, ({ extensionId, hook, tapId }) => {
      if (!hostRuns(host, extensionId)) return;
      try {
        this.permissions.assertMayTapHook(extensionId, hook, this.hooks.tapAccessOf(hook));
      } catch (err) {
        // A notification has no answer: the refusal is logged and recorded on the extension.
        log.error({ extension: extensionId, hook, code: ErrorCodes.FORBIDDEN }, (err as Error).message);
        this.registry.get(extensionId)?.warnings.push({ code: ErrorCodes.FORBIDDEN, message: (err as Error).message });
        return;
      }
      this.hooks.tap(hook, kernelTapId(tapId), extensionId, (payload) => host.callTap({ tapId, payload }));
    });
    e.onNotification(HooksProtocol.kernel.untap, ({ tapId }) => this.hooks.untap(kernelTapId(tapId)));
    e.onRequest(HooksProtocol.kernel.call, ({ hook, payload, context, extensionId }) => {
      // A host speaks only for the extensions it runs; a hook may admit its owner only.
      this.hooks.assertMayCall(hook, extensionId !== undefined && hostRuns(host, extensionId) ? extensionId : undefined);
      return runInCallContext(context, () => this.call(hook, payload));
    });
    e.sendNotification(HooksProtocol.host.idle, { hooks: this.idleHooks() });
  }
}
