import * as aion from '@aion/extension-api';
import { Server, ServerCredentials, loadPackageDefinition, type ServiceDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { PROTO_LOADER_OPTIONS, PROTO_PATH, type GrpcStatus } from './api.js';
import { readConfiguration, tlsMaterial } from './config.js';
import { Admission, createTaskService } from './service.js';

export async function activate(ctx: aion.ExtensionContext): Promise<void> {
  const config = readConfiguration(ctx.configuration.get());
  const tls = tlsMaterial(config.tls);
  const definition = loadPackageDefinition(loadSync(PROTO_PATH, { ...PROTO_LOADER_OPTIONS }));
  const service = (definition.aion as any).v1.AionTasks.service as ServiceDefinition;

  const admission = new Admission(() => config.maxInFlight);
  const server = new Server({ 'grpc.max_receive_message_length': config.maxMessageBytes });
  server.addService(
    service,
    createTaskService(admission, {
      maxInFlight: () => config.maxInFlight,
      defaultWaitMs: () => config.defaultWaitMs,
      retryAfterSeconds: () => config.retryAfterSeconds,
      log: (level, message) => ctx.logger[level](message),
    }),
  );

  const credentials = tls
    ? ServerCredentials.createSsl(tls.ca ?? null, [{ cert_chain: tls.cert, private_key: tls.key }], tls.requireClientCert)
    : ServerCredentials.createInsecure();
  const address = config.host.includes(':') ? `[${config.host}]:${config.port}` : `${config.host}:${config.port}`;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, credentials, (err, bound) =>
      err ? reject(new aion.AionError('GRPC_LISTEN_FAILED', `gRPC could not listen on ${address}: ${err.message}`)) : resolve(bound),
    ),
  );
  ctx.logger.info(`gRPC listening on ${config.host}:${port}${tls ? (tls.requireClientCert ? ' (mTLS)' : ' (TLS)') : ''}`);
  if (!tls && !['127.0.0.1', '::1', 'localhost'].includes(config.host)) {
    ctx.logger.warn(`gRPC on ${config.host}:${port} is plaintext: credentials cross the network unencrypted; set extensions["aion.grpc"].tls`);
  }

  const status = (): GrpcStatus => ({
    host: config.host,
    port,
    tls: Boolean(tls),
    mtls: Boolean(tls?.requireClientCert),
    in_flight: admission.inFlight,
    max_in_flight: config.maxInFlight,
  });
  ctx.subscriptions.push(aion.commands.register('grpc.status', status), {
    // Calls in flight get a moment to finish; streams that follow long tasks are then cut.
    dispose: () =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2_000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  });
}

export function deactivate(): void {}
