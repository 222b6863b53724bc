/**
 * Connecting to a hub as a device (a spoke): the hub calls this side's skills. The wire protocol is
 * the `remote` host's: a hello/welcome handshake, then JSON-RPC 2.0, one message per WebSocket text
 * frame, with a frame cap, pings from the hub, a watchdog for a silent hub, and reconnects with
 * jittered exponential backoff. `aion spoke` runs on this same code.
 */
import { AionApiError } from './errors.js';

/** Bumped with any incompatible change; hub and device must speak the same version. */
/** 2: a model's answer streams under the hub's credit (`$deviceChatCredit`). */
export const DEVICE_PROTOCOL_VERSION = 2;
export const DEVICE_CONNECT_PATH = '/v1/devices/connect';
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;

/** The JSON-RPC error code that carries an Aion error (`data.code` is its stable code). */
const AION_RPC_ERROR = -32050;
const METHOD_NOT_FOUND = -32601;

/** The stable codes of the device protocol, shared by the hub (`aion.devices`) and every device. */
export const DeviceErrorCodes = {
  /** 503: the device is offline, dropped mid-call, or answered nothing within its liveness timeout. */
  DEVICE_UNAVAILABLE: 'DEVICE_UNAVAILABLE',
  /** The device speaks another protocol version; the message names both. */
  DEVICE_PROTOCOL_MISMATCH: 'DEVICE_PROTOCOL_MISMATCH',
  /** A frame over the cap (default 1 MiB). */
  FRAME_TOO_LARGE: 'FRAME_TOO_LARGE',
  /** A frame that is not JSON-RPC 2.0, or a handshake that is not one. */
  MALFORMED_FRAME: 'MALFORMED_FRAME',
  /** 401: a device token that is forged, malformed or revoked. */
  DEVICE_TOKEN_INVALID: 'DEVICE_TOKEN_INVALID',
  /** 403: a device claims a name its token does not carry. */
  DEVICE_NAME_MISMATCH: 'DEVICE_NAME_MISMATCH',
  /** 409: the name, once normalized, belongs to another live device. */
  DEVICE_NAME_TAKEN: 'DEVICE_NAME_TAKEN',
  /** 404: no such device, or no such skill on it. */
  DEVICE_NOT_FOUND: 'DEVICE_NOT_FOUND',
  /** 429: too many calls queued for one device; `Retry-After` says when to try again. */
  DEVICE_BUSY: 'DEVICE_BUSY',
  /** 504: the device did not answer before the call's deadline. */
  DEVICE_TIMEOUT: 'DEVICE_TIMEOUT',
} as const;

/** Codes of the wider API a device connection also meets: a token without a scope, and stopping. */
const FORBIDDEN = 'FORBIDDEN';
const SHUTTING_DOWN = 'SHUTTING_DOWN';

/** Refusals no retry can fix: the connection stops and says why. */
const FATAL = new Set<string>([
  DeviceErrorCodes.DEVICE_PROTOCOL_MISMATCH,
  DeviceErrorCodes.DEVICE_TOKEN_INVALID,
  DeviceErrorCodes.DEVICE_NAME_MISMATCH,
  FORBIDDEN,
]);

/** A skill as the device announces it: enough for the hub to list it and check calls before forwarding them. */
export interface DeviceSkill {
  id: string;
  title: string;
  description: string;
  tags: string[];
  inputSchema: Record<string, unknown>;
  outputSchema?: Record<string, unknown>;
  /** The scope a caller needs besides `skills:execute`. */
  scope?: string;
}

/** The principal a call runs as: the hub's caller, within the device's scopes. */
export interface DeviceCaller {
  sub: string;
  type: string;
  tenant_id: string;
  owner: string;
  scopes: string[];
}

/** A call of one of this device's skills, as the hub forwards it. */
export interface DeviceCall {
  skill: string;
  args: unknown;
  caller: DeviceCaller;
  /** Correlates the call with the hub's request in both logs. */
  correlationId: string;
  /** Epoch milliseconds after which the hub has already failed the call. */
  deadline: number;
}

/** A model the device offers its hub: the hub's router may send it its owner's requests (`devices/<device>/<id>`). */
export interface DeviceModel {
  id: string;
  displayName?: string;
  /** Tokens of prompt plus answer the model accepts. */
  contextWindow?: number;
  /** How well it serves each intent, 0 to 1 (`{ chat: 0.5 }` when unsaid). */
  capabilities?: Record<string, number>;
  /** Accepts tools and answers with tool calls. */
  tools?: boolean;
  streaming?: boolean;
}

/**
 * A chat with one of the device's models, as the hub forwards it. `request` is the router's chat
 * request (`messages`, `tools`, `maxTokens`, … as `@aion/provider-kit`'s `ChatRequest`, without `model`).
 */
export interface DeviceChatCall {
  model: string;
  request: Record<string, unknown>;
  caller: DeviceCaller;
  correlationId: string;
  deadline: number;
  /** Names this answer's `$deviceChatEvent` notifications, so the hub knows which call they belong to. */
  stream: string;
  /**
   * How many events the device may send before the hub grants more (`$deviceChatCredit`): the stream's
   * backpressure, as the other hosts' streams have. Absent (an older hub): no limit.
   */
  credit?: number;
}

/** One event of a device's answer: `token`, `tool_call`, `usage`, then `done` or `error` (provider-kit's `ProviderEvent`). */
export type DeviceChatEvent = { type: string; [field: string]: unknown };

/**
 * What one streamed answer may still send before the hub grants more. Past it, events wait here, in
 * order, until the hub grants more: the window holds even for a producer that does not await `emit`.
 */
class ChatCredit {
  private readonly backlog: Array<{ write: () => void; sent: () => void }> = [];

  constructor(private left: number) {}

  /** Writes now while credit is left; otherwise once the hub grants more, settling the promise then. */
  send(write: () => void): Promise<void> | undefined {
    if (this.left > 0 && this.backlog.length === 0) {
      this.left--;
      write();
      return undefined;
    }
    return new Promise<void>((sent) => this.backlog.push({ write, sent }));
  }

  grant(n: number): void {
    if (n > 0) this.left += n;
    while (this.left > 0 && this.backlog.length > 0) {
      const next = this.backlog.shift()!;
      this.left--;
      next.write();
      next.sent();
    }
  }

  /** Settles once every waiting event is sent (or dropped): the answer's reply must not overtake its events. */
  drained(): Promise<void> | undefined {
    const last = this.backlog.at(-1);
    if (!last) return undefined;
    return new Promise<void>((resolve) => {
      const sent = last.sent;
      last.sent = () => (sent(), resolve());
    });
  }

  /** The call ended (cancelled): what waits is never sent, and its producers go on. */
  drop(): void {
    for (const waiting of this.backlog.splice(0)) waiting.sent();
  }
}

/** The little of a WebSocket this needs: the `ws` package's and the browser's both fit. */
export interface DeviceSocket {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  /** Drops the connection without a closing handshake, when the runtime has it (`ws`). */
  terminate?(): void;
  addEventListener(type: 'open' | 'close' | 'error', listener: () => void): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
}

export type DeviceState = 'connecting' | 'online' | 'offline' | 'refused' | 'stopped';

export interface DeviceLogger {
  info?(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export interface DeviceConnectionOptions {
  /** Hubs to try, in order (`http://…`); a failed attempt moves on to the next. */
  hubUrls: string[];
  /** The device token `aion devices add` printed. */
  token: string;
  /** The device's name; the hub checks it against the token. */
  device: string;
  /** What the device exposes now; asked at every connect and by `announceSkills`. */
  skills: () => DeviceSkill[] | Promise<DeviceSkill[]>;
  /** Runs a call; `signal` aborts when the hub cancels it. An error's `code` reaches the hub's caller (sanitized). */
  execute: (call: DeviceCall, signal: AbortSignal) => Promise<{ result: unknown; durationMs?: number }>;
  /** Models the device offers (its token needs `models:expose`); asked at every connect. None by default. */
  models?: () => DeviceModel[] | Promise<DeviceModel[]>;
  /**
   * Answers a chat with one of those models: `emit` each event as it is produced, ending with `done` or
   * `error`; `signal` aborts when the hub cancels (its caller went away, or it gave up waiting).
   */
  chat?: (call: DeviceChatCall, emit: (event: DeviceChatEvent) => void | Promise<void>, signal: AbortSignal) => Promise<void>;
  /**
   * Opens the WebSocket with the Authorization header. Browsers' WebSocket cannot send headers, so in
   * Node pass the `ws` package's: `(url, headers) => new WebSocket(url, { headers })`.
   */
  createSocket: (url: string, headers: Record<string, string>) => DeviceSocket;
  logger?: DeviceLogger;
  maxFrameBytes?: number;
  /** Backoff between reconnects: full jitter between 0 and min(maxMs, baseMs × 2^attempt). */
  backoff?: { baseMs: number; maxMs: number };
  /** What the hello frame says; the defaults fit the hub of this client's version. */
  protocolVersion?: number;
  aionVersion?: string;
  manifests?: Array<{ id: string; version: string }>;
}

interface RpcMessage {
  jsonrpc: '2.0';
  id?: number | string | null;
  method?: string;
  params?: any;
  result?: unknown;
  error?: { code: number; message: string; data?: { code?: string; details?: unknown; status?: number } };
}

const encoder = new TextEncoder();
/** UTF-8 length, computed only when it could matter (a character is at most 3 bytes in UTF-16 terms). */
const byteLength = (text: string, max: number) => (text.length * 3 <= max ? text.length : encoder.encode(text).length);

function errorOf(code: string, message: string): AionApiError {
  return new AionApiError(code, message);
}

/**
 * One device's connection to its hub. `start()` connects and keeps reconnecting until `stop()`;
 * `waitOnline()` resolves once the hub welcomed it (or rejects when the hub refused it for good).
 */
export class DeviceConnection {
  state: DeviceState = 'offline';
  refusal?: { code: string; message: string };
  /** Successful connects so far. */
  connects = 0;
  private socket?: DeviceSocket;
  private attempt = 0;
  private hubIndex = 0;
  private stopped = false;
  private retryTimer?: ReturnType<typeof setTimeout>;
  private watchdog?: ReturnType<typeof setInterval>;
  private lastHeardAt = 0;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(value: unknown): void; reject(error: unknown): void }>();
  private readonly running = new Map<string | number, AbortController>();
  /** What each streamed answer may still send, by stream id, and who waits for more. */
  private readonly credits = new Map<string, ChatCredit>();
  private readonly listeners = new Set<(state: DeviceState) => void>();

  constructor(private readonly options: DeviceConnectionOptions) {
    if (options.hubUrls.length === 0) throw errorOf('VALIDATION_FAILED', 'name at least one hub URL');
  }

  onState(listener: (state: DeviceState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  waitOnline(timeoutMs = 30_000): Promise<void> {
    if (this.state === 'online') return Promise.resolve();
    if (this.state === 'refused') return Promise.reject(errorOf(this.refusal!.code, this.refusal!.message));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => (off(), reject(errorOf(DeviceErrorCodes.DEVICE_UNAVAILABLE, `not connected to ${this.options.hubUrls.join(' or ')} within ${timeoutMs} ms`))),
        timeoutMs,
      );
      const off = this.onState((s) => {
        if (s === 'online') clearTimeout(timer), off(), resolve();
        if (s === 'refused') clearTimeout(timer), off(), reject(errorOf(this.refusal!.code, this.refusal!.message));
      });
    });
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.watchdog);
    this.failPending(errorOf(SHUTTING_DOWN, 'the device connection is stopping'));
    this.socket?.close(1000, 'device stopping');
    this.set('stopped');
  }

  /** The hub this device connects (or is connected) to. */
  get hubUrl(): string {
    return this.options.hubUrls[this.hubIndex]!;
  }

  get isOnline(): boolean {
    return this.state === 'online';
  }

  /** A request to the hub (e.g. `$deviceSyncSessions`); DEVICE_UNAVAILABLE while offline. */
  request<T>(method: string, params: unknown): Promise<T> {
    if (this.state !== 'online' || !this.socket) return Promise.reject(errorOf(DeviceErrorCodes.DEVICE_UNAVAILABLE, 'not connected to the hub'));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      if (!this.write({ jsonrpc: '2.0', id, method, params })) {
        this.pending.delete(id);
        reject(errorOf(DeviceErrorCodes.FRAME_TOO_LARGE, `the request is larger than the ${this.maxFrameBytes}-byte frame limit`));
      }
    });
  }

  /** Tells the hub the exposed skills changed. */
  async announceSkills(): Promise<void> {
    if (this.state === 'online') this.write({ jsonrpc: '2.0', method: '$deviceSkillsChanged', params: { skills: await this.options.skills() } });
  }

  private get maxFrameBytes(): number {
    return this.options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  }

  private set(state: DeviceState): void {
    if (this.state === state) return;
    this.state = state;
    for (const l of this.listeners) l(state);
  }

  private connect(): void {
    if (this.stopped) return;
    this.set('connecting');
    const url = new URL(DEVICE_CONNECT_PATH, this.hubUrl.replace(/^http/, 'ws')).toString();
    let socket: DeviceSocket;
    try {
      socket = this.options.createSocket(url, { authorization: `Bearer ${this.options.token}` });
    } catch (err) {
      this.options.logger?.warn(`could not open a WebSocket to ${url}: ${(err as Error).message}`);
      this.set('offline');
      return this.scheduleReconnect();
    }
    this.socket = socket;
    let welcomed = false;
    socket.addEventListener('open', () => {
      void (async () => {
        try {
          const [skills, models] = await Promise.all([this.options.skills(), this.options.models?.() ?? []]);
          socket.send(
            JSON.stringify({
              type: 'hello',
              protocolVersion: this.options.protocolVersion ?? DEVICE_PROTOCOL_VERSION,
              aionVersion: this.options.aionVersion ?? '0.1.0',
              device: this.options.device,
              manifests: this.options.manifests ?? [],
              skills,
              ...(models.length ? { models } : {}),
            }),
          );
        } catch (err) {
          this.options.logger?.warn(`could not list the skills to expose: ${(err as Error).message}`);
          this.drop(socket);
        }
      })();
    });
    socket.addEventListener('message', (event) => {
      this.lastHeardAt = Date.now();
      const text = typeof event.data === 'string' ? event.data : String(event.data);
      if (welcomed) return this.receive(text);
      let answer: { type?: string; code?: string; message?: string; pingTimeoutMs?: number };
      try {
        answer = JSON.parse(text);
      } catch {
        return this.drop(socket);
      }
      if (answer.type === 'refused') {
        this.refusal = { code: String(answer.code), message: String(answer.message) };
        this.options.logger?.error(`the hub refused this device: ${answer.code}: ${answer.message}`);
        if (FATAL.has(this.refusal.code)) {
          this.stopped = true;
          this.set('refused');
        }
        return socket.close(1000, 'refused');
      }
      if (answer.type !== 'welcome') return this.drop(socket);
      welcomed = true;
      this.online(socket, answer.pingTimeoutMs ?? 30_000);
    });
    socket.addEventListener('error', () => undefined);
    socket.addEventListener('close', () => {
      clearInterval(this.watchdog);
      if (this.socket === socket) this.socket = undefined;
      this.failPending(errorOf(DeviceErrorCodes.DEVICE_UNAVAILABLE, 'the hub connection closed'));
      for (const controller of this.running.values()) controller.abort();
      this.running.clear();
      if (this.stopped) return;
      // A hub that could not be reached or refused us: try the next one.
      if (!welcomed) this.hubIndex = (this.hubIndex + 1) % this.options.hubUrls.length;
      this.set('offline');
      this.scheduleReconnect();
    });
  }

  private online(socket: DeviceSocket, pingTimeoutMs: number): void {
    this.attempt = 0;
    this.connects++;
    this.lastHeardAt = Date.now();
    // A hub that stops pinging is as gone as a closed socket (a half-open TCP connection looks like this).
    this.watchdog = setInterval(
      () => {
        if (Date.now() - this.lastHeardAt > pingTimeoutMs) {
          this.options.logger?.warn(`the hub sent nothing for ${pingTimeoutMs} ms; reconnecting`);
          this.drop(socket);
        }
      },
      Math.max(50, Math.floor(pingTimeoutMs / 4)),
    );
    (this.watchdog as { unref?: () => void }).unref?.();
    this.set('online');
  }

  private receive(frame: string): void {
    if (byteLength(frame, this.maxFrameBytes) > this.maxFrameBytes)
      return this.options.logger?.warn(`the hub sent a frame over the ${this.maxFrameBytes}-byte limit; dropped`);
    let message: RpcMessage;
    try {
      message = JSON.parse(frame);
    } catch {
      return this.options.logger?.warn('the hub sent a frame that is not JSON; dropped');
    }
    if (message?.jsonrpc !== '2.0') return this.options.logger?.warn('the hub sent a frame that is not JSON-RPC 2.0; dropped');
    if (message.method !== undefined) {
      if (message.id === undefined || message.id === null) return this.notification(message);
      return void this.answer(message.id, message.method, message.params);
    }
    const waiting = typeof message.id === 'number' ? this.pending.get(message.id) : undefined;
    if (!waiting) return;
    this.pending.delete(message.id as number);
    if (message.error) waiting.reject(errorOf(message.error.data?.code ?? 'INTERNAL', message.error.message));
    else waiting.resolve(message.result);
  }

  private notification(message: RpcMessage): void {
    // vscode-jsonrpc's cancellation: the hub gave up on a call (its caller went away, or the deadline passed).
    if (message.method === '$/cancelRequest') this.running.get(message.params?.id)?.abort();
    else if (message.method === '$deviceChatCredit') this.credits.get(message.params?.stream)?.grant(Number(message.params?.credit));
    else if (message.method === '$deviceError') this.options.logger?.warn(`the hub refused a frame: ${message.params?.code}: ${message.params?.message}`);
  }

  private async answer(id: string | number, method: string, params: any): Promise<void> {
    if (method === '$devicePing') return void this.write({ jsonrpc: '2.0', id, result: params });
    const run = method === '$deviceExecuteSkill' ? this.executeSkill : method === '$deviceChat' && this.options.chat ? this.chat : undefined;
    if (!run) return void this.write({ jsonrpc: '2.0', id, error: { code: METHOD_NOT_FOUND, message: `this device does not answer ${method}` } });
    const controller = new AbortController();
    this.running.set(id, controller);
    try {
      if (Date.now() > (params as { deadline: number }).deadline) throw errorOf(DeviceErrorCodes.DEVICE_TIMEOUT, 'the call arrived after its deadline');
      const result = await run.call(this, params, controller.signal);
      if (!this.write({ jsonrpc: '2.0', id, result })) {
        this.write({
          jsonrpc: '2.0',
          id,
          error: {
            code: AION_RPC_ERROR,
            message: `the answer exceeds the ${this.maxFrameBytes}-byte frame limit`,
            data: { code: DeviceErrorCodes.FRAME_TOO_LARGE },
          },
        });
      }
    } catch (err) {
      const e = err as { code?: unknown; message?: string; status?: unknown };
      const code = typeof e.code === 'string' ? e.code : 'INTERNAL';
      this.write({
        jsonrpc: '2.0',
        id,
        error: { code: AION_RPC_ERROR, message: e.message ?? String(err), data: { code, ...(typeof e.status === 'number' ? { status: e.status } : {}) } },
      });
    } finally {
      this.running.delete(id);
    }
  }

  private async executeSkill(call: DeviceCall, signal: AbortSignal): Promise<{ result: unknown; durationMs: number }> {
    const started = performance.now();
    const { result, durationMs } = await this.options.execute(call, signal);
    return { result, durationMs: durationMs ?? performance.now() - started };
  }

  /**
   * The answer's events go out as `$deviceChatEvent` notifications, in order, before the request's own
   * answer. With `credit`, `emit` returns a promise once the hub's grant is spent, settled when it grants
   * more (or the call is cancelled): a producer that awaits it goes no faster than the hub reads.
   */
  private async chat(call: DeviceChatCall, signal: AbortSignal): Promise<{ durationMs: number }> {
    const started = performance.now();
    let ended = false;
    const credit = new ChatCredit(typeof call.credit === 'number' && call.credit > 0 ? call.credit : Number.POSITIVE_INFINITY);
    this.credits.set(call.stream, credit);
    const dropOnAbort = () => credit.drop();
    signal.addEventListener('abort', dropOnAbort);
    const write = (event: DeviceChatEvent) => {
      if (signal.aborted) return;
      if (!this.write({ jsonrpc: '2.0', method: '$deviceChatEvent', params: { stream: call.stream, event } })) {
        // The answer ends here: the hub hears why, in the slot the oversized event had.
        ended = true;
        const message = `an event of the answer exceeds the ${this.maxFrameBytes}-byte frame limit`;
        this.write({
          jsonrpc: '2.0',
          method: '$deviceChatEvent',
          params: { stream: call.stream, event: { type: 'error', code: 'PROVIDER_BAD_RESPONSE', message } },
        });
      }
    };
    const emit = (event: DeviceChatEvent): void | Promise<void> => {
      if (ended || signal.aborted) return;
      if (event.type === 'done' || event.type === 'error') ended = true;
      return credit.send(() => write(event));
    };
    try {
      await this.options.chat!(call, emit, signal);
      await credit.drained();
    } finally {
      this.credits.delete(call.stream);
      signal.removeEventListener('abort', dropOnAbort);
    }
    return { durationMs: performance.now() - started };
  }

  /** Sends one message; false (and nothing sent) when it is over the frame cap. */
  private write(message: RpcMessage): boolean {
    const frame = JSON.stringify(message);
    if (byteLength(frame, this.maxFrameBytes) > this.maxFrameBytes) return false;
    const socket = this.socket;
    if (socket && socket.readyState === 1) socket.send(frame);
    return true;
  }

  private drop(socket: DeviceSocket): void {
    if (socket.terminate) socket.terminate();
    else socket.close(4000, 'dropped');
  }

  private failPending(error: AionApiError): void {
    for (const waiting of this.pending.values()) waiting.reject(error);
    this.pending.clear();
  }

  private scheduleReconnect(): void {
    const { baseMs, maxMs } = this.options.backoff ?? { baseMs: 500, maxMs: 30_000 };
    const ceiling = Math.min(maxMs, baseMs * 2 ** this.attempt++);
    // Full jitter: devices that lost one hub together do not come back together.
    this.retryTimer = setTimeout(() => this.connect(), Math.round(Math.random() * ceiling));
    (this.retryTimer as { unref?: () => void }).unref?.();
  }
}

/** A device as the hub lists it. */
export interface HubDevice {
  name: string;
  display_name?: string;
  status: 'online' | 'offline';
  last_seen_at?: string | number | null;
  skills_count: number;
  protocol_version?: number | null;
  aion_version?: string | null;
  address?: string | null;
  scopes: string[];
  hub?: string | null;
}

type Transportish = {
  baseUrl: string;
  json<T>(
    method: string,
    path: string,
    body?: unknown,
    options?: { signal?: AbortSignal; query?: Record<string, string | number | boolean | undefined> },
  ): Promise<T>;
};

/** Devices of the signed-in user on the hub, and connecting this process as one. */
export class DevicesApi {
  constructor(private readonly transport: Transportish) {}

  /** Registers a device; the answer carries its token, shown once. */
  add(
    body: { name: string; scopes?: string[] },
    options: { signal?: AbortSignal } = {},
  ): Promise<{ device: HubDevice & { renamed_from?: string }; token: string }> {
    return this.transport.json('POST', '/v1/hub/devices', body, options);
  }

  async list(options: { signal?: AbortSignal } = {}): Promise<HubDevice[]> {
    return (await this.transport.json<{ devices: HubDevice[] }>('GET', '/v1/hub/devices', undefined, options)).devices;
  }

  /** Revokes a device; a connected one is dropped at once. */
  revoke(name: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    return this.transport.json('DELETE', `/v1/hub/devices/${encodeURIComponent(name)}`, undefined, options);
  }

  /** Skills of online devices, grouped by skill id with the devices that have it. */
  skills(options: { q?: string; signal?: AbortSignal } = {}): Promise<{
    skills: Array<{ id: string; devices: Array<{ name: string; path: string; last_seen_at: number }>; device_count: number; [key: string]: unknown }>;
    total: number;
  }> {
    return this.transport.json('GET', '/v1/hub/skills', undefined, { signal: options.signal, query: { q: options.q } });
  }

  /** A device connection to this client's hub (call `start()`), authenticated by the device's own token. */
  connect(options: Omit<DeviceConnectionOptions, 'hubUrls'> & { hubUrls?: string[] }): DeviceConnection {
    return new DeviceConnection({ ...options, hubUrls: options.hubUrls ?? [this.transport.baseUrl] });
  }
}
