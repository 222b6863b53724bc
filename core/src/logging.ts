import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/** Structured JSON logs to stderr (stdout stays free for CLI output such as `aion mcp`). */
export function createLogger(options: { level?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  const level = options.level ?? process.env.AION_LOG_LEVEL ?? 'info';
  return pino({ level, base: { app: 'aion' }, redact: { paths: ['*.password', '*.secret', '*.token', '*.authorization', 'headers.authorization', 'headers["x-api-key"]'], censor: '[redacted]' } }, (options.destination ?? process.stderr) as any);
}
