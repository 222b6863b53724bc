import { createHmac, timingSafeEqual } from 'node:crypto';
import { PREVIEW_PLATFORMS, PreviewErrorCodes, type PreviewPlatform } from './api.js';
import { previewError } from './errors.js';

/** What a preview token says. Stateless: nothing is stored, the HMAC is the proof. */
export interface PreviewClaims {
  project_id: string;
  user_id: string;
  tenant_id: string;
  platform: PreviewPlatform;
  /** Seconds since the epoch. */
  issued: number;
  expiry: number;
  token_version: number;
}

const PREFIX = 'pv1';

/**
 * `pv1.<base64url(JSON claims)>.<base64url(HMAC-SHA256(secret, "pv1.<claims>"))>`.
 * Raising `token_version` in the configuration invalidates every token issued before.
 */
export class PreviewTokens {
  constructor(
    private readonly secret: Buffer,
    private readonly options: { ttlSeconds: () => number; tokenVersion: () => number; now?: () => number },
  ) {
    if (secret.length < 32) throw new Error('the preview secret must be at least 32 bytes');
  }

  private now(): number {
    return Math.floor((this.options.now?.() ?? Date.now()) / 1000);
  }

  private mac(body: string): Buffer {
    return createHmac('sha256', this.secret).update(`${PREFIX}.${body}`).digest();
  }

  issue(input: { project_id: string; user_id: string; tenant_id: string; platform: PreviewPlatform }): { token: string; claims: PreviewClaims } {
    const issued = this.now();
    const claims: PreviewClaims = { ...input, issued, expiry: issued + this.options.ttlSeconds(), token_version: this.options.tokenVersion() };
    const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return { token: `${PREFIX}.${body}.${this.mac(body).toString('base64url')}`, claims };
  }

  /** The claims of a genuine, unexpired token of the current version; 401 with a stable code otherwise. */
  verify(token: unknown, expect: { platform?: string } = {}): PreviewClaims {
    const invalid = (why: string) =>
      previewError(PreviewErrorCodes.PREVIEW_TOKEN_INVALID, `the preview token is not valid (${why}); ask POST /v1/preview/token for a new one`);
    if (typeof token !== 'string' || token.length > 4096) throw invalid('not a token');
    const parts = token.split('.');
    if (parts.length !== 3 || parts[0] !== PREFIX) throw invalid('malformed');
    const [, body, signature] = parts as [string, string, string];
    const expected = this.mac(body);
    const given = Buffer.from(signature, 'base64url');
    // Equal lengths first (the length of an HMAC is public), then a constant-time comparison.
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid('bad signature');
    let claims: PreviewClaims;
    try {
      claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as PreviewClaims;
    } catch {
      throw invalid('malformed claims');
    }
    if (claims.token_version !== this.options.tokenVersion()) throw invalid('revoked: the token version changed');
    if (!(claims.expiry > this.now()))
      throw previewError(
        PreviewErrorCodes.PREVIEW_TOKEN_EXPIRED,
        `the preview token expired at ${new Date(claims.expiry * 1000).toISOString()}; ask POST /v1/preview/token for a new one`,
      );
    if (!PREVIEW_PLATFORMS.includes(claims.platform)) throw invalid('unknown platform');
    if (expect.platform !== undefined && expect.platform !== claims.platform) {
      throw previewError(
        PreviewErrorCodes.PREVIEW_TOKEN_WRONG_PLATFORM,
        `the preview token is for ${claims.platform}, not ${expect.platform}; ask for a token for ${expect.platform}`,
      );
    }
    return claims;
  }
}
