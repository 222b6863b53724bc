import { connect, createServer, type AddressInfo } from 'node:net';
import { ProxyAgent, setGlobalDispatcher } from 'undici';

/** Set by the kernel when this host runs in a network namespace of its own: the path of its egress proxy. */
export const EGRESS_SOCKET_ENV = 'AION_EGRESS_SOCKET';

/**
 * The host's half of network isolation. Inside the namespace only loopback exists, so the kernel's
 * egress proxy (a unix socket) is the one way out: `fetch` and undici go to it through the global
 * dispatcher, and other clients through `HTTP_PROXY`/`HTTPS_PROXY`, which point at a forwarder on
 * this namespace's own loopback.
 */
export async function useEgressProxy(socketPath: string): Promise<{ proxyUrl: string }> {
  // Reached by its socket path (the URI only names it). Every origin, http: too, gets a CONNECT tunnel:
  // checked once per connection, then bytes only, which costs less per request than absolute-form.
  setGlobalDispatcher(new ProxyAgent({ uri: 'http://aion-egress.invalid', proxyTls: { socketPath }, proxyTunnel: true }));
  const forwarder = createServer((client) => {
    const upstream = connect(socketPath);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    forwarder.once('error', reject);
    forwarder.listen(0, '127.0.0.1', resolve);
  });
  forwarder.unref();
  const proxyUrl = `http://127.0.0.1:${(forwarder.address() as AddressInfo).port}`;
  for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy']) process.env[name] = proxyUrl;
  for (const name of ['NO_PROXY', 'no_proxy']) delete process.env[name];
  return { proxyUrl };
}
