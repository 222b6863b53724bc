import { inject, injectable } from 'inversify';
import { EventsProtocol } from '@aion/extension-api/protocol';
import { HostManager, type HostConnection } from '../hosts/hostManager.js';
import { hostRuns, type KernelChannel } from '../hosts/kernelChannel.js';
import { EventBus } from './eventBus.js';

/** The kernel half of `aion.events`: hosts subscribe by name and emit for their own extensions. */
@injectable()
export class EventsChannel implements KernelChannel {
  constructor(
    @inject(EventBus) private readonly events: EventBus,
    @inject(HostManager) hosts: HostManager,
  ) {
    hosts.onDidCrash(({ host }) => this.events.forgetHost(host));
  }

  attach(host: HostConnection): void {
    host.endpoint.onNotification(EventsProtocol.kernel.subscribe, ({ event }) => this.events.subscribe(event, host));
    host.endpoint.onNotification(EventsProtocol.kernel.emit, ({ extensionId, event, data }) => hostRuns(host, extensionId) && this.events.emit(event, data));
  }
}
