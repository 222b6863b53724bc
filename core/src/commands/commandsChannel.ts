import { inject, injectable } from 'inversify';
import { AionError, ErrorCodes, type CancellationToken, type Principal } from '@aion/extension-api';
import { CommandsProtocol, type ActingFor } from '@aion/extension-api/protocol';
import { runInCallContext } from '@aion/host-runtime';
import { ActivationService } from '../activation/activationService.js';
import { HooksChannel } from '../hooks/hooksChannel.js';
import type { HostConnection } from '../hosts/hostManager.js';
import { assertHostRuns, hostRuns, type KernelChannel } from '../hosts/kernelChannel.js';
import type { Logger } from '../logging.js';
import { PermissionService } from '../permissions/permissionService.js';
import { CommandRegistry } from './commandRegistry.js';

/** The kernel half of `aion.commands`: who implements each command, and every run of one, from a host or the kernel. */
@injectable()
export class CommandsChannel implements KernelChannel {
  constructor(
    @inject(CommandRegistry) private readonly commands: CommandRegistry,
    @inject(ActivationService) private readonly activation: ActivationService,
    @inject(PermissionService) private readonly permissions: PermissionService,
    @inject(HooksChannel) private readonly hooks: HooksChannel,
  ) {}

  /**
   * Runs a command. `callerId` is the extension asking (undefined: the kernel, e.g. the CLI); `actingFor`
   * carries the credentials of a user it acts for, verified here before any check that relies on them.
   */
  async execute(command: string, args: unknown[], token?: CancellationToken, callerId?: string, actingFor?: ActingFor): Promise<unknown> {
    const principal = actingFor ? await this.authenticate(actingFor, command) : undefined;
    this.permissions.assertMayExecuteCommand(callerId, command, principal);
    let owner = this.commands.ownerOf(command);
    if (!owner) {
      await this.activation.activateByEvent(`onCommand:${command}`);
      owner = this.commands.ownerOf(command);
    }
    if (!owner) throw new AionError(ErrorCodes.COMMAND_NOT_FOUND, `no extension provides command ${command}`);
    const host = await this.activation.hostOf(owner, `onCommand:${command}`);
    return host.request(CommandsProtocol.host.execute, { command, args, callerId, principal }, token);
  }

  /** The user behind credentials an extension passed on, through the same hook the HTTP edge uses. */
  private async authenticate(actingFor: ActingFor, command: string): Promise<Principal> {
    const headers: Record<string, string> = {};
    if (typeof actingFor.authorization === 'string') headers.authorization = actingFor.authorization;
    if (typeof actingFor.apiKey === 'string') headers['x-api-key'] = actingFor.apiKey;
    const result = (await this.hooks.call('http.authenticate', { headers, method: 'COMMAND', path: command, ip: '' })) as
      | { principal?: Principal; error?: { code: string; message: string } }
      | undefined;
    if (!result?.principal)
      throw new AionError(
        ErrorCodes.UNAUTHENTICATED,
        `the credentials passed to run ${command} do not identify a user${result?.error ? `: ${result.error.message}` : ''}`,
      );
    return result.principal;
  }

  attach(host: HostConnection, log: Logger): void {
    const e = host.endpoint;
    e.onNotification(CommandsProtocol.kernel.register, ({ extensionId, command }) => {
      if (hostRuns(host, extensionId) && !this.commands.register(command, extensionId)) {
        log.error(
          { extension: extensionId, command },
          `${extensionId} tried to register ${command}, which ${this.commands.ownerOf(command)} declares; refused`,
        );
      }
    });
    e.onNotification(
      CommandsProtocol.kernel.unregister,
      ({ extensionId, command }) => hostRuns(host, extensionId) && this.commands.unregister(command, extensionId),
    );
    // Calls from a host run in the context they carry, so the kernel's next hop and log lines stay linked to the request.
    e.onRequest(CommandsProtocol.kernel.execute, ({ command, args, callerId, actingFor, context }, token) => {
      assertHostRuns(host, callerId);
      return runInCallContext(context, () => this.execute(command, args, token, callerId, actingFor));
    });
  }
}
