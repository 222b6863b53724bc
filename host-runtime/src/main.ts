/**
 * Entry point of a child-process extension host (`shared` and `dedicated`). Talks to the kernel over
 * Node IPC; exits when the kernel goes away.
 */
import { createMessageConnection } from 'vscode-jsonrpc/node';
import { AionError, ErrorCodes, type HostKind } from '@aion/extension-api';
import { BatchingIpcReader, BatchingIpcWriter, LifecycleProtocol, RpcEndpoint } from '@aion/extension-api/protocol';
import { ExtensionHost } from './extensionHost.js';
import { EGRESS_SOCKET_ENV, useEgressProxy } from './networkIsolation.js';

if (!process.send) {
  process.stderr.write('the Aion extension host must be started by the kernel (it needs an IPC channel)\n');
  process.exit(2);
}

const kind = (process.env.AION_HOST_KIND ?? 'shared') as HostKind;
// Before any extension loads, so its first request already takes the way out; IPC messages wait meanwhile.
const egressSocket = process.env[EGRESS_SOCKET_ENV];
if (egressSocket) await useEgressProxy(egressSocket);
const connection = createMessageConnection(new BatchingIpcReader(process), new BatchingIpcWriter(process));
const endpoint = new RpcEndpoint(connection);
new ExtensionHost(endpoint, kind);
connection.onClose(() => {
  endpoint.close(new AionError(ErrorCodes.EXTENSION_HOST_CRASHED, 'the kernel closed the connection'));
  process.exit(0);
});
process.on('disconnect', () => process.exit(0));
process.on('unhandledRejection', (reason) => {
  // One extension's forgotten promise must not take down the others sharing this host.
  endpoint.sendNotification(LifecycleProtocol.kernel.log, {
    level: 'error',
    message: 'unhandled promise rejection in extension host',
    data: { error: reason instanceof Error ? reason.stack : String(reason) },
  });
});
connection.listen();
