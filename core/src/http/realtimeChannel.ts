import { inject, injectable } from 'inversify';
import { RealtimeProtocol } from '@aion/extension-api/protocol';
import type { HostConnection } from '../hosts/hostManager.js';
import { hostRuns, type KernelChannel } from '../hosts/kernelChannel.js';
import { RealtimeService } from './realtimeService.js';

/** The kernel half of `aion.realtime`: a host publishes to rooms for the extensions it runs. */
@injectable()
export class RealtimeChannel implements KernelChannel {
  constructor(@inject(RealtimeService) private readonly realtime: RealtimeService) {}

  attach(host: HostConnection): void {
    host.endpoint.onNotification(
      RealtimeProtocol.kernel.publish,
      ({ extensionId, room, event, data }) => hostRuns(host, extensionId) && this.realtime.publish(room, event, data),
    );
  }
}
