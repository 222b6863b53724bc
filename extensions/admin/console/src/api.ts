/**
 * Calls to the admin APIs with the signed-in admin's tokens. The tokens live in sessionStorage: they
 * survive a reload of this tab but not the tab itself, and other tabs and sites never see them.
 */
export interface Tokens {
  access_token: string;
  refresh_token: string;
  expires_in: number;
  scope: string;
  username?: string;
}

const STORAGE_KEY = 'aion.admin.tokens';

/** An answer in the server's error shape, with its HTTP status and stable code. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function currentTokens(): Tokens | undefined {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    return raw ? (JSON.parse(raw) as Tokens) : undefined;
  } catch {
    return undefined;
  }
}

export function setTokens(tokens: Tokens | undefined): void {
  if (tokens) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(tokens));
  else sessionStorage.removeItem(STORAGE_KEY);
}

let refreshing: Promise<boolean> | undefined;

/** Rotates the refresh token once for every caller that found the access token expired. */
export function refreshTokens(): Promise<boolean> {
  refreshing ??= (async () => {
    const tokens = currentTokens();
    if (!tokens) return false;
    const res = await fetch('/v1/auth/refresh', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refresh_token: tokens.refresh_token }),
    });
    if (!res.ok) {
      setTokens(undefined);
      return false;
    }
    setTokens({ ...(await res.json()), username: tokens.username });
    return true;
  })().finally(() => (refreshing = undefined));
  return refreshing;
}

/** JSON from `path`; an error answer becomes an ApiError unless its status is in `acceptStatuses`. */
export async function api<T>(path: string, init: RequestInit & { acceptStatuses?: number[] } = {}, retried = false): Promise<T> {
  const tokens = currentTokens();
  const headers = new Headers(init.headers);
  if (tokens) headers.set('authorization', `Bearer ${tokens.access_token}`);
  const res = await fetch(path, { ...init, headers });
  if (res.status === 401 && !retried && (await refreshTokens())) return api<T>(path, init, true);
  const body = res.status === 204 ? undefined : await res.json().catch(() => undefined);
  if (!res.ok && !init.acceptStatuses?.includes(res.status)) {
    const error = (body as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw new ApiError(res.status, error?.code ?? 'HTTP_ERROR', error?.message ?? `${path} answered HTTP ${res.status}`);
  }
  return body as T;
}
