import type { Redis } from 'ioredis';
import type { Logger } from '@aion/extension-api';
import type { AuthStore } from './authStore.js';

/** Access tokens that must stop passing before they expire: every token of some sign-ins (refresh-token families) or of some subjects (revoked devices). */
export interface Revocation {
  kind: 'family' | 'subject';
  ids: string[];
  /** Epoch milliseconds after which every token it covers has expired on its own. */
  until: number;
}

// Another instance checking the token may have a clock a little behind the one that revoked it.
const CLOCK_SKEW_MS = 5_000;
const SWEEP_INTERVAL_MS = 60_000;

/** What the hot path reads: two Map lookups per authenticated request, entries kept only while a token they cover can still be valid. */
export class RevocationList {
  private readonly families = new Map<string, number>();
  private readonly subjects = new Map<string, number>();

  add(revocation: Revocation): void {
    const entries = revocation.kind === 'family' ? this.families : this.subjects;
    for (const id of revocation.ids) if ((entries.get(id) ?? 0) < revocation.until) entries.set(id, revocation.until);
  }

  rejects(token: { sub: string; fam?: string }, now = Date.now()): boolean {
    if ((this.subjects.get(token.sub) ?? 0) > now) return true;
    return token.fam !== undefined && (this.families.get(token.fam) ?? 0) > now;
  }

  sweep(now = Date.now()): void {
    for (const entries of [this.families, this.subjects]) for (const [id, until] of entries) if (until <= now) entries.delete(id);
  }

  get size(): number {
    return this.families.size + this.subjects.size;
  }
}

function isRevocation(value: unknown): value is Revocation {
  const r = value as Revocation;
  return (r?.kind === 'family' || r?.kind === 'subject') && Array.isArray(r.ids) && r.ids.every((id) => typeof id === 'string') && Number.isFinite(r.until);
}

export interface RevocationsOptions {
  store: AuthStore;
  accessTokenTtlSeconds: number;
  logger: Logger;
  /** The instance's Redis connection: revocations are announced on `channel` and heard on a second connection. */
  redis?: Redis;
  channel: string;
}

/**
 * Keeps this instance's RevocationList current. The database is the record (revoked refresh tokens and
 * devices), read at start and whenever the Redis subscription (re)connects; Redis pub/sub carries each
 * new revocation to the other instances as it happens, so no request waits on Redis.
 */
export class Revocations {
  readonly list = new RevocationList();
  private readonly ttlMs: number;
  private readonly subscriber?: Redis;
  private readonly sweeper: NodeJS.Timeout;
  private unannounced: Revocation[] = [];
  private readonly announcePending = () => void this.announceUnannounced();

  private constructor(private readonly options: RevocationsOptions) {
    this.ttlMs = options.accessTokenTtlSeconds * 1000;
    this.sweeper = setInterval(() => this.list.sweep(), SWEEP_INTERVAL_MS);
    this.sweeper.unref();
    if (options.redis) {
      options.redis.on('ready', this.announcePending);
      // Its own connection: a subscribed connection can run no other command.
      this.subscriber = options.redis.duplicate({ lazyConnect: true, enableOfflineQueue: false, autoResubscribe: false });
      this.subscriber.on('error', () => undefined);
      this.subscriber.on('ready', () => void this.subscribe());
      this.subscriber.on('message', (channel: string, message: string) => this.heard(channel, message));
    }
  }

  static async start(options: RevocationsOptions): Promise<Revocations> {
    const revocations = new Revocations(options);
    await revocations.catchUp();
    revocations.subscriber
      ?.connect()
      .catch((err: Error) =>
        options.logger.warn(`Redis is unreachable (${err.message}); revoked access tokens are refused on other instances once it answers`),
      );
    return revocations;
  }

  /** Whether an access token's sign-in or subject was revoked. */
  rejects(token: { sub: string; fam?: string }): boolean {
    return this.list.rejects(token);
  }

  /** After the database has recorded it: this instance refuses the tokens at once, the others when the announcement arrives. */
  async revoke(kind: Revocation['kind'], ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    const revocation: Revocation = { kind, ids, until: Date.now() + this.ttlMs + CLOCK_SKEW_MS };
    this.list.add(revocation);
    await this.announce(revocation);
  }

  private async announce(revocation: Revocation): Promise<void> {
    const redis = this.options.redis;
    if (!redis) return;
    try {
      await redis.publish(this.options.channel, JSON.stringify(revocation));
    } catch (err) {
      this.unannounced.push(revocation);
      this.options.logger.warn(`could not announce a revocation through Redis (${(err as Error).message}); other instances learn it when Redis answers again`);
    }
  }

  private async announceUnannounced(): Promise<void> {
    const pending = this.unannounced.filter((r) => r.until > Date.now());
    this.unannounced = [];
    for (const revocation of pending) await this.announce(revocation);
  }

  /** Subscribes, then reads what was revoked while this connection was away. */
  private async subscribe(): Promise<void> {
    try {
      await this.subscriber!.subscribe(this.options.channel);
      await this.catchUp();
    } catch (err) {
      this.options.logger.warn(`subscribing to revocations through Redis failed: ${(err as Error).message}`);
    }
  }

  private heard(channel: string, message: string): void {
    if (channel !== this.options.channel) return;
    try {
      const revocation: unknown = JSON.parse(message);
      if (isRevocation(revocation)) this.list.add(revocation);
      else this.options.logger.warn('ignored a malformed message on the revocations channel');
    } catch {
      this.options.logger.warn('ignored a message on the revocations channel that is not JSON');
    }
  }

  /** Revocations recent enough that a token they cover may still be unexpired, from the database. */
  private async catchUp(): Promise<void> {
    const since = Date.now() - this.ttlMs - CLOCK_SKEW_MS;
    const { families, devices } = await this.options.store.revokedSince(since);
    for (const { id, revoked_at } of families) this.list.add({ kind: 'family', ids: [id], until: revoked_at + this.ttlMs + CLOCK_SKEW_MS });
    for (const { id, revoked_at } of devices) this.list.add({ kind: 'subject', ids: [id], until: revoked_at + this.ttlMs + CLOCK_SKEW_MS });
  }

  dispose(): void {
    clearInterval(this.sweeper);
    this.options.redis?.off('ready', this.announcePending);
    this.subscriber?.disconnect();
  }
}
