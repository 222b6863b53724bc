import { inject, injectable } from 'inversify';
import { SecretsProtocol } from '@aion/extension-api/protocol';
import type { HostConnection } from '../hosts/hostManager.js';
import { assertHostRuns, type KernelChannel } from '../hosts/kernelChannel.js';
import { SecretsService } from './secretsService.js';

/** The kernel half of `ctx.secrets`: a host reads secrets only for the extensions it runs. */
@injectable()
export class SecretsChannel implements KernelChannel {
  constructor(@inject(SecretsService) private readonly secrets: SecretsService) {}

  attach(host: HostConnection): void {
    host.endpoint.onRequest(SecretsProtocol.kernel.get, ({ extensionId, name }) => {
      assertHostRuns(host, extensionId);
      return this.secrets.get(extensionId, name) ?? null;
    });
  }
}
