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

/** Error codes auth adds to the common ones (both answer 401). */
export const AuthErrorCodes = {
  TOKEN_EXPIRED: 'TOKEN_EXPIRED',
  REFRESH_TOKEN_REUSED: 'REFRESH_TOKEN_REUSED',
} as const;
