/** Sign-in, refresh-token rotation, sign-out, the caller, API keys. */
import { AionApiError, ClientErrorCodes } from './errors.js';
import type { Credentials, Transport } from './transport.js';

export interface TokenPair {
  access_token: string;
  refresh_token: string;
  token_type?: string;
  expires_in: number;
  refresh_expires_in?: number;
  scope?: string;
}

/** Where signed-in tokens are kept (memory by default; a browser may use storage, an IDE its secret store). */
export interface TokenStore {
  load(): StoredTokens | undefined | Promise<StoredTokens | undefined>;
  save(tokens: StoredTokens | undefined): void | Promise<void>;
}

export interface StoredTokens {
  accessToken: string;
  refreshToken: string;
  /** Epoch ms when the access token expires. */
  expiresAt: number;
}

export class MemoryTokenStore implements TokenStore {
  private tokens?: StoredTokens;
  load() {
    return this.tokens;
  }
  save(tokens: StoredTokens | undefined) {
    this.tokens = tokens;
  }
}

export interface ApiKey {
  id: string;
  name: string;
  prefix: string;
  scopes: string[];
  created_at: string;
  expires_at: string | null;
  [key: string]: unknown;
}

export interface Me {
  sub: string;
  type: 'user' | 'device' | 'service';
  scopes: string[];
  tenant_id: string;
  owner: string;
  user: { id: string; username: string; [key: string]: unknown };
  device?: Record<string, unknown>;
  api_key?: { id: string };
}

/** Refresh this long before the access token expires, so a request never carries a stale one. */
const REFRESH_MARGIN_MS = 30_000;

/**
 * The credentials of a client: an API key (fixed), or tokens from `login` that it refreshes — once
 * at a time, however many requests need it — rotating the refresh token each time.
 */
export class SessionCredentials implements Credentials {
  private refreshing?: Promise<boolean>;
  transport!: Transport;
  /** Called after every rotation, e.g. to persist the new pair elsewhere. */
  onTokens?: (tokens: StoredTokens | undefined) => void;

  constructor(
    private readonly store: TokenStore,
    private readonly apiKey?: string,
    private readonly staticToken?: string,
  ) {}

  async bearer(): Promise<string | undefined> {
    if (this.apiKey) return this.apiKey;
    if (this.staticToken) return this.staticToken;
    const tokens = await this.store.load();
    if (!tokens) return undefined;
    if (tokens.expiresAt - Date.now() < REFRESH_MARGIN_MS && (await this.refresh())) return (await this.store.load())?.accessToken;
    return tokens.accessToken;
  }

  refresh(): Promise<boolean> {
    if (this.apiKey || this.staticToken) return Promise.resolve(false);
    this.refreshing ??= this.rotate().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  async set(pair: TokenPair | undefined): Promise<void> {
    const tokens = pair ? { accessToken: pair.access_token, refreshToken: pair.refresh_token, expiresAt: Date.now() + pair.expires_in * 1000 } : undefined;
    await this.store.save(tokens);
    this.onTokens?.(tokens);
  }

  async current(): Promise<StoredTokens | undefined> {
    return this.store.load();
  }

  private async rotate(): Promise<boolean> {
    const tokens = await this.store.load();
    if (!tokens) return false;
    try {
      const pair = await this.transport.json<TokenPair>('POST', '/v1/auth/refresh', { refresh_token: tokens.refreshToken }, { anonymous: true });
      await this.set(pair);
      return true;
    } catch (err) {
      // A refresh token that is expired, revoked or reused ends the sign-in; a network failure does not.
      if (err instanceof AionApiError && err.status === 401) await this.set(undefined);
      throw err;
    }
  }
}

export class AuthApi {
  constructor(
    private readonly transport: Transport,
    private readonly credentials: SessionCredentials,
  ) {}

  /** Signs in; later requests carry the access token and refresh it as needed. */
  async login(username: string, password: string, options: { signal?: AbortSignal } = {}): Promise<TokenPair> {
    const pair = await this.transport.json<TokenPair>('POST', '/v1/auth/login', { username, password }, { anonymous: true, signal: options.signal });
    await this.credentials.set(pair);
    return pair;
  }

  /** Rotates the refresh token now; throws `NOT_SIGNED_IN` without a sign-in. */
  async refresh(): Promise<StoredTokens> {
    if (!(await this.credentials.refresh())) throw new AionApiError(ClientErrorCodes.NOT_SIGNED_IN, 'sign in with auth.login() before refreshing');
    return (await this.credentials.current())!;
  }

  /** Ends this sign-in on the server and forgets its tokens. */
  async logout(options: { signal?: AbortSignal } = {}): Promise<void> {
    const tokens = await this.credentials.current();
    if (tokens) await this.transport.json('POST', '/v1/auth/logout', { refresh_token: tokens.refreshToken }, { anonymous: true, signal: options.signal });
    await this.credentials.set(undefined);
  }

  /** The tokens of the current sign-in, to persist them yourself. */
  tokens(): Promise<StoredTokens | undefined> {
    return this.credentials.current();
  }

  /** Who the credentials are: a user, a device (`device`) or an API key (`api_key`), with its scopes and user. */
  me(options: { signal?: AbortSignal } = {}): Promise<Me> {
    return this.transport.json('GET', '/v1/me', undefined, options);
  }

  readonly apiKeys = {
    list: async (options: { signal?: AbortSignal } = {}): Promise<ApiKey[]> =>
      (await this.transport.json<{ api_keys: ApiKey[] }>('GET', '/v1/api-keys', undefined, options)).api_keys,
    /** The key itself is in this answer only. */
    create: (
      body: { name: string; scopes?: string[]; expires_in_seconds?: number },
      options: { signal?: AbortSignal } = {},
    ): Promise<ApiKey & { key: string }> => this.transport.json('POST', '/v1/api-keys', body, options),
    revoke: (id: string, options: { signal?: AbortSignal } = {}): Promise<void> =>
      this.transport.json('DELETE', `/v1/api-keys/${encodeURIComponent(id)}`, undefined, { ...options, idempotent: true }),
  };
}
