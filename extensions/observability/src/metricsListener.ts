import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AionMetrics } from './metrics.js';

/** `host:port`, `[v6]:port`; port 0 picks a free one. */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(listen.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`metrics.listen must be host:port (e.g. 127.0.0.1:9464), not "${listen}"`);
  return { host: m[1] ?? m[2]!, port };
}

/**
 * A second listener that serves only `GET /metrics`, without authentication, for a scraper on a
 * private network: everything else is 404, and nothing but metrics is reachable through it.
 */
export async function startMetricsListener(listen: string, metrics: AionMetrics): Promise<{ url: string; close(): Promise<void> }> {
  const { host, port } = parseListen(listen);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res
        .writeHead(404, { 'content-type': 'application/json' })
        .end(JSON.stringify({ error: { code: 'NOT_FOUND', message: 'this listener serves only GET /metrics' } }));
      return;
    }
    metrics.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(req.method === 'HEAD' ? undefined : text),
      () =>
        res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'INTERNAL', message: 'collecting metrics failed' } })),
    );
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${shown}:${address.port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
