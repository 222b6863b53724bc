import { inject, injectable, multiInject } from 'inversify';
import { LifecycleProtocol } from '@aion/extension-api/protocol';
import type { Logger } from '../logging.js';
import { TYPES } from '../tokens.js';
import { HostManager, type HostConnection } from './hostManager.js';
import type { KernelChannel } from './kernelChannel.js';

/** The kernel's half of the protocol: every capability's channel, attached to each host as it starts. */
@injectable()
export class KernelEndpoint {
  constructor(
    @inject(TYPES.Logger) private readonly logger: Logger,
    @inject(HostManager) hosts: HostManager,
    @multiInject(TYPES.KernelChannel) private readonly channels: KernelChannel[],
  ) {
    hosts.onDidStartHost((host) => this.attach(host));
  }

  private attach(host: HostConnection): void {
    const log = this.logger.child({ host: host.key });
    host.endpoint.onNotification(LifecycleProtocol.kernel.log, ({ extensionId, level, message, data }) => {
      const target = extensionId ? log.child({ extension: extensionId }) : log;
      target[level in target ? level : 'info']({ ...data }, message);
    });
    for (const channel of this.channels) channel.attach(host, log);
  }
}
