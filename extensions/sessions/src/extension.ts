import { randomUUID } from 'node:crypto';
import * as aion from '@aion/extension-api';
import { AionError, ErrorCodes, type HttpRequestData } from '@aion/extension-api';
import type { StorageApi } from '@aion/ext-storage';
import { SessionStore, type MessageRow, type Owner } from './sessionStore.js';
import type { SessionsApi, SyncAnswer } from './api.js';
import { SyncService } from './sync.js';
import {
  checkId,
  checkMessage,
  jsonObjectBody,
  checkTitle,
  decodeCursor,
  deriveTitle,
  encodeCursor,
  messageView,
  sessionView,
  type SessionsConfiguration,
} from './validation.js';

/** A device or an API key acts for its owner; a user for itself. */
function ownerOf(req: HttpRequestData): Owner {
  const p = req.principal;
  if (!p) throw new AionError(ErrorCodes.UNAUTHENTICATED, 'sign in first');
  return { tenant: p.tenant_id, id: typeof p.owner === 'string' ? p.owner : p.sub };
}

function intParam(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new AionError(ErrorCodes.VALIDATION_FAILED, `${name} is a non-negative integer`);
  return n;
}

const room = (sessionId: string) => `session:${sessionId}`;

export async function activate(ctx: aion.ExtensionContext) {
  const config = ctx.configuration.get<SessionsConfiguration>();
  const storage = await aion.extensions.getApi<StorageApi>('aion.storage');
  const store = await SessionStore.open(storage, config.ttlSeconds * 1000);
  const sync = new SyncService(store, config);
  const pageSize = (value: unknown) => Math.min(intParam(value, 'limit') ?? config.pageSize.default, config.pageSize.max) || config.pageSize.default;
  const notFound = (id: string) => new AionError(ErrorCodes.NOT_FOUND, `no session ${id}`);
  const publishMessage = (m: MessageRow) => aion.realtime.publish(room(m.session_id), 'message', messageView(m));
  /** A live session of the caller and one page of its messages: `?after=` (oldest first) or `?before=` (the latest). */
  const sessionWithPage = async (req: HttpRequestData) => {
    const id = req.params.id!;
    const limit = pageSize(req.query.limit);
    const before = intParam(req.query.before, 'before');
    const found = await store.get(ownerOf(req), id, { after: intParam(req.query.after, 'after'), before, limit }, Date.now());
    if (!found) throw notFound(id);
    // The cursor for the next page in the same direction: `after` the newest, or `before` the oldest.
    const edge = before === undefined ? found.messages[found.messages.length - 1] : found.messages[0];
    return {
      session: found.session,
      page: { messages: found.messages.map(messageView), next_cursor: found.messages.length === limit && edge ? edge.seq : null },
    };
  };

  /** One sync exchange for `owner`, as `POST /v1/sessions/sync` answers it. */
  const syncFor = async (owner: Owner, body: unknown): Promise<SyncAnswer> => {
    const result = await sync.sync(owner, body, Date.now());
    for (const m of result.created) publishMessage(m);
    return {
      cursor: result.cursor,
      has_more: result.has_more,
      pushed: result.pushed,
      rejected: result.rejected,
      changes: { sessions: result.changes.sessions.map(sessionView), messages: result.changes.messages.map(messageView) },
    };
  };

  const sweep = async () => {
    const now = Date.now();
    let expired = 0;
    for (;;) {
      const batch = await store.expire(now);
      for (const { ids } of batch) for (const id of ids) aion.realtime.publish(room(id), 'session', { id, deleted_at: now });
      const count = batch.reduce((n, b) => n + b.ids.length, 0);
      expired += count;
      if (count === 0) break;
    }
    const purged = await store.purge(now - config.purgeAfterSeconds * 1000);
    if (expired || purged) ctx.logger.info(`expired ${expired} idle sessions and purged ${purged} old tombstones`);
    return { expired, purged };
  };
  const timer = setInterval(
    () => void sweep().catch((err) => ctx.logger.warn(`the session sweep failed: ${(err as Error).message}`)),
    config.sweepIntervalSeconds * 1000,
  );
  timer.unref();

  const handle = aion.http.handle;
  ctx.subscriptions.push(
    { dispose: () => clearInterval(timer) },
    handle('POST /v1/sessions', async (req) => {
      const owner = ownerOf(req);
      const body = jsonObjectBody(req);
      const id = body.id === undefined ? randomUUID() : checkId(body.id, 'id');
      const title = body.title === undefined ? null : checkTitle(body.title);
      if (body.metadata !== undefined && body.metadata !== null && (typeof body.metadata !== 'object' || Array.isArray(body.metadata)))
        throw new AionError(ErrorCodes.VALIDATION_FAILED, 'metadata is a JSON object');
      const { session, created } = await store.create(owner, { id, title, metadata: body.metadata ? JSON.stringify(body.metadata) : null }, Date.now());
      if (session.owner_id !== owner.id || session.tenant_id !== owner.tenant) throw new AionError(ErrorCodes.CONFLICT, `the id ${id} is taken`);
      if (session.deleted_at !== null) throw new AionError(ErrorCodes.CONFLICT, `session ${id} was deleted`);
      return { status: created ? 201 : 200, body: sessionView(session) };
    }),
    handle('GET /v1/sessions/counts', async (req) => ({
      headers: { 'cache-control': 'no-store' },
      body: await store.counts(req.principal!.tenant_id, Date.now()),
    })),
    handle('GET /v1/sessions', async (req) => {
      const limit = pageSize(req.query.limit);
      const rows = await store.list(ownerOf(req), limit, decodeCursor(req.query.cursor), Date.now());
      return { body: { sessions: rows.map(sessionView), next_cursor: rows.length === limit ? encodeCursor(rows[rows.length - 1]!) : null } };
    }),
    handle('GET /v1/sessions/:id', async (req) => {
      const { session, page } = await sessionWithPage(req);
      return { body: { ...sessionView(session), ...page } };
    }),
    handle('GET /v1/sessions/:id/messages', async (req) => ({ body: (await sessionWithPage(req)).page })),
    handle('PATCH /v1/sessions/:id', async (req) => {
      const id = req.params.id!;
      const body = jsonObjectBody(req);
      if (!('title' in body)) throw new AionError(ErrorCodes.VALIDATION_FAILED, 'send { "title": "…" }');
      const session = await store.rename(ownerOf(req), id, checkTitle(body.title), Date.now());
      if (!session) throw notFound(id);
      aion.realtime.publish(room(id), 'session', sessionView(session));
      return { body: sessionView(session) };
    }),
    handle('DELETE /v1/sessions/:id', async (req) => {
      const id = req.params.id!;
      const now = Date.now();
      if (!(await store.remove(ownerOf(req), id, now))) throw notFound(id);
      aion.realtime.publish(room(id), 'session', { id, deleted_at: now });
      return { status: 204 };
    }),
    handle('POST /v1/sessions/:id/messages', async (req) => {
      const id = req.params.id!;
      const now = Date.now();
      const message = checkMessage(req.body, now, { maxContentBytes: config.maxContentBytes });
      const title = message.role === 'user' ? deriveTitle(message.content, config.titleLength) : null;
      const outcome = await store.append(ownerOf(req), id, message, title, now);
      if (outcome.kind === 'not_found') throw notFound(id);
      if (outcome.kind === 'conflict') throw new AionError(ErrorCodes.CONFLICT, `message id ${message.id} is already used`);
      if (outcome.kind === 'created') publishMessage(outcome.message);
      return { status: outcome.kind === 'created' ? 201 : 200, body: messageView(outcome.message) };
    }),
    handle('POST /v1/sessions/sync', async (req) => ({ body: await syncFor(ownerOf(req), req.body) })),
    // Socket.io rooms `session:<id>`: only the session's owner (or its devices and keys) may join.
    aion.hooks.tap('realtime.authorize', async ({ principal, room: name }: { principal?: aion.Principal | null; room?: string }) => {
      if (typeof name !== 'string' || !name.startsWith('session:')) return undefined;
      if (!principal || !(principal.scopes.includes('sessions:read') || principal.scopes.includes('*'))) return false;
      const owner = { tenant: principal.tenant_id, id: typeof principal.owner === 'string' ? principal.owner : principal.sub };
      return store.isLive(owner, name.slice('session:'.length), Date.now());
    }),
    aion.commands.register('sessions.sweep', () => sweep()),
  );

  const api: SessionsApi = {
    syncFor: (owner: { tenant_id: string; user_id: string }, body: unknown) => {
      if (typeof owner?.tenant_id !== 'string' || typeof owner?.user_id !== 'string')
        throw new AionError(ErrorCodes.VALIDATION_FAILED, 'syncFor needs { tenant_id, user_id }');
      return syncFor({ tenant: owner.tenant_id, id: owner.user_id }, body);
    },
  };
  return api;
}

export function deactivate() {}
