/**
 * For tests of extensions behind aion.auth: sign in as the first admin, create users, get tokens.
 *
 *   const admin = await signInAdmin(kernel);
 *   const alice = await createUser(kernel, admin.access_token, 'alice');
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';

/** The folder of this extension, for `startTestKernel({ extensions: [STORAGE_EXTENSION_DIR, AUTH_EXTENSION_DIR, …] })`. */
export const AUTH_EXTENSION_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

interface KernelLike {
  dataDir: string;
  request(path: string, init?: RequestInit): Promise<Response>;
}

export interface Tokens {
  access_token: string;
  refresh_token: string;
  expires_in: number;
  scope: string;
}

export async function call(
  kernel: KernelLike,
  method: string,
  path: string,
  options: { token?: string; apiKey?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Response> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.apiKey) headers['x-api-key'] = options.apiKey;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  return kernel.request(path, { method, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
}

/** The one-time credentials of the first admin, as the first start wrote them. */
export function initialAdmin(kernel: KernelLike): { username: string; password: string } {
  const text = readFileSync(join(kernel.dataDir, 'storage', 'aion.auth', 'initial-admin.txt'), 'utf8');
  return { username: /username: (.+)/.exec(text)![1]!, password: /password: (.+)/.exec(text)![1]! };
}

export async function login(kernel: KernelLike, username: string, password: string): Promise<Tokens> {
  const res = await call(kernel, 'POST', '/v1/auth/login', { body: { username, password } });
  assert.equal(res.status, 200, `login of ${username}: ${await res.clone().text()}`);
  return (await res.json()) as Tokens;
}

export async function signInAdmin(kernel: KernelLike): Promise<Tokens> {
  const { username, password } = initialAdmin(kernel);
  return login(kernel, username, password);
}

/** Creates a user through the admin route and signs it in. */
export async function createUser(
  kernel: KernelLike,
  adminToken: string,
  username: string,
  options: { scopes?: string[]; password?: string } = {},
): Promise<Tokens & { id: string; password: string }> {
  const password = options.password ?? `pw-${username}-0123456789`;
  const res = await call(kernel, 'POST', '/v1/users', { token: adminToken, body: { username, password, scopes: options.scopes } });
  assert.equal(res.status, 201, `create ${username}: ${await res.clone().text()}`);
  const { user } = (await res.json()) as { user: { id: string } };
  return { ...(await login(kernel, username, password)), id: user.id, password };
}

/** The Redis the tests of rate limits, revocations and queues use (`AION_TEST_REDIS_URL` overrides it). */
export const REDIS_URL = process.env.AION_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Why Redis cannot be reached, or undefined when it answers. */
export async function probeRedis(): Promise<string | undefined> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 2_000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  let cause: Error | undefined;
  redis.on('error', (err: Error) => (cause ??= err));
  try {
    await redis.connect();
    await redis.ping();
    return undefined;
  } catch (err) {
    return (cause ?? (err as Error)).message || String(err);
  } finally {
    redis.disconnect();
  }
}
