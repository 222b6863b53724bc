import { AionError, API_VERSION, ErrorCodes, type CancellationToken, type Logger } from '@aion/extension-api';
import { RpcEndpoint } from '@aion/extension-api/protocol';
import { createFrameConnection, DEFAULT_MAX_FRAME_BYTES } from '@aion/extension-api/protocol';
import { WebSocket } from 'ws';
import { CONNECT_PATH, DeviceErrorCodes, DeviceProtocol, PROTOCOL_VERSION, type ExecuteSkillParams, type ExposedSkill, type HandshakeAnswer, type HelloFrame, type SessionsSyncAnswer, type SessionsSyncRequest } from './contract.js';

export interface SpokeOptions {
  /** Hubs to try, in order; a failed attempt moves on to the next (several hubs sharing a Redis). */
  hubUrls: string[];
  token: string;
  /** The name the spoke claims; the hub checks it against the token. */
  device: string;
  skills: () => Promise<ExposedSkill[]>;
  execute: (params: ExecuteSkillParams, token: CancellationToken) => Promise<{ result: unknown; durationMs: number }>;
  logger: Logger;
  maxFrameBytes?: number;
  /** Backoff between reconnects: full jitter between 0 and min(max, base × 2^attempt). */
  backoff?: { baseMs: number; maxMs: number };
  /** Overrides what the hello frame says, for tests of refusals. */
  protocolVersion?: number;
  manifests?: Array<{ id: string; version: string }>;
}

export type SpokeState = 'connecting' | 'online' | 'offline' | 'refused' | 'stopped';

/** Refusals no retry can fix: the spoke stops and says why. */
const FATAL = new Set<string>([DeviceErrorCodes.DEVICE_PROTOCOL_MISMATCH, DeviceErrorCodes.DEVICE_TOKEN_INVALID, DeviceErrorCodes.DEVICE_NAME_MISMATCH, ErrorCodes.FORBIDDEN]);

/**
 * The device's side of the `remote` host: connects to the hub, says hello, answers pings and skill
 * calls, notices a silent hub, and reconnects with jittered exponential backoff.
 */
export class Spoke {
  state: SpokeState = 'offline';
  refusal?: { code: string; message: string };
  private socket?: WebSocket;
  private endpoint?: RpcEndpoint;
  private attempt = 0;
  private hubIndex = 0;
  private stopped = false;
  private retryTimer?: NodeJS.Timeout;
  private watchdog?: NodeJS.Timeout;
  private lastHeardAt = 0;
  private readonly listeners = new Set<(state: SpokeState) => void>();
  connects = 0;

  constructor(private readonly options: SpokeOptions) {}

  onState(listener: (state: SpokeState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private set(state: SpokeState): void {
    if (this.state === state) return;
    this.state = state;
    for (const l of this.listeners) l(state);
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  /** Resolves once the spoke is online, or rejects when the hub refused it for good. */
  waitOnline(timeoutMs = 30_000): Promise<void> {
    if (this.state === 'online') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => (off(), reject(new AionError(DeviceErrorCodes.DEVICE_UNAVAILABLE, `not connected to ${this.options.hubUrls.join(' or ')} within ${timeoutMs} ms`))), timeoutMs);
      const off = this.onState((s) => {
        if (s === 'online') (clearTimeout(timer), off(), resolve());
        if (s === 'refused') (clearTimeout(timer), off(), reject(new AionError(this.refusal!.code, this.refusal!.message)));
      });
    });
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.watchdog);
    this.endpoint?.close(new AionError(ErrorCodes.SHUTTING_DOWN, 'the spoke is stopping'));
    this.socket?.close(1000, 'spoke stopping');
    this.set('stopped');
  }

  private connect(): void {
    if (this.stopped) return;
    this.set('connecting');
    const url = new URL(CONNECT_PATH, this.hubUrl.replace(/^http/, 'ws'));
    const max = this.options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    // The socket's own cap sits above the frame cap, so an oversized frame reaches the reader and gets a typed error.
    const socket = new WebSocket(url, { headers: { authorization: `Bearer ${this.options.token}` }, maxPayload: max * 2, handshakeTimeout: 10_000 });
    this.socket = socket;
    let welcomed = false;
    let frames: ReturnType<typeof createFrameConnection> | undefined;
    socket.on('open', async () => {
      try {
        const hello: HelloFrame = {
          type: 'hello',
          protocolVersion: this.options.protocolVersion ?? PROTOCOL_VERSION,
          aionVersion: API_VERSION,
          device: this.options.device,
          manifests: this.options.manifests ?? [],
          skills: await this.options.skills(),
        };
        socket.send(JSON.stringify(hello));
      } catch (err) {
        this.options.logger.warn(`could not list the skills to expose: ${(err as Error).message}`);
        socket.terminate();
      }
    });
    socket.on('message', (data) => {
      this.lastHeardAt = Date.now();
      const text = data.toString();
      if (!welcomed) {
        let answer: HandshakeAnswer;
        try {
          answer = JSON.parse(text) as HandshakeAnswer;
        } catch {
          return socket.terminate();
        }
        if (answer.type === 'refused') {
          this.refusal = { code: answer.code, message: answer.message };
          this.options.logger.error(`the hub refused this device: ${answer.code}: ${answer.message}`);
          if (FATAL.has(answer.code)) {
            this.stopped = true;
            this.set('refused');
          }
          return socket.close(1000, 'refused');
        }
        welcomed = true;
        frames = this.online(socket, answer.pingTimeoutMs, max);
        return;
      }
      frames?.reader.receive(text);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearInterval(this.watchdog);
      frames?.reader.closed();
      this.endpoint?.close(new AionError(DeviceErrorCodes.DEVICE_UNAVAILABLE, 'the hub connection closed'));
      this.endpoint = undefined;
      if (this.stopped) return;
      // A hub that could not be reached or refused us: try the next one.
      if (!welcomed) this.hubIndex = (this.hubIndex + 1) % this.options.hubUrls.length;
      this.set('offline');
      this.scheduleReconnect();
    });
  }

  private online(socket: WebSocket, pingTimeoutMs: number, maxFrameBytes: number) {
    const frames = createFrameConnection(
      { send: (frame) => socket.readyState === socket.OPEN && socket.send(frame), close: () => socket.close() },
      { maxFrameBytes, onViolation: (error) => this.options.logger.warn(`the hub sent a bad frame: ${error.message}`) },
    );
    const endpoint = new RpcEndpoint(frames.connection);
    endpoint.onRequest(DeviceProtocol.ping, (p) => p);
    endpoint.onRequest(DeviceProtocol.executeSkill, (params, token) => {
      if (Date.now() > params.deadline) throw new AionError(DeviceErrorCodes.DEVICE_TIMEOUT, 'the call arrived after its deadline');
      return this.options.execute(params, token);
    });
    frames.connection.onNotification('$deviceError', (p: { code: string; message: string }) => this.options.logger.warn(`the hub refused a frame: ${p.code}: ${p.message}`));
    frames.connection.listen();
    this.endpoint = endpoint;
    this.attempt = 0;
    this.connects++;
    this.lastHeardAt = Date.now();
    // A hub that stops pinging is as gone as a closed socket (a half-open TCP connection looks like this).
    this.watchdog = setInterval(() => {
      if (Date.now() - this.lastHeardAt > pingTimeoutMs) {
        this.options.logger.warn(`the hub sent nothing for ${pingTimeoutMs} ms; reconnecting`);
        socket.terminate();
      }
    }, Math.max(50, Math.floor(pingTimeoutMs / 4)));
    this.watchdog.unref();
    this.set('online');
    return frames;
  }

  /** One sessions sync exchange with the hub; DEVICE_UNAVAILABLE while offline. */
  syncSessions(body: SessionsSyncRequest): Promise<SessionsSyncAnswer> {
    if (!this.endpoint) return Promise.reject(new AionError(DeviceErrorCodes.DEVICE_UNAVAILABLE, 'not connected to the hub'));
    return this.endpoint.sendRequest(DeviceProtocol.syncSessions, body);
  }

  /** Tells the hub the exposed skills changed. */
  async announceSkills(): Promise<void> {
    if (this.endpoint) this.endpoint.sendNotification(DeviceProtocol.skillsChanged, { skills: await this.options.skills() });
  }

  private scheduleReconnect(): void {
    const { baseMs, maxMs } = this.options.backoff ?? { baseMs: 500, maxMs: 30_000 };
    const ceiling = Math.min(maxMs, baseMs * 2 ** this.attempt++);
    // Full jitter: devices that lost one hub together do not come back together.
    const delay = Math.round(Math.random() * ceiling);
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this.retryTimer.unref();
  }

  /** The hub this spoke connects (or is connected) to. */
  get hubUrl(): string {
    return this.options.hubUrls[this.hubIndex]!;
  }

  get isOnline(): boolean {
    return this.state === 'online';
  }
}
