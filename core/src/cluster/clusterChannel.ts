import { inject, injectable } from 'inversify';
import { ClusterProtocol } from '@aion/extension-api/protocol';
import type { HostConnection } from '../hosts/hostManager.js';
import type { KernelChannel } from '../hosts/kernelChannel.js';
import { ClusterMembership } from './clusterMembership.js';

/** The kernel half of `aion.cluster`: this kernel's identity and its live peers. */
@injectable()
export class ClusterChannel implements KernelChannel {
  constructor(@inject(ClusterMembership) private readonly membership: ClusterMembership) {}

  attach(host: HostConnection): void {
    host.endpoint.onRequest(ClusterProtocol.kernel.self, () => this.membership.self);
    host.endpoint.onRequest(ClusterProtocol.kernel.members, () => this.membership.members());
  }
}
