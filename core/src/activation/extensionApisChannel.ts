import { inject, injectable } from 'inversify';
import { ExtensionApisProtocol } from '@aion/extension-api/protocol';
import { runInCallContext } from '@aion/host-runtime';
import type { HostConnection } from '../hosts/hostManager.js';
import { assertHostRuns, type KernelChannel } from '../hosts/kernelChannel.js';
import { PermissionService } from '../permissions/permissionService.js';
import { ActivationService } from './activationService.js';

/** The kernel half of `aion.extensions`: one extension calling another's API, as the callee's manifest allows. */
@injectable()
export class ExtensionApisChannel implements KernelChannel {
  constructor(
    @inject(ActivationService) private readonly activation: ActivationService,
    @inject(PermissionService) private readonly permissions: PermissionService,
  ) {}

  attach(host: HostConnection): void {
    const e = host.endpoint;
    e.onRequest(ExtensionApisProtocol.kernel.getApi, async ({ callerId, extensionId }) => {
      assertHostRuns(host, callerId);
      this.permissions.assertMayCallApi(callerId, extensionId);
      const record = await this.activation.activate(extensionId, 'getApi');
      return { apiMethods: record.apiMethods ?? [] };
    });
    e.onRequest(ExtensionApisProtocol.kernel.invokeApi, async ({ extensionId, method, args, callerId, context }, token) => {
      assertHostRuns(host, callerId);
      this.permissions.assertMayCallApi(callerId, extensionId, method);
      return runInCallContext(context, async () => {
        const target = await this.activation.hostOf(extensionId, 'getApi');
        return target.request(ExtensionApisProtocol.host.invokeApi, { extensionId, method, args, callerId }, token);
      });
    });
  }
}
