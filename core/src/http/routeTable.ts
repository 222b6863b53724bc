import { pathToRegexp } from 'path-to-regexp';

/** A path's route: `/v1/things/:id` (path-to-regexp syntax), case-insensitive, a trailing slash allowed. */
interface RouteEntry<H> {
  path: string;
  methods: string[];
  regexp: RegExp;
  paramNames: string[];
  handler: H;
}

export type RouteMatch<H> =
  | { handler: H; route: string; params: Record<string, string> }
  /** The path is known, not with this method: the methods it allows. */
  | { allowed: string[] }
  | undefined;

function decodeParam(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * The edge's routes, matched in the order they were added: the first route whose path and method
 * match wins. A GET route answers HEAD too. A path without parameters that no earlier route shadows
 * is found in one map lookup when the request spells it exactly as declared.
 */
export class RouteTable<H> {
  private readonly entries: RouteEntry<H>[] = [];
  private exact?: Map<string, RouteEntry<H>>;

  get size(): number {
    return this.entries.length;
  }

  add(method: string, path: string, handler: H): void {
    const upper = method.toUpperCase();
    const { regexp, keys } = pathToRegexp(path, { sensitive: false, end: true, trailing: true });
    this.entries.push({ path, methods: upper === 'GET' ? ['HEAD', 'GET'] : [upper], regexp, paramNames: keys.map((k) => k.name), handler });
    this.exact = undefined;
  }

  match(method: string, path: string): RouteMatch<H> {
    const exact = (this.exact ??= this.exactPaths()).get(`${method} ${path}`);
    if (exact) return { handler: exact.handler, route: exact.path, params: {} };
    let allowed: Set<string> | undefined;
    for (const entry of this.entries) {
      const captures = entry.regexp.exec(path);
      if (!captures) continue;
      if (!entry.methods.includes(method)) {
        for (const m of entry.methods) (allowed ??= new Set()).add(m);
        continue;
      }
      const params: Record<string, string> = {};
      for (let i = 1; i < captures.length; i++) {
        const value = captures[i];
        if (value) params[entry.paramNames[i - 1]!] = decodeParam(value);
      }
      return { handler: entry.handler, route: entry.path, params };
    }
    return allowed ? { allowed: [...allowed] } : undefined;
  }

  /** Paths without parameters, by method and path, where no earlier route also matches the path. */
  private exactPaths(): Map<string, RouteEntry<H>> {
    const exact = new Map<string, RouteEntry<H>>();
    this.entries.forEach((entry, i) => {
      if (entry.paramNames.length > 0 || /[:*{}()?+\\]/.test(entry.path)) return;
      if (this.entries.slice(0, i).some((earlier) => earlier.regexp.test(entry.path))) return;
      for (const method of entry.methods) {
        const key = `${method} ${entry.path}`;
        if (!exact.has(key)) exact.set(key, entry);
      }
    });
    return exact;
  }
}

/** The path and query string of `/path?query#fragment`, as sent: no dot segment resolved, no character decoded. */
function splitTarget(target: string): { path: string; search: string } {
  const hash = target.indexOf('#');
  if (hash >= 0) target = target.slice(0, hash);
  const q = target.indexOf('?');
  return q < 0 ? { path: target, search: '' } : { path: target.slice(0, q), search: target.slice(q + 1) };
}

/**
 * The request target's path and query string, as sent. The absolute form (`http://host/path`) is
 * checked as a URL and its path taken as written, so `/x/%2e%2e/y` stays what a proxy in front saw;
 * `*` (`OPTIONS *`) is a path no route has. Undefined for a target that is not a URL (`http://[::1`).
 */
export function requestTarget(url: string): { path: string; search: string } | undefined {
  if (url.charCodeAt(0) === 0x2f) return splitTarget(url);
  if (url === '*') return { path: '*', search: '' };
  if (!URL.canParse(url)) return undefined;
  // The path begins at the first `/`, `?` or `#` after `scheme://authority`.
  const authority = url.indexOf('//');
  const start = authority < 0 ? -1 : url.slice(authority + 2).search(/[/?#]/);
  if (start < 0) return { path: '/', search: '' };
  const rest = url.slice(authority + 2 + start);
  return splitTarget(rest.charCodeAt(0) === 0x2f ? rest : `/${rest}`);
}
