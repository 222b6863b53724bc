import { BlockList, isIP } from 'node:net';
import { lookup } from 'node:dns/promises';

/** One `host:port` entry of an allow-list, normalized. */
interface AllowEntry {
  text: string;
  /** Lower-case, without IPv6 brackets; IP literals in their canonical form. */
  host: string;
  /** Set when the host part holds a `*`. */
  pattern?: RegExp;
  port: number | '*';
}

/** What an extension may reach: everything, or the entries of its allow-list (none for `deny`). */
export interface NetworkPolicy {
  unrestricted: boolean;
  /** The manifest's entries and the operator's grants, as written. */
  entries: string[];
  allow: AllowEntry[];
  /** Entries that are not `host:port` (a manifest is checked by its schema; grants are not). */
  invalid: string[];
}

/** `permissions.network` from the manifest merged with `permissions.grants[id].network` from the operator. */
export function networkPolicy(declared: 'deny' | string[] | undefined, granted: string[] = []): NetworkPolicy {
  if (declared === undefined) return { unrestricted: true, entries: [], allow: [], invalid: [] };
  const entries = [...new Set([...(declared === 'deny' ? [] : declared), ...granted])];
  const allow: AllowEntry[] = [];
  const invalid: string[] = [];
  for (const text of entries) {
    const entry = parseEntry(text);
    if (entry) allow.push(entry);
    else invalid.push(text);
  }
  return { unrestricted: allow.some((e) => e.host === '*' && e.port === '*'), entries, allow, invalid };
}

/** WHATWG URL parsing gives one spelling per host: lower case, IPv4 shorthand expanded, IPv6 compressed. */
export function canonicalHost(host: string): string | undefined {
  const bare = host.replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
  if (!bare) return undefined;
  try {
    return new URL(`http://${isIP(bare) === 6 ? `[${bare}]` : bare}/`).hostname.replace(/^\[(.*)\]$/, '$1');
  } catch {
    return undefined;
  }
}

function parseEntry(text: string): AllowEntry | undefined {
  const colon = text.lastIndexOf(':');
  if (colon <= 0) return undefined;
  const portText = text.slice(colon + 1);
  const port = portText === '*' ? '*' : Number(portText);
  if (port !== '*' && !(Number.isInteger(port) && port > 0 && port < 65536)) return undefined;
  const rawHost = text.slice(0, colon).toLowerCase();
  if (rawHost.includes('*')) {
    const source = rawHost
      .replace(/^\[(.*)\]$/, '$1')
      .split('*')
      .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.+');
    return { text, host: rawHost, pattern: new RegExp(`^${source}$`), port };
  }
  const host = canonicalHost(rawHost);
  return host ? { text, host, port } : undefined;
}

const nonPublicV4 = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  nonPublicV4.addSubnet(net, prefix, 'ipv4');
}
const nonPublicV6 = new BlockList();
// IPv4-mapped, IPv4-compatible and NAT64 addresses embed an IPv4 address: refused like the private ones.
for (const [net, prefix] of [
  ['::', 96],
  ['::ffff:0:0', 96],
  ['64:ff9b::', 96],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const) {
  nonPublicV6.addSubnet(net, prefix, 'ipv6');
}

/** Loopback, private, link-local, unique-local, CGNAT, multicast and reserved addresses: the kernel's own side of the network. */
export function isNonPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return nonPublicV4.check(address, 'ipv4');
  if (family === 6) return nonPublicV6.check(address, 'ipv6');
  return true;
}

export type EgressDecision = { allowed: true; addresses: string[] } | { allowed: false; reason: string };

export type Resolver = (host: string) => Promise<string[]>;

const systemResolver: Resolver = async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);

/**
 * Whether `host:port` may be reached, and at which addresses. A name must match an entry; each of
 * its addresses that is not public must itself be listed literally (or the name be `localhost`,
 * listed literally), so a public-looking name cannot lead to the kernel's own network. The caller
 * connects to the addresses returned, never to the name, so DNS cannot change between check and connect.
 */
export async function decideEgress(policy: NetworkPolicy, rawHost: string, port: number, resolve: Resolver = systemResolver): Promise<EgressDecision> {
  if (policy.unrestricted) return { allowed: true, addresses: await resolveAll(rawHost, resolve) };
  const host = canonicalHost(rawHost);
  if (!host || !Number.isInteger(port) || port <= 0 || port > 65535) return { allowed: false, reason: 'the target is not a valid host:port' };
  const candidates = policy.allow.filter((e) => e.port === '*' || e.port === port);
  const listedLiterally = (address: string) => candidates.some((e) => !e.pattern && e.host === address);
  if (isIP(host)) {
    if (isNonPublicAddress(host))
      return listedLiterally(host)
        ? { allowed: true, addresses: [host] }
        : { allowed: false, reason: `${host} is a private or loopback address, reachable only when the allow-list names it literally` };
    return candidates.some((e) => (e.pattern ? e.pattern.test(host) : e.host === host))
      ? { allowed: true, addresses: [host] }
      : { allowed: false, reason: 'it is not on the allow-list' };
  }
  if (!candidates.some((e) => (e.pattern ? e.pattern.test(host) : e.host === host))) return { allowed: false, reason: 'it is not on the allow-list' };
  let addresses: string[];
  try {
    addresses = await resolve(host);
  } catch (err) {
    return { allowed: false, reason: `the name does not resolve (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` };
  }
  const localhostListed = host === 'localhost' && listedLiterally('localhost');
  const permitted = addresses.filter((a) => !isNonPublicAddress(a) || listedLiterally(canonicalHost(a) ?? a) || localhostListed);
  if (permitted.length === 0)
    return {
      allowed: false,
      reason: `it resolves to ${addresses.join(', ')}, a private or loopback address, reachable only when the allow-list names that address literally`,
    };
  return { allowed: true, addresses: permitted };
}

async function resolveAll(host: string, resolve: Resolver): Promise<string[]> {
  const canonical = canonicalHost(host) ?? host;
  return isIP(canonical) ? [canonical] : resolve(canonical);
}
