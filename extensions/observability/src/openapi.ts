import type { RouteContribution } from '@aion/extension-api';

export interface ListedRoute {
  extensionId: string;
  route: RouteContribution;
}

const errorBody = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string', description: 'A stable error code, e.g. UNAUTHENTICATED.' }, message: { type: 'string' }, details: {} },
    },
  },
};

const errorResponse = (description: string) => ({ description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } });

/** `/v1/sessions/:id` → `/v1/sessions/{id}`, with the parameter names. */
export function openApiPath(path: string): { path: string; params: string[] } {
  const params: string[] = [];
  const converted = path.replace(/:([A-Za-z0-9_]+)(\([^)]*\))?\??/g, (_m, name: string) => {
    params.push(name);
    return `{${name}}`;
  });
  return { path: converted, params };
}

function operationId(method: string, path: string): string {
  const words = path
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((w, i) => (i === 0 ? w : w[0]!.toUpperCase() + w.slice(1)));
  return `${method.toLowerCase()}${words.map((w) => w[0]!.toUpperCase() + w.slice(1)).join('')}`;
}

/**
 * The OpenAPI 3.1 document of every route served: method, path, the scopes a caller needs (with the
 * security schemes that carry them) and the request and response schemas routes declare.
 */
export function buildOpenApi(routes: ListedRoute[], info: { title: string; version: string; serverUrl?: string }): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const tags = new Set<string>();
  for (const { extensionId, route } of routes) {
    const { path, params } = openApiPath(route.path);
    const method = route.method.toLowerCase();
    const auth = route.auth ?? (route.scopes?.length ? 'required' : 'optional');
    const scopes = route.scopes ?? [];
    tags.add(extensionId);
    const ok: Record<string, unknown> = {
      description: route.websocket
        ? 'Never answered: this is a WebSocket endpoint (426 without an upgrade).'
        : route.stream
          ? 'A server-sent-event stream.'
          : 'Success.',
    };
    if (route.stream) ok.content = { 'text/event-stream': { schema: { type: 'string' } } };
    else if (route.responseSchema) ok.content = { 'application/json': { schema: route.responseSchema } };
    const responses: Record<string, unknown> = { [route.websocket ? '101' : '200']: ok, default: errorResponse('An error, with a stable code.') };
    if (auth === 'required') responses['401'] = errorResponse('No valid credentials (UNAUTHENTICATED).');
    if (scopes.length > 0) responses['403'] = errorResponse(`The credentials lack a scope (FORBIDDEN): ${scopes.join(', ')}.`);
    const operation: Record<string, unknown> = {
      operationId: operationId(route.method, route.path),
      summary: route.description ?? `${route.method} ${route.path}`,
      tags: [extensionId],
      responses,
      'x-aion-extension': extensionId,
      'x-aion-auth': auth,
      'x-aion-scopes': scopes,
    };
    if (route.stream) operation['x-aion-stream'] = true;
    if (route.websocket) operation['x-aion-websocket'] = true;
    if (params.length > 0) operation.parameters = params.map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' } }));
    if (auth === 'required') operation.security = [{ bearer: scopes }, { apiKey: scopes }];
    else if (auth === 'optional') operation.security = [{ bearer: scopes }, { apiKey: scopes }, {}];
    else operation.security = [];
    if (route.requestSchema) operation.requestBody = { required: true, content: { 'application/json': { schema: route.requestSchema } } };
    (paths[path] ??= {})[method] = operation;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: info.title,
      version: info.version,
      description:
        'Every route the installed extensions contribute, with the scopes each requires. Errors share one shape: { "error": { "code", "message", "details" } }.',
    },
    jsonSchemaDialect: 'https://spec.openapis.org/oas/3.1/dialect/base',
    ...(info.serverUrl ? { servers: [{ url: info.serverUrl }] } : {}),
    tags: [...tags].sort().map((name) => ({ name })),
    paths,
    components: {
      schemas: { Error: errorBody },
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: 'A user or device token from POST /v1/auth/login; also accepts an API key.',
        },
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'An API key from POST /v1/api-keys.' },
      },
    },
  };
}
