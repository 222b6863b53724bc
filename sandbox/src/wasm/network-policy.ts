import { BlockList, isIP } from 'node:net';

/** Address ranges a guest reaches only through a host declared by exact name or address. */
const PRIVATE_RANGES: ReadonlyArray<[string, number, 'ipv4' | 'ipv6']> = [
  ['0.0.0.0', 8, 'ipv4'], // "this network": 0.0.0.0 reaches the local host on Linux
  ['10.0.0.0', 8, 'ipv4'],
  ['100.64.0.0', 10, 'ipv4'],
  ['127.0.0.0', 8, 'ipv4'],
  ['169.254.0.0', 16, 'ipv4'],
  ['172.16.0.0', 12, 'ipv4'],
  ['192.168.0.0', 16, 'ipv4'],
  ['::', 128, 'ipv6'],
  ['::1', 128, 'ipv6'],
  ['fc00::', 7, 'ipv6'],
  ['fe80::', 10, 'ipv6'],
];

const privateRanges = new BlockList();
for (const [address, prefix, family] of PRIVATE_RANGES) privateRanges.addSubnet(address, prefix, family);

export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  return privateRanges.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

export interface HostMatch {
  /** The host is named exactly (not by a `*.` pattern), which also lets it resolve to a private address. */
  explicit: boolean;
}

/**
 * Which hosts a guest may reach. Entries are a host name or address (`api.example.com`,
 * `127.0.0.1`, `[::1]`), optionally with a port (`127.0.0.1:8080`), or a suffix pattern
 * (`*.example.com`). A pattern never grants private addresses.
 */
export class NetworkPolicy {
  private readonly entries: Array<{ host: string; port: string | null; wildcard: boolean }>;

  constructor(allowedHosts: readonly string[]) {
    this.entries = allowedHosts.map((entry) => {
      const raw = entry.trim().toLowerCase();
      const wildcard = raw.startsWith('*.');
      const url = new URL(`http://${wildcard ? raw.slice(2) : raw}`);
      return { host: stripBrackets(url.hostname), port: url.port || null, wildcard };
    });
  }

  get isEmpty(): boolean {
    return this.entries.length === 0;
  }

  /** The matching entry for a URL's host and port, or null when the host is not declared. */
  match(url: URL): HostMatch | null {
    const host = stripBrackets(url.hostname);
    const port = url.port || (url.protocol === 'https:' ? '443' : '80');
    let found: HostMatch | null = null;
    for (const entry of this.entries) {
      if (entry.port !== null && entry.port !== port) continue;
      if (!entry.wildcard && entry.host === host) return { explicit: true };
      if (entry.wildcard && host.endsWith(`.${entry.host}`)) found = { explicit: false };
    }
    return found;
  }
}

export function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}
