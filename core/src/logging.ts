import { context } from '@opentelemetry/api';
import { pino, type Logger } from 'pino';
import pinoPretty from 'pino-pretty';
import { REQUEST_ID_KEY } from '@aion/host-runtime';

export type { Logger } from 'pino';

const BEARER = /(Bearer\s+)[A-Za-z0-9._~+/-]+=*/gi;
const API_KEY = /aion_[0-9a-f]{12}_[A-Za-z0-9_-]{20,100}/g;
const JWT = /eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+/g;
const CENSOR = '[redacted]';

/**
 * Scrubs every log line this process writes: bearer tokens, Aion API keys and JWTs by shape, and the
 * value of every secret the kernel has handed out, wherever it appears (a message, a nested field, an error).
 */
export class LogRedactor {
  private readonly values = new Set<string>();
  private pattern?: RegExp;

  /** Short values would redact ordinary words, so they are not taken. */
  addSecret(value: string | undefined): void {
    if (typeof value !== 'string' || value.length < 6 || this.values.has(value)) return;
    this.values.add(value);
    const escaped = [...this.values]
      .sort((a, b) => b.length - a.length)
      .map((v) =>
        JSON.stringify(v)
          .slice(1, -1)
          .replace(/[.*+?^${}()|[\]\\]/g, '\\$&'),
      );
    this.pattern = new RegExp(escaped.join('|'), 'g');
  }

  scrub(line: string): string {
    let out = line.replace(BEARER, `$1${CENSOR}`).replace(API_KEY, CENSOR).replace(JWT, CENSOR);
    if (this.pattern) out = out.replace(this.pattern, CENSOR);
    return out;
  }
}

/** One per process: any logger here scrubs the secrets any part of the process knows. */
export const logRedactor = new LogRedactor();

export interface LoggerOptions {
  /** `LOG_LEVEL`, then `AION_LOG_LEVEL`, then `info`. */
  level?: string;
  /** Where lines go; stderr by default, so stdout stays free for CLI output such as `aion mcp`. */
  destination?: NodeJS.WritableStream;
  /** Colored human-readable lines; by default when the destination is a terminal, JSON otherwise. */
  pretty?: boolean;
  /** `service` on every line. */
  service?: string;
}

export function logLevelFromEnvironment(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.LOG_LEVEL || env.AION_LOG_LEVEL || undefined;
}

/** Structured logs: JSON lines, or colored lines on a terminal; secrets and tokens redacted; request ids added inside a request. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? logLevelFromEnvironment() ?? 'info';
  const destination = options.destination ?? process.stderr;
  const pretty = options.pretty ?? (destination as NodeJS.WriteStream).isTTY === true;
  const stream = pretty
    ? pinoPretty({ colorize: true, destination: destination as never, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' })
    : destination;
  return pino(
    {
      level,
      base: { service: options.service ?? 'aion' },
      redact: {
        paths: [
          '*.password',
          '*.secret',
          '*.token',
          '*.authorization',
          '*.apiKey',
          '*.api_key',
          'headers.authorization',
          'headers["x-api-key"]',
          'headers.cookie',
          '*.headers.authorization',
          '*.headers["x-api-key"]',
        ],
        censor: CENSOR,
      },
      // The request a line was written for, when it was written inside one.
      mixin: () => {
        const requestId = context.active().getValue(REQUEST_ID_KEY);
        return requestId === undefined ? {} : { requestId };
      },
      hooks: { streamWrite: (line) => logRedactor.scrub(line) },
    },
    stream as never,
  );
}
