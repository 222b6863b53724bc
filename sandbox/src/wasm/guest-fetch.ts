import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { HostCallStatus } from './protocol.js';
import { isPrivateAddress, stripBrackets, type NetworkPolicy } from './network-policy.js';

/** What a guest passes to `aion.http_fetch`, as JSON. */
export interface GuestHttpRequest {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
}

/** What it gets back, as JSON: redirects are returned, not followed. */
export interface GuestHttpResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export type GuestFetchResult = { status: 'ok'; response: GuestHttpResponse } | { status: 'denied' | 'invalid' | 'too-large' | 'network-error'; reason: string };

export const fetchStatusCode: Record<Exclude<GuestFetchResult['status'], 'ok'>, number> = {
  denied: HostCallStatus.DENIED,
  invalid: HostCallStatus.INVALID_REQUEST,
  'too-large': HostCallStatus.TOO_LARGE,
  'network-error': HostCallStatus.NETWORK_ERROR,
};

export class PolicyDenied extends Error {
  readonly code = 'ESANDBOXDENIED';
}

export type LookupFunction = (hostname: string, options: object, callback: (...args: unknown[]) => void) => void;

/**
 * A `lookup` for the socket itself: it resolves the name and refuses private addresses unless the
 * host was declared by its exact name, so the name cannot resolve differently between check and connect.
 */
export function guardedLookup(explicit: boolean, label: string): LookupFunction {
  return (hostname, opts, callback) => {
    dnsLookup(hostname, { ...opts, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err);
      if (!explicit && addresses.some((a) => isPrivateAddress(a.address))) {
        return callback(new PolicyDenied(`http_fetch to ${label}: the host resolves to a private address`));
      }
      if ((opts as { all?: boolean }).all) return callback(null, addresses);
      const first = addresses[0];
      if (!first) return callback(new Error(`no address for ${hostname}`));
      callback(null, first.address, first.family);
    });
  };
}

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

function parseRequest(raw: Uint8Array): GuestHttpRequest | string {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
  } catch {
    return 'the request is not JSON';
  }
  if (typeof value !== 'object' || value === null) return 'the request is not an object';
  const request = value as Record<string, unknown>;
  if (typeof request.url !== 'string') return 'the request has no url';
  if (request.method !== undefined && (typeof request.method !== 'string' || !METHODS.has(request.method.toUpperCase()))) return 'unsupported method';
  if (request.body !== undefined && typeof request.body !== 'string') return 'body must be a string';
  if (request.headers !== undefined) {
    if (typeof request.headers !== 'object' || request.headers === null) return 'headers must be an object';
    if (Object.values(request.headers).some((v) => typeof v !== 'string')) return 'header values must be strings';
  }
  return request as unknown as GuestHttpRequest;
}

/**
 * Performs one guest HTTP request under the policy: the host must be declared, and a private
 * address (literal or resolved) is reached only through a host declared by its exact name.
 */
export async function performGuestFetch(
  raw: Uint8Array,
  policy: NetworkPolicy,
  options: { maxBodyBytes: number; signal: AbortSignal },
): Promise<GuestFetchResult> {
  const request = parseRequest(raw);
  if (typeof request === 'string') return { status: 'invalid', reason: request };
  let url: URL;
  try {
    url = new URL(request.url);
  } catch {
    return { status: 'invalid', reason: 'the url is not valid' };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return { status: 'invalid', reason: `scheme ${url.protocol} is not supported` };
  const host = stripBrackets(url.hostname);
  const match = policy.match(url);
  if (!match) return { status: 'denied', reason: `http_fetch to ${url.host}: the host is not declared` };
  if (isIP(host) && isPrivateAddress(host) && !match.explicit) {
    return { status: 'denied', reason: `http_fetch to ${url.host}: private address not declared explicitly` };
  }

  const lookup = guardedLookup(match.explicit, url.host);
  const transport = url.protocol === 'https:' ? https : http;
  return new Promise<GuestFetchResult>((resolve) => {
    let settled = false;
    const finish = (result: GuestFetchResult) => {
      if (settled) return;
      settled = true;
      resolve(result);
    };
    const req = transport.request(
      url,
      { method: (request.method ?? 'GET').toUpperCase(), headers: request.headers ?? {}, lookup: lookup as never, signal: options.signal, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > options.maxBodyBytes) {
            finish({ status: 'too-large', reason: `http_fetch to ${url.host}: the response is larger than ${options.maxBodyBytes} bytes` });
            req.destroy();
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => {
          const headers: Record<string, string> = {};
          for (const [name, value] of Object.entries(res.headers)) if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
          finish({ status: 'ok', response: { status: res.statusCode ?? 0, headers, body: Buffer.concat(chunks).toString('utf8') } });
        });
        res.on('error', (err) => finish({ status: 'network-error', reason: `http_fetch to ${url.host}: ${err.message}` }));
      },
    );
    req.on('error', (err) => {
      if (err instanceof PolicyDenied) finish({ status: 'denied', reason: err.message });
      else finish({ status: 'network-error', reason: `http_fetch to ${url.host}: ${(err as NodeJS.ErrnoException).code ?? err.message}` });
    });
    req.end(request.body);
  });
}
