import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { AionError, ErrorCodes, type HttpResponseData } from '@aion/extension-api';

/** The viewer's files this extension serves, by name, with their content types; nothing else is readable. */
const ASSETS: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'index.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'swagger-ui-standalone-preset.js': 'text/javascript; charset=utf-8',
};

const INITIALIZER = `window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: '/v1/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: 'StandaloneLayout',
  });
};
`;

const securityHeaders = {
  'cache-control': 'public, max-age=3600',
  'x-content-type-options': 'nosniff',
  // Everything comes from this server: no CDN, no inline script.
  'content-security-policy':
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
};

/** `/docs`: the Swagger UI viewer from the `swagger-ui-dist` package, served from this server, reading `/v1/openapi.json`. */
export class DocsSite {
  private readonly root = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
  private readonly cache = new Map<string, string>();

  index(): HttpResponseData {
    const html = this.read('index.html')
      .replace(/(href|src)="(\.\/)?([A-Za-z0-9.-]+\.(css|js))"/g, '$1="/docs/$3"')
      .replace(/<link rel="icon"[^>]*>\s*/g, '')
      .replace('<title>Swagger UI</title>', '<title>Aion API</title>');
    return { status: 200, headers: { ...securityHeaders, 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' }, body: html };
  }

  asset(file: string): HttpResponseData {
    if (file === 'swagger-initializer.js')
      return { status: 200, headers: { ...securityHeaders, 'content-type': 'text/javascript; charset=utf-8' }, body: INITIALIZER };
    const type = ASSETS[file];
    if (!type) throw new AionError(ErrorCodes.NOT_FOUND, `/docs/${file} is not part of the API viewer`);
    return { status: 200, headers: { ...securityHeaders, 'content-type': type }, body: this.read(file) };
  }

  private read(file: string): string {
    let text = this.cache.get(file);
    if (text === undefined) this.cache.set(file, (text = readFileSync(join(this.root, file), 'utf8')));
    return text;
  }
}
