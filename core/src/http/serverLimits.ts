import { createServer, maxHeaderSize, type RequestListener, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { AionError, ErrorCodes } from '@aion/extension-api';
import type { ServerConfig } from '../config/configuration.js';
import type { Logger } from '../logging.js';
import { normalizeAddress, type TrustedProxies } from './clientAddress.js';
import { rawErrorResponse } from './errorResponse.js';

export interface ServerLimitsOptions {
  config: ServerConfig;
  proxies: TrustedProxies;
  logger: Logger;
}

/** What a client that broke HTTP itself is told, in the one error shape. */
function clientErrorFor(err: NodeJS.ErrnoException, config: ServerConfig): AionError {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return new AionError(
        ErrorCodes.HEADERS_TOO_LARGE,
        `the request headers are larger than the ${maxHeaderSize} bytes this server accepts; send fewer or shorter headers`,
        { details: { maxHeaderSize } },
      );
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new AionError(
        ErrorCodes.REQUEST_TIMEOUT,
        `the request did not arrive in time: headers within ${config.headersTimeoutMs} ms, the whole request within ${config.receiveTimeoutMs} ms`,
      );
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return new AionError(ErrorCodes.PAYLOAD_TOO_LARGE, 'the chunk extensions of the request are too large');
    default:
      return new AionError(ErrorCodes.BAD_REQUEST, `the request is not valid HTTP/1.1 (${err.code ?? 'parse error'})`);
  }
}

/**
 * The kernel's `http.Server`, hardened against slow and greedy clients: Node's headers and request
 * clocks, client errors (431, 408, 400) answered in the error shape, and a cap on open connections
 * per client address that refuses before the HTTP parser sees a byte.
 */
export function createLimitedServer(listener: RequestListener, { config, proxies, logger }: ServerLimitsOptions): Server {
  if (config.headersTimeoutMs > config.receiveTimeoutMs) {
    throw new AionError(
      ErrorCodes.CONFIG_INVALID,
      `server.headersTimeoutMs (${config.headersTimeoutMs}) must not exceed server.receiveTimeoutMs (${config.receiveTimeoutMs})`,
    );
  }
  // Node checks its clocks only this often; a quarter of the shorter one keeps them close to what is configured.
  const connectionsCheckingInterval = Math.max(100, Math.min(5_000, Math.floor(config.headersTimeoutMs / 4)));
  const server = createServer({ connectionsCheckingInterval }, listener);
  server.headersTimeout = config.headersTimeoutMs;
  server.requestTimeout = config.receiveTimeoutMs;
  server.keepAliveTimeout = 5_000;
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // Node's own rule: answer only while nothing of a response has gone out on this socket.
    const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    logger.debug({ code: err.code }, 'client error');
    socket.end(rawErrorResponse(clientErrorFor(err, config)));
  });
  if (config.maxConnectionsPerIp > 0) gateConnections(server, config.maxConnectionsPerIp, proxies, logger);
  return server;
}

/** Puts a per-address connection count in front of Node's own connection listener. */
function gateConnections(server: Server, cap: number, proxies: TrustedProxies, logger: Logger): void {
  const parse = server.listeners('connection') as Array<(socket: Socket) => void>;
  server.removeAllListeners('connection');
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const address = normalizeAddress(socket.remoteAddress ?? '');
    if (!proxies.trusts(address)) {
      const count = open.get(address) ?? 0;
      if (count >= cap) return refuseConnection(socket, address, cap, logger);
      open.set(address, count + 1);
      socket.once('close', () => {
        const left = open.get(address)! - 1;
        if (left > 0) open.set(address, left);
        else open.delete(address);
      });
    }
    for (const listener of parse) listener.call(server, socket);
  });
}

function refuseConnection(socket: Socket, address: string, cap: number, logger: Logger): void {
  logger.debug({ ip: address, cap }, 'connection refused: too many open connections from one address');
  socket.on('error', () => undefined);
  // Read and drop what the client sends, so closing does not reset the answer away before it is read.
  socket.resume();
  setTimeout(() => socket.destroy(), 1_000).unref();
  const error = new AionError(ErrorCodes.RATE_LIMITED, `too many open connections from ${address} (at most ${cap}); close idle connections and retry`, {
    headers: { 'Retry-After': '1' },
    details: { maxConnectionsPerIp: cap },
  });
  socket.end(rawErrorResponse(error));
}
