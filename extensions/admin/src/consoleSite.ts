import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { AionError, ErrorCodes, type HttpResponseData } from '@aion/extension-api';

/** The content types the console is built from; a file with another extension is never served. */
const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** Everything the page loads comes from this server; no inline script or style, no framing. */
export const CONSOLE_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  // Revalidated on every load (an ETag answers 304), so a rebuilt console is never half old.
  'cache-control': 'no-cache',
};

/** The stable code of a console that `npm run build` has not built yet. */
export const CONSOLE_NOT_BUILT = 'CONSOLE_NOT_BUILT';

interface Asset {
  body: string;
  type: string;
  etag: string;
}

/**
 * The console's built files, served from one folder: the names are read once at start, so a request
 * can only name one of them (`..`, slashes, encoded or not, match nothing).
 */
export class ConsoleSite {
  private readonly assets = new Map<string, Asset>();

  constructor(private readonly folder: string) {
    if (!existsSync(folder)) return;
    for (const name of readdirSync(folder)) {
      const type = CONTENT_TYPES[extname(name)];
      const path = join(folder, name);
      if (!type || !statSync(path).isFile()) continue;
      const body = readFileSync(path, 'utf8');
      this.assets.set(name, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` });
    }
  }

  get built(): boolean {
    return this.assets.has('index.html');
  }

  index(ifNoneMatch?: string): HttpResponseData {
    return this.serve('index.html', ifNoneMatch);
  }

  asset(file: string, ifNoneMatch?: string): HttpResponseData {
    if (file === 'index.html') throw new AionError(ErrorCodes.NOT_FOUND, 'the console is served at /admin');
    return this.serve(file, ifNoneMatch);
  }

  private serve(file: string, ifNoneMatch?: string): HttpResponseData {
    if (!this.built) {
      const error = { code: CONSOLE_NOT_BUILT, message: `the admin console has not been built: run "npm run build" (it writes ${this.folder})` };
      return { status: 503, headers: { 'cache-control': 'no-store' }, body: { error } };
    }
    const asset = this.assets.get(file);
    if (!asset) throw new AionError(ErrorCodes.NOT_FOUND, `/admin/${file} is not part of the admin console`);
    const headers = { ...CONSOLE_SECURITY_HEADERS, etag: asset.etag };
    if (ifNoneMatch === asset.etag) return { status: 304, headers };
    return { status: 200, headers: { ...headers, 'content-type': asset.type }, body: asset.body };
  }
}
