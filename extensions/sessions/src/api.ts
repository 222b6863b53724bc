/**
 * What other extensions and clients of `aion.sessions` use, for `import type`: the wire types of
 * `POST /v1/sessions/sync` (offline sync for devices) and the API the extension returns from `activate`:
 *
 *   const sessions = await aion.extensions.getApi<SessionsApi>('aion.sessions');
 *   const answer = await sessions.syncFor({ tenant_id, user_id }, { cursor, messages });
 */

export interface PushedSession {
  id: string;
  title?: string | null;
  title_updated_at?: number;
  created_at?: number;
  metadata?: Record<string, unknown> | null;
}

export interface PushedMessage {
  id: string;
  session_id: string;
  role: string;
  content: string;
  metadata?: Record<string, unknown> | null;
  created_at?: number;
}

export interface PushedTombstone {
  id: string;
}

export interface SyncRequest {
  cursor?: number;
  limit?: number;
  sessions?: PushedSession[];
  messages?: PushedMessage[];
  tombstones?: PushedTombstone[];
}

/** A pushed item that was not applied, and why. */
export interface Rejection {
  type: 'session' | 'message' | 'tombstone';
  id: string;
  code: string;
  message: string;
}

/** A session as a sync pulls it: deleted ones come as `{ id, deleted_at, seq }`. */
export interface SyncedSession extends PushedSession {
  deleted_at?: number | null;
  seq?: number;
}

/** A message as a sync pulls it. */
export interface SyncedMessage extends PushedMessage {
  seq?: number;
}

/** The answer of one sync exchange. */
export interface SyncAnswer {
  cursor: number;
  has_more: boolean;
  pushed: {
    sessions: { created: number; updated: number; ignored: number };
    messages: { created: number; duplicates: number; ignored: number };
    tombstones: { applied: number };
  };
  rejected: Rejection[];
  /** What changed since `cursor`, in change order. */
  changes: { sessions: SyncedSession[]; messages: SyncedMessage[] };
}

/** The API `aion.sessions` returns from `activate`. */
export interface SessionsApi {
  /**
   * The sync of `POST /v1/sessions/sync` for a user named by the caller: how `aion.devices` syncs a
   * spoke's sessions through its device connection. Privileged: the caller vouches for the user.
   */
  syncFor(owner: { tenant_id: string; user_id: string }, body: SyncRequest): Promise<SyncAnswer>;
}
