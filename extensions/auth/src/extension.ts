import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as aion from '@aion/extension-api';
import { AionError, ErrorCodes, type HttpRequestData, type Principal } from '@aion/extension-api';
import type { StorageApi } from '@aion/ext-storage';
import { Redis } from 'ioredis';
import { AuthService } from './authService.js';
import { AuthStore } from './authStore.js';
import type { AuthConfiguration } from './config.js';
import { RateLimiter } from './rateLimits.js';
import { Revocations } from './revocations.js';
import { AccessTokens } from './tokens.js';

const PURGE_INTERVAL_MS = 6 * 60 * 60 * 1000;

function principalOf(req: HttpRequestData): Principal {
  if (!req.principal) throw new AionError(ErrorCodes.UNAUTHENTICATED, 'sign in first');
  return req.principal;
}

/** The JWT signing key: the AION_JWT_SECRET secret, else one generated once and kept in the database. */
async function signingKey(ctx: aion.ExtensionContext, store: AuthStore): Promise<Uint8Array> {
  const configured = await ctx.secrets.get('AION_JWT_SECRET');
  if (configured !== undefined && configured.length < 32) throw new Error('AION_JWT_SECRET must be at least 32 characters long');
  const secret = configured ?? (await store.settingOrCreate('jwt_secret', () => randomBytes(32).toString('base64url')));
  return new TextEncoder().encode(secret);
}

async function connectRedis(url: string, ctx: aion.ExtensionContext): Promise<Redis> {
  // No offline queue: while Redis is away a command fails at once and the limiter answers from memory.
  const redis = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2_000 });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    ctx.logger.info('rate limits and access-token revocations are shared through Redis');
  } catch (err) {
    ctx.logger.warn(`Redis is unreachable (${(err as Error).message}); rate limits use this instance's memory and revocations are announced once it answers`);
  }
  return redis;
}

/** The principal `auth.createUser` acts for, when its caller passes one. */
function commandPrincipal(value: unknown): Principal | undefined {
  if (value === undefined || value === null) return undefined;
  const p = value as Principal;
  if (typeof p !== 'object' || typeof p.sub !== 'string' || typeof p.type !== 'string' || typeof p.tenant_id !== 'string' || !Array.isArray(p.scopes)) {
    throw new AionError(
      ErrorCodes.VALIDATION_FAILED,
      'the second argument of auth.createUser is the principal to act for: { sub, type, tenant_id, scopes, owner? }',
    );
  }
  return p;
}

export async function activate(ctx: aion.ExtensionContext) {
  const config = ctx.configuration.get<AuthConfiguration>();
  const storage = await aion.extensions.getApi<StorageApi>('aion.storage');
  const store = await AuthStore.open(storage);
  const tokens = await AccessTokens.create(await signingKey(ctx, store), config.issuer, config.accessTokenTtlSeconds);

  const redisUrl = config.redisUrl || (await ctx.secrets.get('AION_REDIS_URL'));
  const redis = redisUrl ? await connectRedis(redisUrl, ctx) : undefined;
  const revocations = await Revocations.start({
    store,
    accessTokenTtlSeconds: config.accessTokenTtlSeconds,
    logger: ctx.logger,
    redis,
    channel: config.revocations.redisChannel,
  });
  let service!: AuthService;
  const limiter = config.rateLimits.enabled
    ? new RateLimiter({
        perApiKey: config.rateLimits.perApiKey,
        perPrincipal: config.rateLimits.perPrincipal,
        perIp: config.rateLimits.perIp,
        login: config.rateLimits.login,
        redis,
        keyPrefix: config.rateLimits.redisKeyPrefix,
        onStoreError: (err) => service.warnStore(err),
      })
    : undefined;
  service = new AuthService(store, tokens, limiter, revocations, config, ctx.logger);

  const admin = await service.ensureInitialAdmin();
  if (admin) {
    const file = join(ctx.storagePath, 'initial-admin.txt');
    writeFileSync(file, `username: ${admin.username}\npassword: ${admin.password}\n`, { mode: 0o600 });
    ctx.logger.warn(
      `created the first admin account — username: ${admin.username}  password: ${admin.password}  (shown once; also in ${file}, readable only by this user; change it with POST /v1/me/password and delete the file)`,
    );
  }

  const purge = () =>
    store
      .purge(config.auditRetentionDays * 86_400_000, config.accessTokenTtlSeconds * 1000)
      .catch((err) => ctx.logger.warn(`purging expired tokens and old audit events failed: ${(err as Error).message}`));
  void purge();
  const purgeTimer = setInterval(purge, PURGE_INTERVAL_MS);
  purgeTimer.unref();

  const handle = aion.http.handle;
  if (redis) ctx.subscriptions.push(aion.hooks.tap('health.check', (payload: HealthPayload) => checkRedis(payload, redis)));
  ctx.subscriptions.push(
    aion.hooks.tap('http.authenticate', (payload) => service.authenticate(payload)),
    handle('POST /v1/auth/login', async (req) => ({ body: await service.login(req.body, req.ip) })),
    handle('POST /v1/auth/refresh', async (req) => ({ body: await service.refresh(req.body, req.ip) })),
    handle('POST /v1/auth/logout', async (req) => {
      await service.logout(req.body, req.principal, req.ip);
      return { status: 204 };
    }),
    handle('GET /v1/me', async (req) => ({ body: await service.me(principalOf(req)) })),
    handle('POST /v1/me/password', async (req) => {
      await service.changePassword(principalOf(req), req.body, req.ip);
      return { status: 204 };
    }),
    handle('GET /v1/api-keys', async (req) => ({ body: { api_keys: await service.listApiKeys(principalOf(req)) } })),
    handle('POST /v1/api-keys', async (req) => ({ status: 201, body: await service.createApiKey(principalOf(req), req.body, req.ip) })),
    handle('DELETE /v1/api-keys/:id', async (req) => {
      await service.revokeApiKey(principalOf(req), req.params.id!, req.ip);
      return { status: 204 };
    }),
    handle('GET /v1/devices', async (req) => {
      const principal = principalOf(req);
      const devices = (await service.listDevices(principal)).map((d) => ({ kind: 'credentials', ...d }));
      // Extensions with devices of their own (the hub's spokes) add them to the one list.
      const listed = await aion.hooks.call<{ devices: unknown[] }>('auth.devices.list', { principal, devices });
      return { body: { devices: listed?.devices ?? devices } };
    }),
    handle('POST /v1/devices', async (req) => ({ status: 201, body: await service.createDevice(principalOf(req), req.body, req.ip) })),
    handle('GET /v1/devices/:id', async (req) => ({ body: await service.getDevice(principalOf(req), req.params.id!) })),
    handle('PATCH /v1/devices/:id', async (req) => ({ body: await service.renameDevice(principalOf(req), req.params.id!, req.body) })),
    handle('DELETE /v1/devices/:id', async (req) => {
      const principal = principalOf(req);
      try {
        await service.revokeDevice(principal, req.params.id!, req.ip);
      } catch (err) {
        // None of the caller's credentials: perhaps a device another extension keeps (a hub's spoke, by name).
        if ((err as AionError).code !== ErrorCodes.NOT_FOUND) throw err;
        if ((await aion.hooks.call<boolean | undefined>('auth.devices.revoke', { principal, id: req.params.id! })) !== true) throw err;
      }
      return { status: 204 };
    }),
    handle('GET /v1/users', async (req) => ({ body: { users: await service.listUsers(principalOf(req)) } })),
    handle('GET /v1/users/counts', async (req) => ({ headers: { 'cache-control': 'no-store' }, body: await service.userCounts(principalOf(req)) })),
    handle('POST /v1/users', async (req) => ({ status: 201, body: await service.createUser(req.body, principalOf(req), req.ip) })),
    handle('GET /v1/auth/audit', async (req) => ({ body: await service.listAudit(principalOf(req), req.query) })),
    // `aion users create` runs this: { username, password?, scopes?, admin? } → { user, password? }.
    // Without a principal it acts for the operator at the console; with one, within that principal's rights.
    // The host appends a cancellation token after the declared parameters, so it is declared to keep it out of `principal`.
    aion.commands.register('auth.createUser', (options: Record<string, unknown> | undefined, principal: unknown, _token: aion.CancellationToken) => {
      // From `aion users create --scopes a,b` scopes arrive as one comma-separated string.
      const scopes =
        typeof options?.scopes === 'string'
          ? options.scopes
              .split(',')
              .map((s) => s.trim())
              .filter(Boolean)
          : options?.scopes;
      // A user the kernel verified (commands.executeFor) comes first; a principal argument is checked against the database.
      return service.createUser({ ...options, scopes }, aion.commands.principal() ?? commandPrincipal(principal));
    }),
    { dispose: () => clearInterval(purgeTimer) },
    revocations,
    { dispose: () => limiter?.dispose() },
    { dispose: () => void redis?.quit().catch(() => redis.disconnect()) },
  );
}

export function deactivate() {}

type HealthPayload = { checks: Array<Record<string, unknown>> };

/** `health.check`: Redis (rate limits, revocations) answers PING within 2 s. */
async function checkRedis(payload: HealthPayload, redis: Redis): Promise<HealthPayload> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([redis.ping(), new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('no answer within 2000 ms')), 2_000)))]);
    payload.checks.push({ name: 'redis', status: 'ok', detail: 'rate limits and revocations', ms: Math.round(performance.now() - started) });
  } catch (err) {
    payload.checks.push({ name: 'redis', status: 'failed', detail: (err as Error).message, ms: Math.round(performance.now() - started) });
  } finally {
    clearTimeout(timer);
  }
  return payload;
}
