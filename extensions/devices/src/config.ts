import { AionError, ErrorCodes } from '@aion/extension-api';

export interface DevicesConfiguration {
  maxFrameBytes: number;
  pingIntervalMs: number;
  pingTimeoutMs: number;
  handshakeTimeoutMs: number;
  maxInFlightPerDevice: number;
  retryAfterSeconds: number;
  timeouts: { sandboxMs: number; localSkillMs: number; remoteSkillMs: number; uiResponseMs: number };
  expose: { skills: string[]; models: string[] };
  cluster: { redisUrl?: string; redisPrefix: string; presenceTtlMs: number };
  sync: { enabled: boolean; intervalMs: number; localUser?: string };
}

/**
 * Checks what the schema cannot: liveness needs a timeout longer than the ping interval, and calls
 * nest sandbox < local skill < remote skill < UI response, so an outer wait never gives up first.
 */
export function validateConfiguration(config: DevicesConfiguration): DevicesConfiguration {
  if (config.pingTimeoutMs <= config.pingIntervalMs) {
    throw new AionError(
      ErrorCodes.CONFIG_INVALID,
      `extensions["aion.devices"].pingTimeoutMs (${config.pingTimeoutMs}) must be longer than pingIntervalMs (${config.pingIntervalMs}), or a live device would be dropped between two pings`,
    );
  }
  const t = config.timeouts;
  const order: Array<[string, number]> = [
    ['sandboxMs', t.sandboxMs],
    ['localSkillMs', t.localSkillMs],
    ['remoteSkillMs', t.remoteSkillMs],
    ['uiResponseMs', t.uiResponseMs],
  ];
  for (let i = 1; i < order.length; i++) {
    const [prevName, prev] = order[i - 1]!;
    const [name, value] = order[i]!;
    if (value <= prev)
      throw new AionError(
        ErrorCodes.CONFIG_INVALID,
        `extensions["aion.devices"].timeouts.${name} (${value} ms) must be longer than timeouts.${prevName} (${prev} ms): sandbox < local skill < remote skill < UI response`,
      );
  }
  return config;
}
