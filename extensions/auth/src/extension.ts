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
    ctx.logger.info('rate limits are shared through Redis');
  } catch (err) {
    ctx.logger.warn(`Redis is unreachable (${(err as Error).message}); rate limits use this instance's memory until it answers`);
  }
  return redis;
}

export async function activate(ctx: aion.ExtensionContext) {
  const config = ctx.configuration.get<AuthConfiguration>();
  const storage = await aion.extensions.getApi<StorageApi>('aion.storage');
  const store = await AuthStore.open(storage);
  const tokens = await AccessTokens.create(await signingKey(ctx, store), config.issuer, config.accessTokenTtlSeconds);

  const redisUrl = config.redisUrl || (await ctx.secrets.get('AION_REDIS_URL'));
  const redis = config.rateLimits.enabled && redisUrl ? await connectRedis(redisUrl, ctx) : undefined;
  let service!: AuthService;
  const limiter = config.rateLimits.enabled
    ? new RateLimiter({
        perApiKey: config.rateLimits.perApiKey,
        perIp: config.rateLimits.perIp,
        login: config.rateLimits.login,
        redis,
        keyPrefix: config.rateLimits.redisKeyPrefix,
        onStoreError: (err) => service.warnStore(err),
      })
    : undefined;
  service = new AuthService(store, tokens, limiter, config, ctx.logger);

  const admin = await service.ensureInitialAdmin();
  if (admin) {
    const file = join(ctx.storagePath, 'initial-admin.txt');
    writeFileSync(file, `username: ${admin.username}\npassword: ${admin.password}\n`, { mode: 0o600 });
    ctx.logger.warn(
      `created the first admin account — username: ${admin.username}  password: ${admin.password}  (shown once; also in ${file}, readable only by this user; change it with POST /v1/me/password and delete the file)`,
    );
  }

  const purge = () => store.purge(config.auditRetentionDays * 86_400_000).catch((err) => ctx.logger.warn(`purging expired tokens and old audit events failed: ${(err as Error).message}`));
  void purge();
  const purgeTimer = setInterval(purge, PURGE_INTERVAL_MS);
  purgeTimer.unref();

  const handle = aion.http.handle;
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
    handle('GET /v1/devices', async (req) => ({ body: { devices: await service.listDevices(principalOf(req)) } })),
    handle('POST /v1/devices', async (req) => ({ status: 201, body: await service.createDevice(principalOf(req), req.body, req.ip) })),
    handle('GET /v1/devices/:id', async (req) => ({ body: await service.getDevice(principalOf(req), req.params.id!) })),
    handle('PATCH /v1/devices/:id', async (req) => ({ body: await service.renameDevice(principalOf(req), req.params.id!, req.body) })),
    handle('DELETE /v1/devices/:id', async (req) => {
      await service.revokeDevice(principalOf(req), req.params.id!, req.ip);
      return { status: 204 };
    }),
    handle('GET /v1/users', async (req) => ({ body: { users: await service.listUsers(principalOf(req)) } })),
    handle('POST /v1/users', async (req) => ({ status: 201, body: await service.createUser(req.body, principalOf(req), req.ip) })),
    handle('GET /v1/auth/audit', async (req) => ({ body: await service.listAudit(principalOf(req), req.query) })),
    // `aion users create` runs this: { username, password?, scopes?, admin? } → { user, password? }.
    aion.commands.register('auth.createUser', (options: Record<string, unknown> | undefined) => {
      // From `aion users create --scopes a,b` scopes arrive as one comma-separated string.
      const scopes = typeof options?.scopes === 'string' ? options.scopes.split(',').map((s) => s.trim()).filter(Boolean) : options?.scopes;
      return service.createUser({ ...options, scopes });
    }),
    { dispose: () => clearInterval(purgeTimer) },
    { dispose: () => limiter?.dispose() },
    { dispose: () => void redis?.quit().catch(() => redis.disconnect()) },
  );
}

export function deactivate() {}
