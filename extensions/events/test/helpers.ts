import { createServer as createHttpServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect as tcpConnect, createServer as createTcpServer, type Socket } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor as waitForCondition } from '@aion/core';

export const FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures');
export const EVENTS_DIR = resolve(FIXTURES, '..', '..');
export const NATS_URL = process.env.AION_TEST_NATS_URL ?? 'nats://127.0.0.1:4222';
export const SECRET = 'a-test-secret-of-32-characters!!';

/** The test kit's waitFor with this suite's defaults. */
export const waitFor = <T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000, everyMs = 25) =>
  waitForCondition<T>(what, probe, timeoutMs, everyMs);

/** A port nothing listens on (it was free a moment ago): a sink pointed at it is down. */
export async function closedPort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

export interface ReceivedRequest {
  headers: IncomingHttpHeaders;
  body: string;
  status: number;
}

/** A real webhook receiver on 127.0.0.1: answers `status()` to each POST (0: hangs) and records everything. */
export class WebhookReceiver {
  readonly requests: ReceivedRequest[] = [];
  private server: Server | undefined;
  status: (request: Omit<ReceivedRequest, 'status'>) => number = () => 200;

  async listen(port = 0): Promise<number> {
    this.server = createHttpServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const request = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
        const status = this.status(request);
        this.requests.push({ ...request, status });
        // 0: never answer (a hung receiver); the sender's timeout has to give up.
        if (status === 0) return;
        res.writeHead(status, { 'content-type': 'text/plain' }).end(status < 300 ? 'ok' : 'receiver is failing on purpose');
      });
    });
    await new Promise<void>((r) => this.server!.listen(port, '127.0.0.1', r));
    return (this.server.address() as { port: number }).port;
  }

  /** The events answered 2xx, in arrival order. */
  accepted(): Array<{ id: string; type: string; tenant_id: string; data: any }> {
    return this.requests.filter((r) => r.status >= 200 && r.status < 300).map((r) => JSON.parse(r.body));
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.server = undefined;
  }
}

/** A TCP forwarder on a fixed loopback port: closing it makes the service behind it unreachable, opening it again brings it back. */
export class TcpGate {
  private server: ReturnType<typeof createTcpServer> | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async open(): Promise<void> {
    const server = createTcpServer((client) => {
      const upstream = tcpConnect(this.target.port, this.target.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => (client.destroy(), upstream.destroy()));
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((r) => server.listen(this.port, '127.0.0.1', r));
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.server = undefined;
  }
}

/** Whether NATS answers on its TCP port, as a readable reason when it does not. */
export function probeNats(url = NATS_URL): Promise<string | undefined> {
  const { hostname, port } = new URL(url);
  return new Promise((resolveProbe) => {
    const socket = tcpConnect(Number(port || 4222), hostname);
    socket.setTimeout(1000);
    socket.once('data', (d) => (socket.destroy(), resolveProbe(d.toString().startsWith('INFO') ? undefined : 'it does not speak NATS')));
    socket.once('timeout', () => (socket.destroy(), resolveProbe('no answer within 1 s')));
    socket.once('error', (err) => resolveProbe(err.message));
  });
}
