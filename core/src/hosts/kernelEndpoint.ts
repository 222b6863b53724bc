import { inject, injectable } from 'inversify';
import { AionError, ErrorCodes, type CancellationToken, type HookKind, type Principal } from '@aion/extension-api';
import { HostProtocol, KernelProtocol, type ActingFor } from '@aion/extension-api/protocol';
import { runInCallContext } from '@aion/host-runtime';
import { ActivationService } from '../activation/activationService.js';
import { CommandRegistry } from '../commands/commandRegistry.js';
import { ContributionRegistry } from '../contributions/contributionRegistry.js';
import { EventBus } from '../events/eventBus.js';
import { ExtensionRegistry } from '../registry/extensionRegistry.js';
import { HookRegistry } from '../hooks/hookRegistry.js';
import { RealtimeService } from '../http/realtimeService.js';
import type { Logger } from '../logging.js';
import { PermissionService } from '../permissions/permissionService.js';
import { SecretsService } from '../secrets/secretsService.js';
import { TYPES } from '../tokens.js';
import { HostManager, type HostConnection } from './hostManager.js';

/** The kernel's answers to a host's requests: commands, APIs, contributions, hooks, events, secrets. */
@injectable()
export class KernelEndpoint {
  constructor(
    @inject(TYPES.Logger) private readonly logger: Logger,
    @inject(ExtensionRegistry) private readonly registry: ExtensionRegistry,
    @inject(ActivationService) private readonly activation: ActivationService,
    @inject(HostManager) private readonly hosts: HostManager,
    @inject(CommandRegistry) private readonly commands: CommandRegistry,
    @inject(ContributionRegistry) private readonly contributions: ContributionRegistry,
    @inject(HookRegistry) private readonly hooks: HookRegistry,
    @inject(EventBus) private readonly events: EventBus,
    @inject(SecretsService) private readonly secrets: SecretsService,
    @inject(RealtimeService) private readonly realtime: RealtimeService,
    @inject(PermissionService) private readonly permissions: PermissionService,
  ) {
    hosts.onDidStartHost((host) => this.attach(host));
    hosts.onDidCrash(({ host }) => this.events.forgetHost(host));
    hooks.onDidChangeTaps(() => this.scheduleIdleHooks());
  }

  private idleHooksScheduled = false;

  /** Hooks a host may answer itself, as `callHook` would: declared, no taps, nothing activates on them. */
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
      for (const host of this.hosts.all()) if (host.state !== 'exited') host.endpoint.sendNotification(HostProtocol.idleHooks, { hooks });
    });
  }

  /** The running host of an extension, activating the extension first. */
  async hostOf(extensionId: string, reason: string): Promise<HostConnection> {
    const record = await this.activation.activate(extensionId, reason);
    return this.hosts.hostFor(record);
  }

  /**
   * Runs a command. `callerId` is the extension asking (undefined: the kernel, e.g. the CLI); `actingFor`
   * carries the credentials of a user it acts for, verified here before any check that relies on them.
   */
  async executeCommand(command: string, args: unknown[], token?: CancellationToken, callerId?: string, actingFor?: ActingFor): Promise<unknown> {
    const principal = actingFor ? await this.authenticate(actingFor, command) : undefined;
    this.permissions.assertMayExecuteCommand(callerId, command, principal);
    let owner = this.commands.ownerOf(command);
    if (!owner) {
      await this.activation.activateByEvent(`onCommand:${command}`);
      owner = this.commands.ownerOf(command);
    }
    if (!owner) throw new AionError(ErrorCodes.COMMAND_NOT_FOUND, `no extension provides command ${command}`);
    const host = await this.hostOf(owner, `onCommand:${command}`);
    return host.request(HostProtocol.executeCommand, { command, args, callerId, principal }, token);
  }

  /** The user behind credentials an extension passed on, through the same hook the HTTP edge uses. */
  private async authenticate(actingFor: ActingFor, command: string): Promise<Principal> {
    const headers: Record<string, string> = {};
    if (typeof actingFor.authorization === 'string') headers.authorization = actingFor.authorization;
    if (typeof actingFor.apiKey === 'string') headers['x-api-key'] = actingFor.apiKey;
    const result = (await this.callHook('http.authenticate', { headers, method: 'COMMAND', path: command, ip: '' })) as
      | { principal?: Principal; error?: { code: string; message: string } }
      | undefined;
    if (!result?.principal)
      throw new AionError(
        ErrorCodes.UNAUTHENTICATED,
        `the credentials passed to run ${command} do not identify a user${result?.error ? `: ${result.error.message}` : ''}`,
      );
    return result.principal;
  }

  async resolveContribution(point: string, id: string): Promise<{ extensionId: string; methods: string[] }> {
    let impl = this.contributions.implementation(point, id);
    if (!impl) {
      const owner = this.contributions.ownerOf(point, id);
      if (!owner) throw new AionError(ErrorCodes.CONTRIBUTION_NOT_FOUND, `nothing is contributed to ${point} with id ${id}`);
      await this.activation.activate(owner, this.contributions.activationEventFor(point, id) ?? `${point}:${id}`);
      impl = this.contributions.implementation(point, id);
      if (!impl)
        throw new AionError(
          ErrorCodes.CONTRIBUTION_NOT_FOUND,
          `${owner} contributes ${point} entry ${id} but registered no implementation for it with contributions.register()`,
        );
    }
    return { extensionId: impl.extensionId, methods: impl.methods };
  }

  async invokeContribution(point: string, id: string, method: string, args: unknown[], token?: CancellationToken, callerId?: string): Promise<unknown> {
    const { extensionId } = await this.resolveContribution(point, id);
    const host = await this.hostOf(extensionId, `${point}:${id}`);
    return host.request(HostProtocol.invokeContribution, { point, id, method, args, callerId, extensionId }, token);
  }

  async callHook(hook: string, payload: unknown): Promise<unknown> {
    const activates = this.activation.extensionsFor(`onHook:${hook}`);
    // The hot path (every HTTP request calls http.authenticate) skips work when nobody listens.
    if (activates.length === 0 && this.hooks.tapCount(hook) === 0 && this.hooks.has(hook)) return this.hooks.kindOf(hook) === 'waterfall' ? payload : undefined;
    if (activates.length > 0) await this.activation.activateByEvent(`onHook:${hook}`);
    return this.hooks.call(hook, payload);
  }

  private assertOwns(host: HostConnection, extensionId: string | undefined): void {
    if (!extensionId || !host.extensions.has(extensionId)) {
      throw new AionError(ErrorCodes.PERMISSION_DENIED, `host ${host.key} acted for ${extensionId ?? 'an unnamed extension'}, which it does not run`);
    }
  }

  private attach(host: HostConnection): void {
    const e = host.endpoint;
    const log = this.logger.child({ host: host.key });
    const owns = (id: string | undefined) => id !== undefined && host.extensions.has(id);
    e.onNotification(KernelProtocol.log, ({ extensionId, level, message, data }) => {
      const target = extensionId ? log.child({ extension: extensionId }) : log;
      target[level in target ? level : 'info']({ ...data }, message);
    });
    e.onNotification(KernelProtocol.registerCommand, ({ extensionId, command }) => {
      if (owns(extensionId) && !this.commands.register(command, extensionId)) {
        log.error(
          { extension: extensionId, command },
          `${extensionId} tried to register ${command}, which ${this.commands.ownerOf(command)} declares; refused`,
        );
      }
    });
    e.onNotification(KernelProtocol.unregisterCommand, ({ extensionId, command }) => owns(extensionId) && this.commands.unregister(command, extensionId));
    // Calls from a host run in the context they carry, so the kernel's next hop and log lines stay linked to the request.
    e.onRequest(KernelProtocol.executeCommand, ({ command, args, callerId, actingFor, context }, token) => {
      this.assertOwns(host, callerId);
      return runInCallContext(context, () => this.executeCommand(command, args, token, callerId, actingFor));
    });
    e.onRequest(KernelProtocol.getApi, async ({ callerId, extensionId }) => {
      this.assertOwns(host, callerId);
      this.permissions.assertMayCallApi(callerId, extensionId);
      const record = await this.activation.activate(extensionId, 'getApi');
      return { apiMethods: record.apiMethods ?? [] };
    });
    e.onRequest(KernelProtocol.invokeApi, async ({ extensionId, method, args, callerId, context }, token) => {
      this.assertOwns(host, callerId);
      this.permissions.assertMayCallApi(callerId, extensionId, method);
      return runInCallContext(context, async () => {
        const target = await this.hostOf(extensionId, 'getApi');
        return target.request(HostProtocol.invokeApi, { extensionId, method, args, callerId }, token);
      });
    });
    e.onNotification(KernelProtocol.registerContribution, ({ extensionId, point, id, methods }) => {
      if (owns(extensionId) && !this.contributions.setImplementation(point, id, { extensionId, methods })) {
        log.error(
          { extension: extensionId, point, id },
          `${extensionId} tried to implement ${point} entry ${id}, which ${this.contributions.ownerOf(point, id)} contributes; refused`,
        );
      }
    });
    e.onNotification(
      KernelProtocol.unregisterContribution,
      ({ extensionId, point, id }) => owns(extensionId) && this.contributions.removeImplementation(point, id, extensionId),
    );
    e.onRequest(KernelProtocol.resolveContribution, async ({ point, id }) => ({ methods: (await this.resolveContribution(point, id)).methods }));
    e.onRequest(KernelProtocol.listContributions, ({ point }) => this.contributions.list(point));
    e.onRequest(KernelProtocol.invokeContribution, ({ point, id, method, args, callerId, context }, token) => {
      this.assertOwns(host, callerId);
      return runInCallContext(context, () => this.invokeContribution(point, id, method, args, token, callerId));
    });
    // Tap ids are the host's own; scoped by host here so one host can never name another's tap.
    const kernelTapId = (tapId: string) => `${host.key}|${tapId}`;
    e.onNotification(KernelProtocol.tapHook, ({ extensionId, hook, tapId }) => {
      if (!owns(extensionId)) return;
      try {
        this.permissions.assertMayTapHook(extensionId, hook, this.hooks.tapAccessOf(hook));
      } catch (err) {
        // A notification has no answer: the refusal is logged and recorded on the extension.
        log.error({ extension: extensionId, hook, code: ErrorCodes.FORBIDDEN }, (err as Error).message);
        this.registry.get(extensionId)?.warnings.push({ code: ErrorCodes.FORBIDDEN, message: (err as Error).message });
        return;
      }
      this.hooks.tap(hook, kernelTapId(tapId), extensionId, (payload) => host.request(HostProtocol.callHookTap, { tapId, payload }));
    });
    e.onNotification(KernelProtocol.untapHook, ({ tapId }) => this.hooks.untap(kernelTapId(tapId)));
    e.sendNotification(HostProtocol.idleHooks, { hooks: this.idleHooks() });
    e.onRequest(KernelProtocol.callHook, ({ hook, payload, context }) => runInCallContext(context, () => this.callHook(hook, payload)));
    e.onRequest(KernelProtocol.getSecret, ({ extensionId, name }) => {
      this.assertOwns(host, extensionId);
      return this.secrets.get(extensionId, name) ?? null;
    });
    e.onNotification(KernelProtocol.subscribeEvent, ({ event }) => this.events.subscribe(event, host));
    e.onNotification(KernelProtocol.emitEvent, ({ extensionId, event, data }) => owns(extensionId) && this.events.emit(event, data));
    e.onNotification(KernelProtocol.realtimePublish, ({ extensionId, room, event, data }) => owns(extensionId) && this.realtime.publish(room, event, data));
  }
}
