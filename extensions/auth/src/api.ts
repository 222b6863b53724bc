/**
 * Types of `aion.auth` for other extensions (`import type`). Auth has no API object: other extensions
 * meet it through `request.principal`, which the kernel fills from auth's `http.authenticate` answer.
 */
import type { Principal } from '@aion/extension-api';

/** The principal auth gives the kernel. Resources belong to `owner`: the user a device or API key acts for. */
export interface AionPrincipal extends Principal {
  type: 'user' | 'device' | 'service';
  /** The user this principal acts for (for a user, itself). */
  owner: string;
  /** The refresh-token family of a signed-in user or device. */
  fam?: string;
  /** Set for API keys (`type: 'service'`). */
  key_id?: string;
}

/** The user a principal acts for. */
export function ownerOf(principal: Principal): string {
  return typeof principal.owner === 'string' ? principal.owner : principal.sub;
}

/** `auth.createUser` (run by `aion users create`). Without a password one is generated and returned once. */
export interface CreateUserInput {
  username: string;
  password?: string;
  scopes?: string[];
  admin?: boolean;
}

export interface CreateUserResult {
  user: { id: string; username: string; scopes: string[]; disabled: boolean; tenant_id: string; created_at: number };
  password?: string;
}

/** Error codes auth adds to the common ones. */
export const AuthErrorCodes = {
  /** 401: an expired access token, refresh token or API key. */
  TOKEN_EXPIRED: 'TOKEN_EXPIRED',
  /** 401: a valid access token of a sign-in that ended (logout, refresh-token reuse, revoked device, password change). */
  TOKEN_REVOKED: 'TOKEN_REVOKED',
  /** 401: a rotated refresh token presented again; its whole sign-in is revoked. */
  REFRESH_TOKEN_REUSED: 'REFRESH_TOKEN_REUSED',
  /** 403: a user, device or API key would get scopes its creator does not hold (`details.scopes`). */
  SCOPE_NOT_GRANTABLE: 'SCOPE_NOT_GRANTABLE',
  /** 403: an API key or a device tried to create a user holding `*` or `users:write` (`details.scopes`). */
  INTERACTIVE_SIGN_IN_REQUIRED: 'INTERACTIVE_SIGN_IN_REQUIRED',
} as const;
