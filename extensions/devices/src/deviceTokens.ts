import { webcrypto } from 'node:crypto';
import { jwtVerify, SignJWT } from 'jose';
import { AionError } from '@aion/extension-api';
import { DeviceErrorCodes } from './contract.js';

/** What a device token says: the device, the user it acts for, its tenant and its (few) scopes. */
export interface DeviceClaims {
  type: 'device';
  /** The device id. */
  sub: string;
  /** The device's normalized name, as routed. */
  name: string;
  user_id: string;
  tenant_id: string;
  scopes: string[];
  /** The token's id: a new token for the same device (re-added) makes older ones useless. */
  jti: string;
}

/** Scopes a device token may carry: exposing skills and models, syncing its own user's sessions. */
export const DEVICE_SCOPES = ['skills:expose', 'models:expose', 'sessions:sync'] as const;
export const DEFAULT_DEVICE_SCOPES = ['skills:expose', 'sessions:sync'];

const ISSUER = 'aion.devices';
const AUDIENCE = 'aion-hub';

/** Device tokens: HS256 JWTs without expiry (a device may stay offline for weeks); revocation ends them. */
export class DeviceTokens {
  private constructor(private readonly key: webcrypto.CryptoKey) {}

  static async create(secret: string): Promise<DeviceTokens> {
    const key = await webcrypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
    return new DeviceTokens(key);
  }

  issue(claims: Omit<DeviceClaims, 'type'>): Promise<string> {
    const { sub, jti, ...rest } = claims;
    return new SignJWT({ ...rest, type: 'device' })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(sub)
      .setJti(jti)
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setIssuedAt()
      .sign(this.key);
  }

  /** The claims of a token this hub (or one sharing its database) signed; DEVICE_TOKEN_INVALID otherwise. */
  async verify(token: string): Promise<DeviceClaims> {
    const invalid = (why: string) =>
      new AionError(DeviceErrorCodes.DEVICE_TOKEN_INVALID, `the device token is not valid: ${why}; create one with "aion devices add <name>"`, { status: 401 });
    let payload: Record<string, unknown>;
    try {
      payload = (await jwtVerify(token, this.key, { issuer: ISSUER, audience: AUDIENCE, algorithms: ['HS256'] })).payload as Record<string, unknown>;
    } catch {
      throw invalid('its signature, issuer or format is wrong');
    }
    const { sub, name, user_id, tenant_id, scopes, jti, type } = payload;
    if (
      type !== 'device' ||
      typeof sub !== 'string' ||
      typeof name !== 'string' ||
      typeof user_id !== 'string' ||
      typeof tenant_id !== 'string' ||
      typeof jti !== 'string' ||
      !Array.isArray(scopes)
    )
      throw invalid('claims are missing');
    return { type: 'device', sub, name, user_id, tenant_id, scopes: scopes.map(String), jti };
  }
}
