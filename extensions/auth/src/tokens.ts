import { createHash, randomBytes, randomUUID, timingSafeEqual, webcrypto } from 'node:crypto';
import { errors, jwtVerify, SignJWT } from 'jose';
import { AionError, ErrorCodes, type Principal } from '@aion/extension-api';
import { AuthErrorCodes } from './api.js';

export type SubjectType = 'user' | 'device' | 'service';

export { AuthErrorCodes };

/** What a verified access token says. */
export interface AccessClaims {
  sub: string;
  type: SubjectType;
  scopes: string[];
  tenant_id: string;
  /** The user the subject acts for (the user itself, or a device's owner). */
  owner: string;
  /** The refresh-token family the token came from. */
  fam?: string;
}

const AUDIENCE = 'aion';

const VERIFIED_CACHE_SIZE = 10_000;

/**
 * Access tokens: short-lived HS256 JWTs (jose), verified without touching the database. A token
 * verified once is remembered until it expires, so a client's next requests skip the HMAC.
 */
export class AccessTokens {
  private readonly verified = new Map<string, { principal: Principal & AccessClaims; expiresAt: number }>();

  private constructor(
    private readonly key: webcrypto.CryptoKey,
    private readonly issuer: string,
    private readonly ttlSeconds: number,
  ) {}

  /** Imported once as a CryptoKey: jose would otherwise import raw bytes on every call. */
  static async create(secret: Uint8Array, issuer: string, ttlSeconds: number): Promise<AccessTokens> {
    const key = await webcrypto.subtle.importKey('raw', secret, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
    return new AccessTokens(key, issuer, ttlSeconds);
  }

  get expiresIn(): number {
    return this.ttlSeconds;
  }

  async issue(claims: AccessClaims): Promise<string> {
    const { sub, ...rest } = claims;
    return new SignJWT({ ...rest })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(sub)
      .setIssuer(this.issuer)
      .setAudience(AUDIENCE)
      .setIssuedAt()
      .setJti(randomUUID())
      .setExpirationTime(`${this.ttlSeconds}s`)
      .sign(this.key);
  }

  /** The principal a valid token stands for; 401 TOKEN_EXPIRED or UNAUTHENTICATED otherwise. */
  async verify(token: string): Promise<Principal & AccessClaims> {
    const known = this.verified.get(token);
    if (known) {
      if (known.expiresAt > Date.now()) return { ...known.principal, scopes: [...known.principal.scopes] };
      this.verified.delete(token);
      throw new AionError(AuthErrorCodes.TOKEN_EXPIRED, 'the access token has expired: refresh it', { status: 401 });
    }
    try {
      const { payload } = await jwtVerify(token, this.key, { issuer: this.issuer, audience: AUDIENCE, algorithms: ['HS256'], typ: 'JWT' });
      const { sub, type, scopes, tenant_id, owner, fam } = payload as Record<string, unknown>;
      if (
        typeof sub !== 'string' ||
        !['user', 'device', 'service'].includes(type as string) ||
        !Array.isArray(scopes) ||
        typeof tenant_id !== 'string' ||
        typeof owner !== 'string'
      ) {
        throw new AionError(ErrorCodes.UNAUTHENTICATED, 'the access token is missing required claims');
      }
      const principal: Principal & AccessClaims = { sub, type: type as SubjectType, scopes: scopes.map(String), tenant_id, owner };
      if (typeof fam === 'string') principal.fam = fam;
      if (this.verified.size >= VERIFIED_CACHE_SIZE) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(token, { principal, expiresAt: (payload.exp as number) * 1000 });
      return { ...principal, scopes: [...principal.scopes] };
    } catch (err) {
      if (err instanceof AionError) throw err;
      if (err instanceof errors.JWTExpired) throw new AionError(AuthErrorCodes.TOKEN_EXPIRED, 'the access token has expired: refresh it', { status: 401 });
      throw new AionError(ErrorCodes.UNAUTHENTICATED, 'the access token is not valid');
    }
  }
}

export function sha256(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

export function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

/** Refresh tokens are opaque: `aionr_<row id>.<secret>`; only the secret's hash is stored. */
export function newRefreshToken(): { id: string; token: string; hash: string } {
  const id = randomUUID();
  const secret = randomBytes(32).toString('base64url');
  return { id, token: `aionr_${id}.${secret}`, hash: sha256(secret) };
}

export function parseRefreshToken(token: unknown): { id: string; secretHash: string } | undefined {
  if (typeof token !== 'string') return undefined;
  const m = /^aionr_([0-9a-f-]{36})\.([A-Za-z0-9_-]{20,100})$/.exec(token);
  return m ? { id: m[1]!, secretHash: sha256(m[2]!) } : undefined;
}

/** API keys: `aion_<12 hex>_<secret>`; the first part is the visible prefix, the whole key is stored hashed. */
export function newApiKey(): { key: string; prefix: string; hash: string } {
  const prefix = `aion_${randomBytes(6).toString('hex')}`;
  const key = `${prefix}_${randomBytes(32).toString('base64url')}`;
  return { key, prefix, hash: sha256(key) };
}

export function parseApiKey(key: string): { prefix: string; hash: string } | undefined {
  const m = /^(aion_[0-9a-f]{12})_[A-Za-z0-9_-]{20,100}$/.exec(key);
  return m ? { prefix: m[1]!, hash: sha256(key) } : undefined;
}

export function looksLikeApiKey(token: string): boolean {
  return token.startsWith('aion_');
}
