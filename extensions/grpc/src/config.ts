import { readFileSync } from 'node:fs';
import { AionError, ErrorCodes } from '@aion/extension-api';

export interface GrpcConfiguration {
  port: number;
  host: string;
  maxInFlight: number;
  maxMessageBytes: number;
  defaultWaitMs: number;
  retryAfterSeconds: number;
  tls: { cert: string; key: string; ca: string; requireClientCert: boolean };
}

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
  requireClientCert: boolean;
}

export function readConfiguration(raw: Partial<GrpcConfiguration> | undefined): GrpcConfiguration {
  const r = raw ?? {};
  return {
    port: r.port ?? 50051,
    host: r.host ?? '127.0.0.1',
    maxInFlight: r.maxInFlight ?? 1024,
    maxMessageBytes: r.maxMessageBytes ?? 4 * 1024 * 1024,
    defaultWaitMs: r.defaultWaitMs ?? 300_000,
    retryAfterSeconds: r.retryAfterSeconds ?? 1,
    tls: { cert: r.tls?.cert ?? '', key: r.tls?.key ?? '', ca: r.tls?.ca ?? '', requireClientCert: r.tls?.requireClientCert ?? false },
  };
}

/** The certificates named in `tls`, or undefined for plaintext; a half-done setup is refused, never downgraded. */
export function tlsMaterial(tls: GrpcConfiguration['tls']): TlsMaterial | undefined {
  if (!tls.cert && !tls.key) {
    if (tls.ca || tls.requireClientCert)
      throw new AionError(ErrorCodes.CONFIG_INVALID, 'aion.grpc tls.ca and tls.requireClientCert need tls.cert and tls.key: mTLS runs over TLS');
    return undefined;
  }
  if (!tls.cert || !tls.key) throw new AionError(ErrorCodes.CONFIG_INVALID, `aion.grpc tls needs both cert and key (${tls.cert ? 'key' : 'cert'} is missing)`);
  if (tls.requireClientCert && !tls.ca)
    throw new AionError(ErrorCodes.CONFIG_INVALID, 'aion.grpc tls.requireClientCert needs tls.ca, the CA that signs client certificates');
  return { cert: pem(tls.cert, 'cert'), key: pem(tls.key, 'key'), ca: tls.ca ? pem(tls.ca, 'ca') : undefined, requireClientCert: tls.requireClientCert };
}

/** PEM text as given, or the file it names. */
function pem(value: string, name: string): Buffer {
  if (value.includes('-----BEGIN')) return Buffer.from(value);
  try {
    return readFileSync(value);
  } catch (err) {
    throw new AionError(ErrorCodes.CONFIG_INVALID, `aion.grpc tls.${name} ${value} could not be read: ${(err as Error).message}`);
  }
}
