import { AionError, ErrorCodes, type CommandsNamespace } from '@aion/extension-api';
import { CommandsProtocol } from '@aion/extension-api/protocol';
import { currentCallContext } from '../callContext.js';
import { callWithToken } from '../remoteProxy.js';
import { popToken, type ExtensionScope, type HostServices } from './capability.js';

type Fn = (...args: unknown[]) => unknown;

/** `aion.commands`: commands this host's extensions implement, and runs of any command through the kernel. */
export function hostCommands(host: HostServices): (scope: ExtensionScope) => CommandsNamespace {
  const commands = new Map<string, { extensionId: string; fn: Fn }>();
  const { endpoint } = host;
  endpoint.onRequest(CommandsProtocol.host.execute, ({ command, args, callerId, principal, context }, token) => {
    const entry = commands.get(command);
    if (!entry) throw new AionError(ErrorCodes.COMMAND_NOT_FOUND, `no handler is registered for command ${command}`);
    return host.run(entry.extensionId, context, () => callWithToken(undefined as never, entry.fn, args, token), { id: callerId, principal });
  });
  return ({ extensionId, register }) => ({
    register: (command, fn) => {
      commands.set(command, { extensionId, fn: fn as Fn });
      endpoint.sendNotification(CommandsProtocol.kernel.register, { extensionId, command });
      return register(() => {
        commands.delete(command);
        endpoint.sendNotification(CommandsProtocol.kernel.unregister, { extensionId, command });
      });
    },
    execute: <T>(command: string, ...args: unknown[]) => {
      const token = popToken(args);
      return endpoint.sendRequest(
        CommandsProtocol.kernel.execute,
        { command, args, callerId: extensionId, context: currentCallContext() },
        token,
      ) as Promise<T>;
    },
    executeFor: <T>(credentials: { authorization?: string; apiKey?: string }, command: string, ...args: unknown[]) => {
      const token = popToken(args);
      const actingFor = { authorization: credentials?.authorization, apiKey: credentials?.apiKey };
      return endpoint.sendRequest(
        CommandsProtocol.kernel.execute,
        { command, args, callerId: extensionId, actingFor, context: currentCallContext() },
        token,
      ) as Promise<T>;
    },
    // Read from the call frame by `aion.commands.principal()`; a binding has none of its own.
    principal: () => undefined,
  });
}
