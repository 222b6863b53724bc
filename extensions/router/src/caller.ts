import { AionError, ErrorCodes, type Principal } from '@aion/extension-api';

/** Who a request is from, as far as tasks and usage are concerned. */
export interface Caller {
  sub: string;
  tenant: string;
  /** The user the request acts for: a device's or an API key's owner, else the subject. Models with an owner serve only it. */
  user: string;
  /** Usage is counted per API key: the principal's `api_key_id` when it has one, else its subject. */
  apiKey: string;
  admin: boolean;
  /** The authenticated principal, kept in memory for the request's lifetime: skills run as it. */
  principal?: Principal;
}

export const ANONYMOUS: Caller = { sub: 'anonymous', tenant: 'default', user: 'anonymous', apiKey: 'anonymous', admin: false };

export function callerOf(principal: Principal | undefined): Caller {
  if (!principal) return ANONYMOUS;
  const keyId = principal.api_key_id ?? principal.apiKeyId ?? principal.key_id;
  return {
    sub: principal.sub,
    tenant: principal.tenant_id ?? 'default',
    user: String(principal.owner ?? principal.sub),
    apiKey: typeof keyId === 'string' && keyId ? keyId : principal.sub,
    admin: principal.scopes.includes('router:admin') || principal.scopes.includes('*'),
    principal,
  };
}

export function requireCaller(principal: Principal | undefined): Caller {
  if (!principal) throw new AionError(ErrorCodes.UNAUTHENTICATED, 'this route requires an authenticated caller');
  return callerOf(principal);
}
