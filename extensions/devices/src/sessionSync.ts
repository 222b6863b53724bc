import type { Logger } from '@aion/extension-api';
import type { SyncedMessage, SyncedSession } from '@aion/ext-sessions';
import type { SessionsSyncAnswer, SessionsSyncRequest } from './contract.js';

/** Where a spoke keeps its two cursors (its extension state). */
export interface CursorStore {
  get(): Promise<{ local: number; hub: number }>;
  set(cursors: { local: number; hub: number }): Promise<void>;
}

export interface SessionSyncOptions {
  /** One sync exchange with the spoke's own sessions (its local `aion.sessions`). */
  local(body: SessionsSyncRequest): Promise<SessionsSyncAnswer>;
  /** One sync exchange with the hub, through the device connection. */
  hub(body: SessionsSyncRequest): Promise<SessionsSyncAnswer>;
  cursors: CursorStore;
  logger: Logger;
  pageSize?: number;
}

/** A change as the other side accepts it in a push: sessions, their messages, and tombstones. */
function asPush(changes: { sessions: SyncedSession[]; messages: SyncedMessage[] }): Pick<SessionsSyncRequest, 'sessions' | 'messages' | 'tombstones'> {
  const live = changes.sessions.filter((s) => s.deleted_at === null || s.deleted_at === undefined);
  return {
    sessions: live.map((s) => ({
      id: s.id,
      title: s.title ?? null,
      title_updated_at: s.title_updated_at,
      created_at: s.created_at,
      metadata: s.metadata ?? null,
    })),
    messages: changes.messages.map((m) => ({
      id: m.id,
      session_id: m.session_id,
      role: m.role,
      content: m.content,
      metadata: m.metadata ?? null,
      created_at: m.created_at,
    })),
    tombstones: changes.sessions.filter((s) => s.deleted_at !== null && s.deleted_at !== undefined).map((s) => ({ id: s.id })),
  };
}

/**
 * Two-way sessions sync between a spoke and its hub over the existing sync API on both sides: what
 * changed locally since the local cursor is pushed to the hub; what the hub answers as changed since
 * the hub cursor is pushed locally. Both pushes are idempotent (ids are the device's own), cursors are
 * each side's server sequence, so replays and clock skew neither lose nor duplicate anything.
 */
export class SessionSync {
  private running?: Promise<SessionSyncReport>;
  private again = false;

  constructor(private readonly options: SessionSyncOptions) {}

  /** Runs a sync now; a request during a run makes one more run after it. */
  run(): Promise<SessionSyncReport> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.loop().finally(() => (this.running = undefined));
    return this.running;
  }

  private async loop(): Promise<SessionSyncReport> {
    const total: SessionSyncReport = { pushed: 0, pulled: 0, rounds: 0 };
    do {
      this.again = false;
      const r = await this.once();
      total.pushed += r.pushed;
      total.pulled += r.pulled;
      total.rounds += r.rounds;
    } while (this.again);
    return total;
  }

  private async once(): Promise<SessionSyncReport> {
    const limit = this.options.pageSize ?? 200;
    const report: SessionSyncReport = { pushed: 0, pulled: 0, rounds: 0 };
    let { local, hub } = await this.options.cursors.get();
    for (let round = 0; round < 1000; round++) {
      // What changed here since the last sync (a pull from the local store, nothing pushed).
      const mine = await this.options.local({ cursor: local, limit });
      const push = asPush(mine.changes);
      const theirs = await this.options.hub({ cursor: hub, limit, ...push });
      if (theirs.rejected.length)
        this.options.logger.warn(`the hub rejected ${theirs.rejected.length} synced items`, { rejected: theirs.rejected.slice(0, 5) });
      // What changed on the hub, applied here; the pull part of this answer is not needed.
      const applied = await this.options.local({ cursor: Number.MAX_SAFE_INTEGER, limit: 1, ...asPush(theirs.changes) });
      local = mine.cursor;
      hub = theirs.cursor;
      await this.options.cursors.set({ local, hub });
      report.rounds++;
      report.pushed += push.sessions!.length + push.messages!.length + push.tombstones!.length;
      report.pulled += applied.pushed.sessions.created + applied.pushed.sessions.updated + applied.pushed.messages.created + applied.pushed.tombstones.applied;
      if (!mine.has_more && !theirs.has_more) break;
    }
    return report;
  }
}

export interface SessionSyncReport {
  pushed: number;
  pulled: number;
  rounds: number;
}
