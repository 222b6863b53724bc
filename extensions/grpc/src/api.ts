/**
 * What `aion.grpc` offers: the `.proto` file clients are generated from, and the shape of
 * `grpc.status`. Load the service in Node with:
 *
 * ```ts
 * import { PROTO_PATH, PROTO_LOADER_OPTIONS } from '@aion/ext-grpc';
 * const def = protoLoader.loadSync(PROTO_PATH, PROTO_LOADER_OPTIONS);
 * const { AionTasks } = (grpc.loadPackageDefinition(def) as any).aion.v1;
 * ```
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** `proto/aion/v1/tasks.proto` in this package. */
export const PROTO_PATH = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'proto', 'aion', 'v1', 'tasks.proto');

/** The proto-loader options the server uses: field names as in the file, enums as names, 64-bit ints as numbers. */
export const PROTO_LOADER_OPTIONS = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true } as const;

export interface GrpcStatus {
  host: string;
  port: number;
  tls: boolean;
  mtls: boolean;
  in_flight: number;
  max_in_flight: number;
}
