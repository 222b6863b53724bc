/** Sessions: list, get, append, live updates, and offline sync for a local store. */
import type { Transport } from './transport.js';
import type { Session, SessionMessage } from './types.js';
import type { LiveConnection } from './live.js';

type Signal = { signal?: AbortSignal };

export interface SyncPush {
  sessions: Array<{ id: string; title?: string | null; title_updated_at?: number; created_at?: number; metadata?: Record<string, unknown> }>;
  messages: Array<{ id: string; session_id: string; role: SessionMessage['role']; content: unknown; metadata?: Record<string, unknown>; created_at?: number }>;
  tombstones: Array<{ id: string }>;
}

export interface SyncAnswer {
  cursor: number;
  has_more: boolean;
  pushed: Record<string, Record<string, number>>;
  rejected: Array<{ type: string; id: string; code: string; message: string }>;
  changes: { sessions: Array<Session & { deleted_at?: number | null }>; messages: SessionMessage[] };
}

/**
 * What a device keeps locally. `sync` pushes `pending()`, then applies what the hub changed; the
 * store saves the cursor with the changes so a crash between pages repeats a page at worst (harmless).
 */
export interface LocalSessionStore {
  cursor(): number | Promise<number>;
  pending(): SyncPush | Promise<SyncPush>;
  /** The hub took (or deliberately ignored) these: stop sending them. */
  pushed(batch: SyncPush, answer: SyncAnswer): void | Promise<void>;
  apply(changes: SyncAnswer['changes'], cursor: number): void | Promise<void>;
}

/** A LocalSessionStore in memory: a starting point, and what the tests use. */
export class MemorySessionStore implements LocalSessionStore {
  readonly sessions = new Map<string, Session & { deleted_at?: number | null }>();
  readonly messages = new Map<string, SessionMessage>();
  private seq = 0;
  private outbox: SyncPush = { sessions: [], messages: [], tombstones: [] };

  /** Records a session written while offline. */
  createSession(session: SyncPush['sessions'][number]): void {
    this.outbox.sessions.push(session);
  }
  appendMessage(message: SyncPush['messages'][number]): void {
    this.outbox.messages.push(message);
  }
  deleteSession(id: string): void {
    this.outbox.tombstones.push({ id });
  }

  cursor() {
    return this.seq;
  }
  pending() {
    return this.outbox;
  }
  pushed(batch: SyncPush) {
    this.outbox = {
      sessions: this.outbox.sessions.filter((s) => !batch.sessions.includes(s)),
      messages: this.outbox.messages.filter((m) => !batch.messages.includes(m)),
      tombstones: this.outbox.tombstones.filter((t) => !batch.tombstones.includes(t)),
    };
  }
  apply(changes: SyncAnswer['changes'], cursor: number) {
    for (const s of changes.sessions) this.sessions.set(s.id, s);
    for (const m of changes.messages) this.messages.set(m.id, m);
    this.seq = cursor;
  }
}

export class SessionsApi {
  constructor(
    private readonly transport: Transport,
    private readonly live: () => LiveConnection,
  ) {}

  list(options: { limit?: number; cursor?: string } & Signal = {}): Promise<{ sessions: Session[]; next_cursor: string | null }> {
    return this.transport.json('GET', '/v1/sessions', undefined, { signal: options.signal, query: { limit: options.limit, cursor: options.cursor } });
  }

  /** Every session, page by page. */
  async *all(options: { pageSize?: number } & Signal = {}): AsyncGenerator<Session> {
    let cursor: string | undefined;
    do {
      const page = await this.list({ limit: options.pageSize, cursor, signal: options.signal });
      yield* page.sessions;
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
  }

  /** With a client-chosen `id`, creating again answers the stored session: safe to retry. */
  create(body: { id?: string; title?: string; metadata?: Record<string, unknown> } = {}, options: Signal = {}): Promise<Session> {
    return this.transport.json('POST', '/v1/sessions', body, { signal: options.signal, idempotent: body.id !== undefined });
  }

  get(
    id: string,
    options: { after?: number; before?: number; limit?: number } & Signal = {},
  ): Promise<Session & { messages: SessionMessage[]; next_cursor: number | null }> {
    return this.transport.json('GET', `/v1/sessions/${encodeURIComponent(id)}`, undefined, {
      signal: options.signal,
      query: { after: options.after, before: options.before, limit: options.limit },
    });
  }

  rename(id: string, title: string | null, options: Signal = {}): Promise<Session> {
    return this.transport.json('PATCH', `/v1/sessions/${encodeURIComponent(id)}`, { title }, { signal: options.signal, idempotent: true });
  }

  delete(id: string, options: Signal = {}): Promise<void> {
    return this.transport.json('DELETE', `/v1/sessions/${encodeURIComponent(id)}`, undefined, { signal: options.signal, idempotent: true });
  }

  /** Appends a message; with a client-chosen `id` a repeat answers the stored one, so it is retried safely. */
  append(
    sessionId: string,
    message: { id?: string; role: SessionMessage['role']; content: unknown; metadata?: Record<string, unknown>; created_at?: number },
    options: Signal = {},
  ): Promise<SessionMessage> {
    return this.transport.json('POST', `/v1/sessions/${encodeURIComponent(sessionId)}/messages`, message, {
      signal: options.signal,
      idempotent: message.id !== undefined,
    });
  }

  /**
   * Live updates of one session: `onMessage` for every message appended (by anyone, REST or sync),
   * `onSession` for a rename or deletion. Resolves once subscribed; call the answer to stop.
   */
  subscribe(
    sessionId: string,
    handlers: { onMessage?: (m: SessionMessage) => void; onSession?: (s: Partial<Session> & { id: string }) => void },
  ): Promise<() => void> {
    return this.live().subscribe(`session:${sessionId}`, {
      message: (m) => {
        if ((m as SessionMessage).session_id === sessionId) handlers.onMessage?.(m as SessionMessage);
      },
      session: (s) => {
        if ((s as Session).id === sessionId) handlers.onSession?.(s as Session);
      },
    });
  }

  /**
   * Offline sync: pushes what `store` wrote while away and pulls what changed on the hub since its
   * cursor, page by page. Idempotent on the hub, so a lost answer is retried safely.
   */
  async sync(
    store: LocalSessionStore,
    options: { limit?: number } & Signal = {},
  ): Promise<{ cursor: number; pages: number; rejected: SyncAnswer['rejected'] }> {
    let push = await store.pending();
    const rejected: SyncAnswer['rejected'] = [];
    for (let pages = 1; ; pages++) {
      const body = { cursor: await store.cursor(), ...push, limit: options.limit };
      const answer = await this.transport.json<SyncAnswer>('POST', '/v1/sessions/sync', body, { signal: options.signal, idempotent: true });
      await store.pushed(push, answer);
      await store.apply(answer.changes, answer.cursor);
      rejected.push(...answer.rejected);
      if (!answer.has_more) return { cursor: answer.cursor, pages, rejected };
      push = { sessions: [], messages: [], tombstones: [] };
    }
  }
}
