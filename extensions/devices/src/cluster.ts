import { randomUUID } from 'node:crypto';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';
import { AionError, type Logger, type Principal } from '@aion/extension-api';
import { DeviceErrorCodes, type ExposedModel, type ExposedSkill } from './contract.js';

/** A call one hub hands to the hub that holds the device's connection. */
export interface ForwardedCall {
  tenant: string;
  device: string;
  skill: string;
  args: unknown;
  principal: Principal;
  timeoutMs: number;
  requestId?: string;
}

type CallAnswer =
  | { ok: true; result: unknown; durationMs: number }
  | { ok: false; code: string; message: string; status?: number; headers?: Record<string, string> }
  | null;

/** What Redis says about a device another hub holds. */
export interface Presence {
  hub: string;
  user_id: string;
  at: number;
  protocol_version: number;
  skills: Array<Pick<ExposedSkill, 'id' | 'title' | 'description' | 'tags' | 'scope'>>;
  /** The models the device offers its owner (absent from hubs of an earlier version). */
  models?: ExposedModel[];
}

/** A model's answer one hub asks of the hub that holds the device: the request as the router gave it. */
export interface ForwardedChat {
  tenant: string;
  device: string;
  /** The device's own model id. */
  model: string;
  /** The chat request, without its model and caller. */
  request: Record<string, unknown>;
  /** The owner the answer is for. */
  user_id: string;
  timeoutMs?: number;
}

/** What the holding hub streams back: that it took the answer, its events, then its end. */
type ChatFrame = { origin: string; stream: string; started?: true; event?: unknown; end?: true };

const CALL_EVENT = 'aion:device-call';
const CHAT_EVENT = 'aion:device-chat';
const CHAT_FRAME_EVENT = 'aion:device-chat-frame';
const CHAT_CANCEL_EVENT = 'aion:device-chat-cancel';
const MODELS_CHANGED_EVENT = 'aion:device-models-changed';

/**
 * Several hubs on one Redis: device presence as keys with an expiry (a crashed hub's devices fall
 * offline on their own), and calls to a device held by another hub carried by socket.io's Redis
 * adapter (`serverSideEmit` with acknowledgements), never a home-made channel.
 */
export class HubCluster {
  readonly hubId = randomUUID();
  private readonly io: Server;
  private readonly refresh: NodeJS.Timeout;
  private readonly local = new Map<string, () => Presence>();
  /** Answers this hub asked another hub for, by stream id: their frames go there. */
  private readonly chatsAsked = new Map<string, { started(): void; push(event: unknown): void; end(): void }>();
  /** Answers this hub streams for another hub, by stream id: a cancel from the asker stops them. */
  private readonly chatsServed = new Map<string, () => void>();

  private constructor(
    private readonly redis: Redis,
    private readonly subscriber: Redis,
    private readonly prefix: string,
    private readonly ttlMs: number,
    requestsTimeoutMs: number,
    private readonly logger: Logger,
  ) {
    this.io = new Server({ serveClient: false });
    this.io.adapter(createAdapter(redis, subscriber, { key: `${prefix}:devices:io`, requestsTimeout: requestsTimeoutMs }));
    // Presence is refreshed well inside its expiry; a hub that stops refreshing (crash) loses its devices.
    this.refresh = setInterval(() => void this.refreshAll(), Math.max(50, Math.floor(ttlMs / 3)));
    this.refresh.unref();
  }

  static async connect(options: { url: string; prefix: string; presenceTtlMs: number; requestsTimeoutMs: number; logger: Logger }): Promise<HubCluster> {
    const redis = new Redis(options.url, { lazyConnect: true, maxRetriesPerRequest: 2 });
    const subscriber = redis.duplicate();
    redis.on('error', () => undefined);
    subscriber.on('error', () => undefined);
    await Promise.all([redis.connect(), subscriber.connect()]);
    return new HubCluster(redis, subscriber, options.prefix, options.presenceTtlMs, options.requestsTimeoutMs, options.logger);
  }

  private presenceKey(tenant: string, device: string): string {
    return `${this.prefix}:devices:presence:${tenant}/${device}`;
  }

  /** Answers calls other hubs forward to devices connected here. */
  serve(handler: (call: ForwardedCall) => Promise<{ result: unknown; durationMs: number } | undefined>): void {
    this.io.on(CALL_EVENT as never, (call: ForwardedCall, ack: (answer: CallAnswer) => void) => {
      handler(call).then(
        (answer) => ack(answer ? { ok: true, ...answer } : null),
        (err: AionError) => ack({ ok: false, code: err.code ?? 'INTERNAL', message: err.message, status: err.status, headers: err.headers }),
      );
    });
  }

  /**
   * Answers chats other hubs forward to devices connected here: `chat` runs the answer (undefined when
   * the device is not here), each event goes back to the asking hub as it comes, then the end.
   */
  serveChats(chat: (call: ForwardedChat, cancel: { onCancel(stop: () => void): void }) => AsyncIterable<unknown> | undefined): void {
    this.io.on(CHAT_EVENT as never, (call: ForwardedChat & { origin: string; stream: string }, ack: (taken: boolean) => void) => {
      void (async () => {
        // Only the hub Redis names as the device's holder answers: a hub still holding a half-open
        // connection after the device reconnected elsewhere would otherwise answer too.
        if (!(await this.holds(call.tenant, call.device))) return ack(false);
        let stop: (() => void) | undefined;
        let events: AsyncIterable<unknown> | undefined;
        try {
          events = chat(call, { onCancel: (fn) => (stop = fn) });
        } catch (err) {
          this.logger.warn(`a chat forwarded by hub ${call.origin} failed to start: ${(err as Error).message}`);
        }
        ack(events !== undefined);
        if (!events) return;
        this.chatsServed.set(call.stream, () => stop?.());
        const frame = (f: Omit<ChatFrame, 'origin' | 'stream'>) =>
          this.io.serverSideEmit(CHAT_FRAME_EVENT as never, { origin: call.origin, stream: call.stream, ...f } as never);
        // The first frame tells the asker this hub took the answer, whatever became of the acknowledgement.
        frame({ started: true });
        try {
          for await (const event of events) frame({ event });
        } catch (err) {
          frame({
            event: { type: 'error', code: 'PROVIDER_UNAVAILABLE', message: `the answer failed on its hub: ${(err as Error).message}`, retryable: true },
          });
        } finally {
          this.chatsServed.delete(call.stream);
          frame({ end: true });
        }
      })().catch((err) => this.logger.warn(`a chat forwarded by hub ${call.origin} failed: ${(err as Error).message}`));
    });
    this.io.on(CHAT_FRAME_EVENT as never, (f: ChatFrame) => {
      // Every hub hears every frame (the adapter broadcasts); only the asker takes it.
      if (f.origin !== this.hubId) return;
      const asked = this.chatsAsked.get(f.stream);
      if (!asked) return;
      if (f.started) asked.started();
      else if (f.end) asked.end();
      else asked.push(f.event);
    });
    this.io.on(CHAT_CANCEL_EVENT as never, ({ stream }: { stream: string }) => this.chatsServed.get(stream)?.());
  }

  /** Whether Redis names this hub as the one holding the device's connection. */
  async holds(tenant: string, device: string): Promise<boolean> {
    return (await this.presence(tenant, device))?.hub === this.hubId;
  }

  /**
   * Asks the hub holding the device for a model's answer; its events reach `sink` as they come. Not
   * taken when no hub took it (the device left, or its hub died). `cancel` stops the answer there.
   */
  async forwardChat(call: ForwardedChat, sink: { push(event: unknown): void; end(): void }): Promise<{ taken: boolean; cancel(): void }> {
    const stream = randomUUID();
    let started!: () => void;
    const taken = new Promise<true>((resolve) => (started = () => resolve(true)));
    this.chatsAsked.set(stream, {
      started,
      push: (event) => sink.push(event),
      end: () => {
        this.chatsAsked.delete(stream);
        sink.end();
      },
    });
    const cancel = () => {
      this.chatsAsked.delete(stream);
      // Sent even when nobody seemed to take it: a hub that took it late stops too.
      this.io.serverSideEmit(CHAT_CANCEL_EVENT as never, { stream } as never);
    };
    // Taken as soon as the holder's first frame arrives; not taken when every hub said no, or when none
    // answered (a dead hub never acknowledges and the adapter gives up after its request timeout).
    const acknowledged = this.io
      .serverSideEmitWithAck(CHAT_EVENT as never, { ...call, origin: this.hubId, stream } as never)
      .then((answers) => ((answers as boolean[]).some((a) => a === true) ? taken : false))
      .catch(() => false as const);
    if (await Promise.race([taken, acknowledged])) return { taken: true, cancel };
    cancel();
    return { taken: false, cancel };
  }

  /** Tells every hub that a device's models came or went, so each lists them again. */
  modelsChanged(): void {
    this.io.serverSideEmit(MODELS_CHANGED_EVENT as never);
  }

  onModelsChanged(listener: () => void): void {
    this.io.on(MODELS_CHANGED_EVENT as never, listener);
  }

  async announce(tenant: string, device: string, presence: () => Presence): Promise<void> {
    this.local.set(`${tenant}/${device}`, presence);
    await this.redis
      .set(this.presenceKey(tenant, device), JSON.stringify(presence()), 'PX', this.ttlMs)
      .catch((err) => this.logger.warn(`device presence not written to Redis: ${(err as Error).message}`));
  }

  async withdraw(tenant: string, device: string): Promise<void> {
    this.local.delete(`${tenant}/${device}`);
    const key = this.presenceKey(tenant, device);
    // Only this hub's own entry: the device may already be connected to another hub.
    await this.redis
      .eval(
        `if redis.call('GET', KEYS[1]) and cjson.decode(redis.call('GET', KEYS[1])).hub == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`,
        1,
        key,
        this.hubId,
      )
      .catch(() => undefined);
  }

  private async refreshAll(): Promise<void> {
    if (this.local.size === 0) return;
    const pipeline = this.redis.pipeline();
    for (const [key, presence] of this.local) {
      const [tenant, ...rest] = key.split('/');
      pipeline.set(this.presenceKey(tenant!, rest.join('/')), JSON.stringify(presence()), 'PX', this.ttlMs);
    }
    await pipeline.exec().catch(() => undefined);
  }

  async presence(tenant: string, device: string): Promise<Presence | undefined> {
    const raw = await this.redis.get(this.presenceKey(tenant, device)).catch(() => null);
    return raw ? (JSON.parse(raw) as Presence) : undefined;
  }

  /** Every device online on any hub that offers models, with its tenant: what the devices provider lists. */
  async modelPresences(): Promise<Array<{ tenant: string; device: string; presence: Presence }>> {
    const out: Array<{ tenant: string; device: string; presence: Presence }> = [];
    const head = `${this.prefix}:devices:presence:`;
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${head}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length === 0) continue;
      const values = await this.redis.mget(...keys);
      keys.forEach((key, i) => {
        const presence = values[i] ? (JSON.parse(values[i]!) as Presence) : undefined;
        if (!presence?.models?.length) return;
        const [tenant, ...device] = key.slice(head.length).split('/');
        out.push({ tenant: tenant!, device: device.join('/'), presence });
      });
    } while (cursor !== '0');
    return out;
  }

  /** Every device of the tenant online on any hub. */
  async presences(tenant: string): Promise<Map<string, Presence>> {
    const out = new Map<string, Presence>();
    const match = `${this.prefix}:devices:presence:${tenant}/*`;
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', match, 'COUNT', 1000);
      cursor = next;
      if (keys.length === 0) continue;
      const values = await this.redis.mget(...keys);
      keys.forEach((key, i) => values[i] && out.set(key.slice(key.lastIndexOf('/') + 1), JSON.parse(values[i]!) as Presence));
    } while (cursor !== '0');
    return out;
  }

  /** Runs the call on whichever hub holds the device; DEVICE_UNAVAILABLE when none does. */
  async forward(call: ForwardedCall): Promise<{ result: unknown; durationMs: number }> {
    let responses: CallAnswer[];
    try {
      responses = (await this.io.serverSideEmitWithAck(CALL_EVENT as never, call as never)) as CallAnswer[];
    } catch (err) {
      // A hub that died mid-call never acknowledges; the adapter gives up after its request timeout.
      throw new AionError(DeviceErrorCodes.DEVICE_UNAVAILABLE, `device ${call.device} did not answer through its hub: ${(err as Error).message}`, {
        status: 503,
      });
    }
    const answer = responses.find((r) => r !== null && r !== undefined);
    if (!answer) throw new AionError(DeviceErrorCodes.DEVICE_UNAVAILABLE, `device ${call.device} is offline`, { status: 503 });
    if (!answer.ok) throw new AionError(answer.code, answer.message, { status: answer.status, headers: answer.headers });
    return { result: answer.result, durationMs: answer.durationMs };
  }

  async close(): Promise<void> {
    clearInterval(this.refresh);
    for (const key of [...this.local.keys()]) {
      const [tenant, ...rest] = key.split('/');
      await this.withdraw(tenant!, rest.join('/'));
    }
    // No HTTP server is attached (devices reach hubs through the kernel's edge): only the adapter needs closing.
    await Promise.resolve((this.io.of('/').adapter as unknown as { close?: () => unknown }).close?.()).catch(() => undefined);
    this.redis.disconnect();
    this.subscriber.disconnect();
  }
}
