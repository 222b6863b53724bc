import { inject, injectable } from 'inversify';
import { AionError, ErrorCodes, type CancellationToken } from '@aion/extension-api';
import { ContributionsProtocol } from '@aion/extension-api/protocol';
import { runInCallContext } from '@aion/host-runtime';
import { ActivationService } from '../activation/activationService.js';
import type { HostConnection } from '../hosts/hostManager.js';
import { assertHostRuns, hostRuns, type KernelChannel } from '../hosts/kernelChannel.js';
import type { Logger } from '../logging.js';
import { ContributionRegistry } from './contributionRegistry.js';

/** The kernel half of `aion.contributions`: which extension implements each entry, and calls to it. */
@injectable()
export class ContributionsChannel implements KernelChannel {
  constructor(
    @inject(ContributionRegistry) private readonly contributions: ContributionRegistry,
    @inject(ActivationService) private readonly activation: ActivationService,
  ) {}

  /** The extension implementing an entry and its methods, activating the contributing extension on first use. */
  async resolve(point: string, id: string): Promise<{ extensionId: string; methods: string[] }> {
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

  async invoke(point: string, id: string, method: string, args: unknown[], token?: CancellationToken, callerId?: string): Promise<unknown> {
    const { extensionId } = await this.resolve(point, id);
    const host = await this.activation.hostOf(extensionId, `${point}:${id}`);
    return host.request(ContributionsProtocol.host.invoke, { point, id, method, args, callerId, extensionId }, token);
  }

  attach(host: HostConnection, log: Logger): void {
    const e = host.endpoint;
    e.onNotification(ContributionsProtocol.kernel.register, ({ extensionId, point, id, methods }) => {
      if (hostRuns(host, extensionId) && !this.contributions.setImplementation(point, id, { extensionId, methods })) {
        log.error(
          { extension: extensionId, point, id },
          `${extensionId} tried to implement ${point} entry ${id}, which ${this.contributions.ownerOf(point, id)} contributes; refused`,
        );
      }
    });
    e.onNotification(
      ContributionsProtocol.kernel.unregister,
      ({ extensionId, point, id }) => hostRuns(host, extensionId) && this.contributions.removeImplementation(point, id, extensionId),
    );
    e.onRequest(ContributionsProtocol.kernel.resolve, ({ point, id }) => this.resolve(point, id));
    e.onRequest(ContributionsProtocol.kernel.list, ({ point }) => this.contributions.list(point));
    e.onRequest(ContributionsProtocol.kernel.invoke, ({ point, id, method, args, callerId, context }, token) => {
      assertHostRuns(host, callerId);
      return runInCallContext(context, () => this.invoke(point, id, method, args, token, callerId));
    });
  }
}
