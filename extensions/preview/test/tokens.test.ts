import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { isAionError } from '@aion/extension-api';
import { PreviewTokens } from '../src/tokens.js';

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    assert.ok(isAionError(err));
    assert.equal(err.status, 401);
    return err.code;
  }
  return 'accepted';
};

describe('preview tokens', () => {
  let now = 1_800_000_000_000;
  let version = 1;
  const secret = randomBytes(32);
  const tokens = new PreviewTokens(secret, { ttlSeconds: () => 300, tokenVersion: () => version, now: () => now });
  const claims = { project_id: 'p1', user_id: 'alice', tenant_id: 'default', platform: 'ios' as const };

  beforeEach(() => {
    now = 1_800_000_000_000;
    version = 1;
  });

  it('carries project, user, platform, issued, expiry (300 s) and token version, signed with HMAC-SHA256', () => {
    const { token } = tokens.issue(claims);
    const verified = tokens.verify(token, { platform: 'ios' });
    assert.deepEqual(verified, { ...claims, issued: 1_800_000_000, expiry: 1_800_000_300, token_version: 1 });
    assert.match(token, /^pv1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
  });

  it('refuses an expired token with PREVIEW_TOKEN_EXPIRED', () => {
    const { token } = tokens.issue(claims);
    now += 299_000;
    assert.equal(
      code(() => tokens.verify(token)),
      'accepted',
    );
    now += 1_000;
    assert.equal(
      code(() => tokens.verify(token)),
      'PREVIEW_TOKEN_EXPIRED',
    );
  });

  it('refuses tampered claims, signatures, other secrets and garbage with PREVIEW_TOKEN_INVALID', () => {
    const { token } = tokens.issue(claims);
    const [prefix, body, signature] = token.split('.') as [string, string, string];
    const altered = (change: (c: Record<string, unknown>) => void) => {
      const c = JSON.parse(Buffer.from(body, 'base64url').toString()) as Record<string, unknown>;
      change(c);
      return `${prefix}.${Buffer.from(JSON.stringify(c)).toString('base64url')}.${signature}`;
    };
    const flipped = Buffer.from(signature, 'base64url');
    flipped[0]! ^= 1;
    for (const bad of [
      altered((c) => (c.platform = 'android')),
      altered((c) => (c.expiry = (c.expiry as number) + 86_400)),
      altered((c) => (c.user_id = 'mallory')),
      `${prefix}.${body}.${flipped.toString('base64url')}`,
      `${prefix}.${body}.${signature.slice(0, -4)}`,
      `${prefix}.${body}`,
      `pv2.${body}.${signature}`,
      new PreviewTokens(randomBytes(32), { ttlSeconds: () => 300, tokenVersion: () => 1, now: () => now }).issue(claims).token,
      '',
      'x'.repeat(10_000),
    ]) {
      assert.equal(
        code(() => tokens.verify(bad)),
        'PREVIEW_TOKEN_INVALID',
        bad.slice(0, 80),
      );
    }
    assert.equal(
      code(() => tokens.verify(undefined)),
      'PREVIEW_TOKEN_INVALID',
    );
    assert.equal(
      code(() => tokens.verify({ token })),
      'PREVIEW_TOKEN_INVALID',
    );
  });

  it('refuses a token for another platform with PREVIEW_TOKEN_WRONG_PLATFORM', () => {
    const { token } = tokens.issue(claims);
    assert.equal(
      code(() => tokens.verify(token, { platform: 'android' })),
      'PREVIEW_TOKEN_WRONG_PLATFORM',
    );
  });

  it('revokes every earlier token when the token version is raised', () => {
    const { token } = tokens.issue(claims);
    version = 2;
    assert.equal(
      code(() => tokens.verify(token)),
      'PREVIEW_TOKEN_INVALID',
    );
    assert.equal(
      code(() => tokens.verify(tokens.issue(claims).token)),
      'accepted',
    );
  });

  it('refuses to run with a short secret', () => {
    assert.throws(() => new PreviewTokens(Buffer.alloc(8), { ttlSeconds: () => 300, tokenVersion: () => 1 }), /at least 32 bytes/);
  });
});
