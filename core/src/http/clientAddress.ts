import { BlockList, isIP } from 'node:net';
import { AionError, ErrorCodes } from '@aion/extension-api';

/** `::ffff:10.0.0.1` and `10.0.0.1` are one client. */
export function normalizeAddress(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/** One X-Forwarded-For entry without brackets or a port. */
function hopAddress(entry: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(entry);
  if (bracketed) return bracketed[1]!;
  const v4WithPort = /^(\d{1,3}(?:\.\d{1,3}){3}):\d+$/.exec(entry);
  return normalizeAddress(v4WithPort ? v4WithPort[1]! : entry);
}

const family = (address: string) => (isIP(address) === 6 ? 'ipv6' : 'ipv4');

/** The peers (`server.trustedProxies`: addresses or CIDRs) whose X-Forwarded-For is believed. */
export class TrustedProxies {
  private readonly list = new BlockList();
  private readonly empty: boolean;

  constructor(entries: readonly string[]) {
    this.empty = entries.length === 0;
    for (const entry of entries) {
      const [address = '', prefix] = entry.split('/');
      const bits = prefix === undefined ? undefined : Number(prefix);
      const maxBits = isIP(address) === 6 ? 128 : 32;
      if (!isIP(address) || (bits !== undefined && (!/^\d+$/.test(prefix!) || bits > maxBits))) {
        throw new AionError(ErrorCodes.CONFIG_INVALID, `server.trustedProxies: "${entry}" is neither an IP address nor a CIDR such as 10.0.0.0/8`);
      }
      if (bits === undefined) this.list.addAddress(address, family(address));
      else this.list.addSubnet(address, bits, family(address));
    }
  }

  trusts(address: string): boolean {
    const a = normalizeAddress(address);
    return !this.empty && isIP(a) !== 0 && this.list.check(a, family(a));
  }

  /**
   * The client's address: the peer, unless the peer is a trusted proxy; then X-Forwarded-For is read
   * from the right, skipping trusted proxies, and the first address that is not one is the client.
   */
  clientAddress(peer: string | undefined, forwardedFor: string | string[] | undefined): string {
    let client = normalizeAddress(peer ?? '');
    if (!forwardedFor || !this.trusts(client)) return client;
    const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor).split(',').map((s) => s.trim());
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hopAddress(hops[i]!);
      // A hop that is not an address was written by someone we do not trust: stop at the last one we do.
      if (!isIP(hop)) return client;
      client = hop;
      if (!this.trusts(hop)) return hop;
    }
    return client;
  }
}
