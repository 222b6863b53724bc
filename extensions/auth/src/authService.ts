import { randomUUID } from 'node:crypto';
import { AionError, ErrorCodes, type ErrorPayload, type Logger, type Principal } from '@aion/extension-api';
import { type ApiKeyRow, type AuthStore, type DeviceRow, type UserRow } from './authStore.js';
import type { AuthConfiguration } from './config.js';
import { decoyHash, generatePassword, hashPassword, verifyPassword } from './passwords.js';
import { rateLimitHeaders, retryAfterSeconds, type BucketDecision, type RateLimiter } from './rateLimits.js';
import type { Revocations } from './revocations.js';
import {
  AccessTokens,
  AuthErrorCodes,
  looksLikeApiKey,
  type AccessClaims,
  newApiKey,
  newRefreshToken,
  parseApiKey,
  parseRefreshToken,
  sameHash,
  type SubjectType,
} from './tokens.js';

/** Every row and token names a tenant; there is one until multi-tenancy arrives. */
export const DEFAULT_TENANT = 'default';

/** What the kernel's `http.authenticate` hook expects back. */
export type AuthResult =
  | { principal?: Principal; headers?: Record<string, string>; error?: ErrorPayload & { status?: number; headers?: Record<string, string> } }
  | undefined;

export interface AuthenticatePayload {
  headers?: Record<string, string | string[] | undefined>;
  method?: string;
  path?: string;
  ip?: string;
}

export interface TokenPair {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  refresh_token: string;
  refresh_expires_in: number;
  scope: string;
}

interface Subject {
  type: SubjectType;
  id: string;
  owner: string;
  scopes: string[];
}

const USERNAME = /^[a-z0-9][a-z0-9._@-]{0,127}$/;
const SCOPE = /^(\*|[a-z][a-z0-9._-]*(:[a-z0-9._*-]+)*)$/;
const API_KEY_TOUCH_MS = 60_000;
// Bounds the verified-key cache's memory; past it the oldest entry goes (keys are few, callers many).
const API_KEY_CACHE_MAX = 10_000;

type ApiKeyWithOwner = ApiKeyRow & { owner_disabled: number };

function header(headers: AuthenticatePayload['headers'], name: string): string | undefined {
  const value = headers?.[name];
  return Array.isArray(value) ? value[0] : value;
}

export function validScopes(value: unknown, what: string): string[] {
  if (!Array.isArray(value) || value.some((s) => typeof s !== 'string' || !SCOPE.test(s))) {
    throw new AionError(ErrorCodes.VALIDATION_FAILED, `${what} is a list of scopes such as "sessions:read"`);
  }
  return [...new Set(value as string[])];
}

/** Scopes that let their holder create users, so creating a holder of one creates an administrator. */
const ADMIN_SCOPES = ['*', 'users:write'];

/** Scopes a holder can hand on: only its own, or any when it holds `*`. */
function assertGrantable(holder: string[], requested: string[]): void {
  if (holder.includes('*')) return;
  const extra = requested.filter((s) => !holder.includes(s));
  if (extra.length > 0) {
    throw new AionError(AuthErrorCodes.SCOPE_NOT_GRANTABLE, `you cannot grant scopes you do not hold: ${extra.join(', ')}`, {
      status: 403,
      details: { scopes: extra },
    });
  }
}

/** The scopes held under both lists (`*` holds everything). */
function commonScopes(a: string[], b: string[]): string[] {
  if (a.includes('*')) return b;
  if (b.includes('*')) return a;
  return a.filter((s) => b.includes(s));
}

export function userView(u: UserRow) {
  return { id: u.id, username: u.username, scopes: u.scopes, disabled: u.disabled, tenant_id: u.tenant_id, created_at: u.created_at };
}

export function deviceView(d: DeviceRow) {
  return { id: d.id, name: d.name, scopes: d.scopes, created_at: d.created_at, last_seen_at: d.last_seen_at };
}

export function apiKeyView(k: ApiKeyRow) {
  return { id: k.id, name: k.name, prefix: k.prefix, scopes: k.scopes, created_at: k.created_at, expires_at: k.expires_at, last_used_at: k.last_used_at };
}

/** Users, devices, API keys and tokens; the answer to `http.authenticate`. */
export class AuthService {
  private readonly keyTouchedAt = new Map<string, number>();
  /** API key rows by prefix, read from the database at `readAt`: the hot path skips the query while fresh. */
  private readonly keyCache = new Map<string, { row: ApiKeyWithOwner; readAt: number }>();
  private lastStoreWarning = 0;

  constructor(
    private readonly store: AuthStore,
    private readonly tokens: AccessTokens,
    private readonly limiter: RateLimiter | undefined,
    private readonly revocations: Revocations,
    private readonly config: AuthConfiguration,
    private readonly logger: Logger,
  ) {}

  /** Rate limiter store failures are logged at most every 30 s; the limiter falls back to memory. */
  warnStore(err: unknown): void {
    if (Date.now() - this.lastStoreWarning < 30_000) return;
    this.lastStoreWarning = Date.now();
    this.logger.warn(`the shared rate-limit store failed; this instance limits from its own memory until it answers: ${(err as Error)?.message ?? err}`);
  }

  // http.authenticate

  async authenticate(payload: AuthenticatePayload): Promise<AuthResult> {
    const ip = payload.ip ?? 'unknown';
    const apiKeyHeader = header(payload.headers, 'x-api-key')?.trim();
    const authorization = header(payload.headers, 'authorization')?.trim();
    if (!apiKeyHeader && !authorization) return this.anonymous(ip);
    let credential = apiKeyHeader;
    let kind: 'key' | 'jwt' = 'key';
    if (!credential) {
      const bearer = /^Bearer\s+(\S+)$/i.exec(authorization!);
      if (!bearer) return this.reject(ip, ErrorCodes.UNAUTHENTICATED, 'the Authorization header must be "Bearer <access token or API key>"');
      credential = bearer[1]!;
      kind = looksLikeApiKey(credential) ? 'key' : 'jwt';
    }
    if (kind === 'key') return this.withApiKey(credential, ip);
    let principal: Principal & AccessClaims;
    try {
      principal = await this.tokens.verify(credential);
    } catch (err) {
      const e = err as AionError;
      return this.reject(ip, e.code, e.message);
    }
    if (this.revocations.rejects(principal))
      return this.reject(
        ip,
        AuthErrorCodes.TOKEN_REVOKED,
        'this sign-in has ended (logout, a revoked device or refresh token, or a password change): sign in again',
      );
    const decision = this.limiter ? await this.limiter.forPrincipal(principal.sub) : undefined;
    if (decision && !decision.allowed) return this.rateLimited(decision, `too many requests from this ${principal.type}`);
    return { principal, headers: decision ? rateLimitHeaders(decision) : undefined };
  }

  private async anonymous(ip: string): Promise<AuthResult> {
    if (!this.limiter) return undefined;
    const decision = await this.limiter.forIp(ip);
    if (!decision.allowed) return this.rateLimited(decision, `too many requests from ${ip}`);
    return { headers: rateLimitHeaders(decision) };
  }

  /** Bad credentials count against the IP's bucket, so guessing is throttled too. */
  private async reject(ip: string, code: string, message: string): Promise<AuthResult> {
    const decision = this.limiter ? await this.limiter.forIp(ip) : undefined;
    if (decision && !decision.allowed) return this.rateLimited(decision, `too many requests from ${ip}`);
    const error = code === AuthErrorCodes.TOKEN_EXPIRED ? 'invalid_token", error_description="expired' : 'invalid_token';
    return {
      error: {
        code,
        message,
        status: 401,
        headers: { 'WWW-Authenticate': `Bearer realm="aion", error="${error}"`, ...(decision ? rateLimitHeaders(decision) : {}) },
      },
    };
  }

  private rateLimited(decision: BucketDecision, message: string): AuthResult {
    const retryAfter = retryAfterSeconds(decision.retryAfterMs);
    return {
      error: {
        code: ErrorCodes.RATE_LIMITED,
        message: `${message}: retry in ${retryAfter} s`,
        status: 429,
        headers: { 'Retry-After': retryAfter, ...rateLimitHeaders(decision) },
        details: { retryAfterSeconds: Number(retryAfter) },
      },
    };
  }

  private async withApiKey(key: string, ip: string): Promise<AuthResult> {
    const parsed = parseApiKey(key);
    const now = Date.now();
    const row = parsed ? await this.apiKeyRow(parsed.prefix, now) : undefined;
    if (!parsed || !row || !sameHash(row.key_hash, parsed.hash)) return this.reject(ip, ErrorCodes.UNAUTHENTICATED, 'the API key is not valid');
    // A key revoked here or announced by another instance is refused even while its row is cached.
    if (row.revoked_at !== null || this.revocations.rejects({ sub: row.id })) return this.reject(ip, ErrorCodes.UNAUTHENTICATED, 'the API key was revoked');
    if (row.expires_at !== null && row.expires_at <= now) return this.reject(ip, AuthErrorCodes.TOKEN_EXPIRED, 'the API key has expired');
    if (row.owner_disabled) return this.reject(ip, ErrorCodes.UNAUTHENTICATED, 'the owner of this API key is disabled');
    const decision = this.limiter ? await this.limiter.forApiKey(row.id) : undefined;
    if (decision && !decision.allowed) return this.rateLimited(decision, `too many requests with API key ${row.prefix}`);
    if (now - (this.keyTouchedAt.get(row.id) ?? 0) > API_KEY_TOUCH_MS) {
      this.keyTouchedAt.set(row.id, now);
      this.store.touchApiKey(row.id).catch(() => undefined);
    }
    const principal: Principal = { sub: row.id, type: 'service', scopes: row.scopes, tenant_id: row.tenant_id, owner: row.owner_id, key_id: row.id };
    return { principal, headers: decision ? rateLimitHeaders(decision) : undefined };
  }

  /** The key's row, from memory while it was read less than `apiKeyCacheSeconds` ago; only keys that exist are kept. */
  private async apiKeyRow(prefix: string, now: number): Promise<ApiKeyWithOwner | undefined> {
    const ttlMs = this.config.apiKeyCacheSeconds * 1000;
    const cached = this.keyCache.get(prefix);
    if (cached && now - cached.readAt < ttlMs) return cached.row;
    const row = await this.store.findApiKeyByPrefix(prefix);
    this.keyCache.delete(prefix);
    if (row && ttlMs > 0) {
      if (this.keyCache.size >= API_KEY_CACHE_MAX) this.keyCache.delete(this.keyCache.keys().next().value!);
      this.keyCache.set(prefix, { row, readAt: now });
    }
    return row;
  }

  // Tokens

  private async issue(subject: Subject, tenantId: string, familyId = randomUUID()): Promise<TokenPair> {
    const refresh = newRefreshToken();
    const now = Date.now();
    await this.store.insertRefresh({
      id: refresh.id,
      family_id: familyId,
      tenant_id: tenantId,
      subject_type: subject.type,
      subject_id: subject.id,
      owner_id: subject.owner,
      scopes: subject.scopes,
      token_hash: refresh.hash,
      created_at: now,
      expires_at: now + this.config.refreshTokenTtlSeconds * 1000,
    });
    return this.pair(subject, tenantId, familyId, refresh.token);
  }

  private async pair(subject: Subject, tenantId: string, familyId: string, refreshToken: string): Promise<TokenPair> {
    const access = await this.tokens.issue({
      sub: subject.id,
      type: subject.type,
      scopes: subject.scopes,
      tenant_id: tenantId,
      owner: subject.owner,
      fam: familyId,
    });
    return {
      access_token: access,
      token_type: 'Bearer',
      expires_in: this.tokens.expiresIn,
      refresh_token: refreshToken,
      refresh_expires_in: this.config.refreshTokenTtlSeconds,
      scope: subject.scopes.join(' '),
    };
  }

  async login(body: unknown, ip: string): Promise<TokenPair> {
    const { username: rawName, password } = (body ?? {}) as { username?: unknown; password?: unknown };
    if (typeof rawName !== 'string' || typeof password !== 'string')
      throw new AionError(ErrorCodes.VALIDATION_FAILED, 'send { "username": "…", "password": "…" }');
    const username = rawName.trim().toLowerCase();
    const account = `${DEFAULT_TENANT}:${username}`;
    if (this.limiter) {
      const waitMs = await this.limiter.loginBlockedFor(account, ip);
      if (waitMs > 0) {
        await this.store.audit({ tenant_id: DEFAULT_TENANT, event: 'login_throttled', subject: username, ip });
        const retryAfter = retryAfterSeconds(waitMs);
        throw new AionError(ErrorCodes.RATE_LIMITED, `too many failed logins for this account or address: retry in ${retryAfter} s`, {
          headers: { 'Retry-After': retryAfter },
          details: { retryAfterSeconds: Number(retryAfter) },
        });
      }
    }
    const user = await this.store.findUserByName(DEFAULT_TENANT, username);
    const valid = user
      ? await verifyPassword(password, user.password_hash)
      : await verifyPassword(password, await decoyHash(this.config.scryptCost)).then(() => false);
    if (!user || !valid || user.disabled) {
      await this.limiter?.loginFailed(account, ip);
      await this.store.audit({
        tenant_id: DEFAULT_TENANT,
        event: 'login_failed',
        subject: username,
        ip,
        details: { reason: !user ? 'unknown_user' : !valid ? 'wrong_password' : 'disabled' },
      });
      throw new AionError(ErrorCodes.UNAUTHENTICATED, 'wrong username or password');
    }
    await this.limiter?.loginSucceeded(account);
    await this.store.audit({ tenant_id: user.tenant_id, event: 'login_succeeded', actor: user.id, subject: user.id, ip });
    return this.issue({ type: 'user', id: user.id, owner: user.id, scopes: user.scopes }, user.tenant_id);
  }

  /** Rotates a refresh token. A token presented a second time revokes its whole family. */
  async refresh(body: unknown, ip: string): Promise<TokenPair> {
    const parsed = parseRefreshToken((body as { refresh_token?: unknown } | undefined)?.refresh_token);
    if (!parsed) throw new AionError(ErrorCodes.VALIDATION_FAILED, 'send { "refresh_token": "aionr_…" }');
    const row = await this.store.findRefresh(parsed.id);
    if (!row || !sameHash(row.token_hash, parsed.secretHash)) throw new AionError(ErrorCodes.UNAUTHENTICATED, 'the refresh token is not valid');
    if (row.revoked_at !== null) throw new AionError(ErrorCodes.UNAUTHENTICATED, 'the refresh token was revoked: sign in again');
    if (row.used_at !== null) return this.reused(row, ip);
    if (row.expires_at <= Date.now()) throw new AionError(AuthErrorCodes.TOKEN_EXPIRED, 'the refresh token has expired: sign in again', { status: 401 });
    const subject = await this.currentSubject(row.tenant_id, row.subject_type, row.subject_id, row.owner_id);
    if (!subject) {
      await this.store.revokeFamily(row.family_id);
      await this.revocations.revoke('family', [row.family_id]);
      throw new AionError(ErrorCodes.UNAUTHENTICATED, `the ${row.subject_type} behind this refresh token is disabled or revoked`);
    }
    const next = newRefreshToken();
    const now = Date.now();
    const won = await this.store.rotateRefresh(row.id, {
      id: next.id,
      family_id: row.family_id,
      tenant_id: row.tenant_id,
      subject_type: row.subject_type,
      subject_id: row.subject_id,
      owner_id: row.owner_id,
      scopes: subject.scopes,
      token_hash: next.hash,
      created_at: now,
      expires_at: now + this.config.refreshTokenTtlSeconds * 1000,
    });
    if (!won) return this.reused(row, ip);
    if (row.subject_type === 'device') this.store.touchDevice(row.subject_id).catch(() => undefined);
    return this.pair(subject, row.tenant_id, row.family_id, next.token);
  }

  private async reused(row: { family_id: string; tenant_id: string; subject_id: string; owner_id: string; id: string }, ip: string): Promise<never> {
    const revoked = await this.store.revokeFamily(row.family_id);
    await this.revocations.revoke('family', [row.family_id]);
    await this.store.audit({
      tenant_id: row.tenant_id,
      event: 'refresh_reused',
      actor: row.owner_id,
      subject: row.subject_id,
      ip,
      details: { family_id: row.family_id, token_id: row.id, revoked },
    });
    this.logger.warn('a rotated refresh token was presented again: its family is revoked', { family: row.family_id, subject: row.subject_id, ip });
    throw new AionError(AuthErrorCodes.REFRESH_TOKEN_REUSED, 'this refresh token was already used: every token of its sign-in is now revoked; sign in again', {
      status: 401,
    });
  }

  /** The subject as it is now: scopes from its row, and nothing when it is disabled or revoked. */
  private async currentSubject(tenantId: string, type: SubjectType, id: string, owner: string): Promise<Subject | undefined> {
    const user = await this.store.findUser(tenantId, owner);
    if (!user || user.disabled) return undefined;
    if (type === 'user') return { type, id: user.id, owner: user.id, scopes: user.scopes };
    const device = await this.store.findDevice(tenantId, id);
    if (!device || device.revoked_at !== null || device.owner_id !== owner) return undefined;
    return { type: 'device', id: device.id, owner, scopes: device.scopes };
  }

  async logout(body: unknown, principal: Principal | undefined, ip: string): Promise<void> {
    const parsed = parseRefreshToken((body as { refresh_token?: unknown } | undefined)?.refresh_token);
    let family: string | undefined;
    if (parsed) {
      const row = await this.store.findRefresh(parsed.id);
      if (row && sameHash(row.token_hash, parsed.secretHash)) family = row.family_id;
    } else if (typeof principal?.fam === 'string') family = principal.fam;
    if (!family) throw new AionError(ErrorCodes.VALIDATION_FAILED, 'send { "refresh_token": "aionr_…" } or an access token from the sign-in to end');
    await this.store.revokeFamily(family);
    await this.revocations.revoke('family', [family]);
    await this.store.audit({
      tenant_id: principal?.tenant_id ?? DEFAULT_TENANT,
      event: 'logout',
      actor: principal?.sub ?? null,
      ip,
      details: { family_id: family },
    });
  }

  // Users

  async createUser(input: unknown, actor?: Principal, ip?: string): Promise<{ user: ReturnType<typeof userView>; password?: string }> {
    const { username: rawName, password, scopes, admin } = (input ?? {}) as { username?: unknown; password?: unknown; scopes?: unknown; admin?: unknown };
    const username = typeof rawName === 'string' ? rawName.trim().toLowerCase() : '';
    if (!USERNAME.test(username)) throw new AionError(ErrorCodes.VALIDATION_FAILED, 'a username is 1-128 characters: letters, digits, . _ @ -');
    if (password !== undefined && (typeof password !== 'string' || password.length < this.config.passwordMinLength)) {
      throw new AionError(ErrorCodes.VALIDATION_FAILED, `a password has at least ${this.config.passwordMinLength} characters`);
    }
    if (admin !== undefined && typeof admin !== 'boolean') throw new AionError(ErrorCodes.VALIDATION_FAILED, 'admin is true or false');
    const granted = admin === true ? ['*'] : scopes === undefined ? this.config.defaultUserScopes : validScopes(scopes, 'scopes');
    if (actor) await this.assertMayCreateUser(actor, granted);
    const generated = password === undefined ? generatePassword() : undefined;
    const user = await this.store.createUser({
      tenant_id: actor?.tenant_id ?? DEFAULT_TENANT,
      username,
      password_hash: await hashPassword((password as string | undefined) ?? generated!, this.config.scryptCost),
      scopes: granted,
    });
    await this.store.audit({
      tenant_id: user.tenant_id,
      event: 'user_created',
      actor: actor?.sub ?? 'cli',
      subject: user.id,
      ip,
      details: { username, scopes: granted },
    });
    return generated ? { user: userView(user), password: generated } : { user: userView(user) };
  }

  /**
   * A user is created within its creator's scopes; one who could create users in turn (an administrator)
   * only by a signed-in person unless `adminCreation` is `any`, so a leaked key or device cannot make
   * accounts that outlive it.
   */
  private async assertMayCreateUser(actor: Principal, granted: string[]): Promise<void> {
    assertGrantable(await this.currentScopes(actor), granted);
    const admin = granted.filter((s) => ADMIN_SCOPES.includes(s));
    if (admin.length > 0 && actor.type !== 'user' && this.config.adminCreation === 'interactive') {
      throw new AionError(
        AuthErrorCodes.INTERACTIVE_SIGN_IN_REQUIRED,
        `only a signed-in user can create a user holding ${admin.join(', ')}, not ${actor.type === 'service' ? 'an API key' : `a ${actor.type}`}: sign in with a password and retry`,
        {
          status: 403,
          details: { scopes: admin },
        },
      );
    }
  }

  /**
   * What a principal may hand on, as the database says now: a token's claims can be stale (its user
   * disabled, its device revoked on an instance that shares no Redis) and a principal passed to the
   * command could claim anything.
   */
  private async currentScopes(principal: Principal): Promise<string[]> {
    const stored = await this.storedScopes(principal);
    if (!stored || !Array.isArray(principal.scopes))
      throw new AionError(ErrorCodes.UNAUTHENTICATED, `the ${principal.type} behind this request no longer exists, or is disabled or revoked`);
    return commonScopes(stored, principal.scopes.map(String));
  }

  private async storedScopes(principal: Principal): Promise<string[] | undefined> {
    if (principal.type === 'service') {
      const key = await this.store.findApiKey(principal.tenant_id, principal.sub);
      const live = key && key.revoked_at === null && !key.owner_disabled && (key.expires_at === null || key.expires_at > Date.now());
      return live ? key.scopes : undefined;
    }
    if (principal.type !== 'user' && principal.type !== 'device') return undefined;
    return (await this.currentSubject(principal.tenant_id, principal.type as SubjectType, principal.sub, String(principal.owner ?? principal.sub)))?.scopes;
  }

  userCounts(principal: Principal) {
    return this.store.userCounts(principal.tenant_id);
  }

  async listUsers(principal: Principal) {
    return (await this.store.listUsers(principal.tenant_id)).map(userView);
  }

  /** The first start of an empty database creates an admin with one-time credentials. */
  async ensureInitialAdmin(): Promise<{ username: string; password: string } | undefined> {
    if (!this.config.initialAdmin.enabled || (await this.store.countUsers(DEFAULT_TENANT)) > 0) return undefined;
    try {
      const { user, password } = await this.createUser({ username: this.config.initialAdmin.username, admin: true });
      return { username: user.username, password: password! };
    } catch (err) {
      // Another instance created it at the same moment.
      if ((err as AionError).code === ErrorCodes.CONFLICT) return undefined;
      throw err;
    }
  }

  async me(principal: Principal) {
    const owner = String(principal.owner ?? principal.sub);
    const user = await this.store.findUser(principal.tenant_id, owner);
    if (!user) throw new AionError(ErrorCodes.UNAUTHENTICATED, 'the account behind this credential no longer exists');
    const out: Record<string, unknown> = {
      sub: principal.sub,
      type: principal.type,
      scopes: principal.scopes,
      tenant_id: principal.tenant_id,
      owner,
      user: userView(user),
    };
    if (principal.type === 'device') {
      const device = await this.store.findDevice(principal.tenant_id, principal.sub);
      if (device) out.device = deviceView(device);
    }
    if (principal.type === 'service') out.api_key = { id: principal.sub };
    return out;
  }

  async changePassword(principal: Principal, body: unknown, ip: string): Promise<void> {
    this.requireUser(principal, 'change a password');
    const { current_password: current, new_password: next } = (body ?? {}) as { current_password?: unknown; new_password?: unknown };
    if (typeof current !== 'string' || typeof next !== 'string')
      throw new AionError(ErrorCodes.VALIDATION_FAILED, 'send { "current_password": "…", "new_password": "…" }');
    if (next.length < this.config.passwordMinLength)
      throw new AionError(ErrorCodes.VALIDATION_FAILED, `a password has at least ${this.config.passwordMinLength} characters`);
    const user = await this.store.findUser(principal.tenant_id, principal.sub);
    if (!user || !(await verifyPassword(current, user.password_hash))) throw new AionError(ErrorCodes.FORBIDDEN, 'the current password is wrong');
    await this.store.setPassword(user.tenant_id, user.id, await hashPassword(next, this.config.scryptCost));
    // Whoever else knew the old password is signed out; this sign-in, devices and API keys stay.
    const ended = await this.store.revokeOtherSignIns(user.tenant_id, user.id, typeof principal.fam === 'string' ? principal.fam : undefined);
    await this.revocations.revoke('family', ended);
    await this.store.audit({
      tenant_id: user.tenant_id,
      event: 'password_changed',
      actor: user.id,
      subject: user.id,
      ip,
      details: { signins_ended: ended.length },
    });
  }

  /** Credentials are minted by people, not by other credentials. */
  private requireUser(principal: Principal, what: string): void {
    if (principal.type !== 'user') throw new AionError(ErrorCodes.FORBIDDEN, `only a signed-in user can ${what} (this request comes from a ${principal.type})`);
  }

  // API keys

  async createApiKey(principal: Principal, body: unknown, ip: string) {
    this.requireUser(principal, 'create API keys');
    const { name, scopes, expires_in_seconds: expiresIn } = (body ?? {}) as { name?: unknown; scopes?: unknown; expires_in_seconds?: unknown };
    if (typeof name !== 'string' || name.trim() === '' || name.length > 200)
      throw new AionError(ErrorCodes.VALIDATION_FAILED, 'an API key needs a name (up to 200 characters)');
    if (expiresIn !== undefined && (!Number.isInteger(expiresIn) || (expiresIn as number) <= 0))
      throw new AionError(ErrorCodes.VALIDATION_FAILED, 'expires_in_seconds is a positive integer');
    const granted = scopes === undefined ? this.config.defaultApiKeyScopes : validScopes(scopes, 'scopes');
    assertGrantable(await this.currentScopes(principal), granted);
    const { key, prefix, hash } = newApiKey();
    const row = await this.store.createApiKey({
      tenant_id: principal.tenant_id,
      owner_id: principal.sub,
      name: name.trim(),
      prefix,
      key_hash: hash,
      scopes: granted,
      expires_at: expiresIn === undefined ? null : Date.now() + (expiresIn as number) * 1000,
    });
    await this.store.audit({
      tenant_id: principal.tenant_id,
      event: 'key_created',
      actor: principal.sub,
      subject: row.id,
      ip,
      details: { prefix, scopes: granted },
    });
    return { ...apiKeyView(row), key };
  }

  async listApiKeys(principal: Principal) {
    return (await this.store.listApiKeys(principal.tenant_id, String(principal.owner ?? principal.sub))).map(apiKeyView);
  }

  async revokeApiKey(principal: Principal, id: string, ip: string): Promise<void> {
    if (!(await this.store.revokeApiKey(principal.tenant_id, String(principal.owner ?? principal.sub), id)))
      throw new AionError(ErrorCodes.NOT_FOUND, `no API key ${id}`);
    for (const [prefix, entry] of this.keyCache) if (entry.row.id === id) this.keyCache.delete(prefix);
    // Instances holding the key in their cache hear it through Redis (the key id is its principal's subject).
    await this.revocations.revoke('subject', [id]);
    await this.store.audit({ tenant_id: principal.tenant_id, event: 'key_revoked', actor: principal.sub, subject: id, ip });
  }

  // Devices

  async createDevice(principal: Principal, body: unknown, ip: string) {
    this.requireUser(principal, 'register devices');
    const { name, scopes } = (body ?? {}) as { name?: unknown; scopes?: unknown };
    if (typeof name !== 'string' || name.trim() === '' || name.length > 200)
      throw new AionError(ErrorCodes.VALIDATION_FAILED, 'a device needs a name (up to 200 characters)');
    const granted = scopes === undefined ? this.config.defaultDeviceScopes : validScopes(scopes, 'scopes');
    assertGrantable(await this.currentScopes(principal), granted);
    const device = await this.store.createDevice({ tenant_id: principal.tenant_id, owner_id: principal.sub, name: name.trim(), scopes: granted });
    await this.store.audit({
      tenant_id: principal.tenant_id,
      event: 'device_created',
      actor: principal.sub,
      subject: device.id,
      ip,
      details: { scopes: granted },
    });
    const tokens = await this.issue({ type: 'device', id: device.id, owner: principal.sub, scopes: granted }, principal.tenant_id);
    return { device: deviceView(device), ...tokens };
  }

  async listDevices(principal: Principal) {
    return (await this.store.listDevices(principal.tenant_id, String(principal.owner ?? principal.sub))).map(deviceView);
  }

  private async ownDevice(principal: Principal, id: string): Promise<DeviceRow> {
    const device = await this.store.findDevice(principal.tenant_id, id);
    if (!device || device.revoked_at !== null || device.owner_id !== String(principal.owner ?? principal.sub))
      throw new AionError(ErrorCodes.NOT_FOUND, `no device ${id}`);
    return device;
  }

  async getDevice(principal: Principal, id: string) {
    return deviceView(await this.ownDevice(principal, id));
  }

  async renameDevice(principal: Principal, id: string, body: unknown) {
    const name = (body as { name?: unknown } | undefined)?.name;
    if (typeof name !== 'string' || name.trim() === '' || name.length > 200)
      throw new AionError(ErrorCodes.VALIDATION_FAILED, 'send { "name": "…" } (up to 200 characters)');
    const device = await this.ownDevice(principal, id);
    await this.store.renameDevice(principal.tenant_id, device.owner_id, id, name.trim());
    return deviceView({ ...device, name: name.trim() });
  }

  async revokeDevice(principal: Principal, id: string, ip: string): Promise<void> {
    const device = await this.ownDevice(principal, id);
    await this.store.revokeDevice(principal.tenant_id, device.owner_id, id);
    await this.revocations.revoke('subject', [id]);
    await this.store.audit({ tenant_id: principal.tenant_id, event: 'device_revoked', actor: principal.sub, subject: id, ip });
  }

  // Audit

  async listAudit(principal: Principal, query: Record<string, string | string[]>) {
    const limit = Math.min(Math.max(Number(query.limit ?? 100) || 100, 1), 500);
    const before = query.before === undefined ? undefined : Number(query.before);
    const event = typeof query.event === 'string' ? query.event : undefined;
    const events = await this.store.listAudit(principal.tenant_id, { limit, before: Number.isFinite(before) ? before : undefined, event });
    return { events, next_before: events.length === limit ? events[events.length - 1]!.at : null };
  }
}
