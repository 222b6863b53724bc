import { API_VERSION, CancellationTokenSource, type CancellationToken, type Logger } from '@aion/extension-api';
import { DeviceConnection, type DeviceChatCall, type DeviceChatEvent, type DeviceState } from '@aion/client';
import { DEFAULT_MAX_FRAME_BYTES } from '@aion/extension-api/protocol';
import { WebSocket } from 'ws';
import {
  DeviceProtocol,
  PROTOCOL_VERSION,
  type ExecuteSkillParams,
  type ExposedModel,
  type ExposedSkill,
  type SessionsSyncAnswer,
  type SessionsSyncRequest,
} from './contract.js';

export interface SpokeOptions {
  /** Hubs to try, in order; a failed attempt moves on to the next (several hubs sharing a Redis). */
  hubUrls: string[];
  token: string;
  /** The name the spoke claims; the hub checks it against the token. */
  device: string;
  skills: () => Promise<ExposedSkill[]>;
  execute: (params: ExecuteSkillParams, token: CancellationToken) => Promise<{ result: unknown; durationMs: number }>;
  /** The models offered to the hub (none when absent) and the chats with them. */
  models?: () => Promise<ExposedModel[]>;
  chat?: (call: DeviceChatCall, emit: (event: DeviceChatEvent) => void, token: CancellationToken) => Promise<void>;
  logger: Logger;
  maxFrameBytes?: number;
  /** Backoff between reconnects: full jitter between 0 and min(max, base × 2^attempt). */
  backoff?: { baseMs: number; maxMs: number };
  /** Overrides what the hello frame says, for tests of refusals. */
  protocolVersion?: number;
  manifests?: Array<{ id: string; version: string }>;
}

export type SpokeState = DeviceState;

/**
 * The device's side of the `remote` host: `@aion/client`'s device connection (the same code an IDE
 * uses to be a device) over the `ws` WebSocket, with the local kernel's skills behind it.
 */
export class Spoke extends DeviceConnection {
  constructor(options: SpokeOptions) {
    const maxFrameBytes = options.maxFrameBytes;
    super({
      hubUrls: options.hubUrls,
      token: options.token,
      device: options.device,
      skills: options.skills,
      logger: options.logger,
      maxFrameBytes,
      backoff: options.backoff,
      protocolVersion: options.protocolVersion ?? PROTOCOL_VERSION,
      aionVersion: API_VERSION,
      manifests: options.manifests,
      // The socket's own cap sits above the frame cap, so an oversized frame reaches the reader and is refused by it.
      createSocket: (url, headers) => new WebSocket(url, { headers, maxPayload: (maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES) * 2, handshakeTimeout: 10_000 }),
      execute: (call, signal) => options.execute(call, tokenOf(signal)),
      models: options.models,
      chat: options.chat ? (call, emit, signal) => options.chat!(call, emit, tokenOf(signal)) : undefined,
    });
  }

  /** One sessions sync exchange with the hub; DEVICE_UNAVAILABLE while offline. */
  syncSessions(body: SessionsSyncRequest): Promise<SessionsSyncAnswer> {
    return this.request<SessionsSyncAnswer>(DeviceProtocol.syncSessions.method, body);
  }
}

/** The kernel's cancellation token for a signal the device connection aborts. */
function tokenOf(signal: AbortSignal): CancellationToken {
  const cancel = new CancellationTokenSource();
  if (signal.aborted) cancel.cancel();
  else signal.addEventListener('abort', () => cancel.cancel(), { once: true });
  return cancel.token;
}
