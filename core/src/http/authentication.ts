import { AionError, ErrorCodes, type ErrorPayload, type Principal, type RouteContribution } from '@aion/extension-api';
import type { ActivationService } from '../activation/activationService.js';
import type { HookRegistry } from '../hooks/hookRegistry.js';
import type { HooksChannel } from '../hooks/hooksChannel.js';

/** What a `http.authenticate` tap answers; `headers` (e.g. RateLimit-*) are added to the response. */
export type AuthResult =
  | { principal?: Principal; headers?: Record<string, string>; error?: ErrorPayload & { status?: number; headers?: Record<string, string> } }
  | undefined;

/** What `http.authenticate` is given; `ip` is the client as `server.trustedProxies` resolves it. */
export interface AuthenticationRequest {
  headers: Record<string, unknown>;
  method: string;
  path: string;
  ip: string;
}

/** The scope (besides `*`) that lets a principal read the kernel's internals: `/v1/extensions`, `/healthz` details. */
export const EXTENSIONS_READ_SCOPE = 'extensions:read';

export function isAdmin(principal: Principal | undefined): boolean {
  return !!principal && (principal.scopes.includes('*') || principal.scopes.includes(EXTENSIONS_READ_SCOPE));
}

export function carriesCredentials(headers: Record<string, unknown>): boolean {
  return headers.authorization !== undefined || headers['x-api-key'] !== undefined;
}

/** `http.authenticate` as the edge uses it: for routes, WebSocket upgrades, socket.io handshakes and the kernel's own routes. */
export class EdgeAuthentication {
  constructor(private readonly deps: { hookCalls: HooksChannel; hooks: HookRegistry; activation: ActivationService }) {}

  /** Whether any extension answers `http.authenticate`, tapped already or activating on it. */
  get installed(): boolean {
    return this.deps.hooks.tapCount('http.authenticate') > 0 || this.deps.activation.extensionsFor('onHook:http.authenticate').length > 0;
  }

  authenticate(request: AuthenticationRequest): Promise<AuthResult> {
    return this.deps.hookCalls.call('http.authenticate', request).then((answer) => (answer ?? undefined) as AuthResult);
  }

  /** `http.authenticate`, then the route's declared auth mode and scopes. Throws the error to send. */
  async authorize(
    route: Pick<RouteContribution, 'method' | 'path' | 'auth' | 'scopes'>,
    request: AuthenticationRequest,
    setHeader: (k: string, v: string) => void,
  ): Promise<Principal | undefined> {
    const mode = route.auth ?? (route.scopes?.length ? 'required' : 'optional');
    if (mode === 'none') return undefined;
    const auth = await this.authenticate(request);
    for (const [k, v] of Object.entries(auth?.headers ?? {})) setHeader(k, v);
    if (auth?.error)
      throw new AionError(auth.error.code, auth.error.message, { status: auth.error.status ?? 401, headers: auth.error.headers, details: auth.error.details });
    const principal = auth?.principal;
    if (!principal && mode === 'required') {
      const how = this.installed ? 'send Authorization: Bearer <token> or X-API-Key' : 'no authentication extension is installed, so this route cannot be used';
      throw new AionError(ErrorCodes.UNAUTHENTICATED, `${route.method} ${route.path} requires authentication: ${how}`);
    }
    const missing = (route.scopes ?? []).filter((s) => !principal?.scopes.includes(s) && !principal?.scopes.includes('*'));
    if (principal && missing.length > 0) {
      throw new AionError(ErrorCodes.FORBIDDEN, `this route requires the scope${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`, {
        details: { missingScopes: missing },
      });
    }
    return principal;
  }
}
