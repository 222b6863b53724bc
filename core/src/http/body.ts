import type { IncomingMessage } from 'node:http';
import type Koa from 'koa';
import getRawBody from 'raw-body';
import { AionError, ErrorCodes } from '@aion/extension-api';

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPENERS = new Set([0x5b, 0x7b]);
const CLOSERS = new Set([0x5d, 0x7d]);
const utf8 = new TextDecoder('utf-8', { fatal: true });

export interface BodyLimits {
  /** Bytes. */
  limit: number;
  /** `server.jsonMaxDepth`. */
  maxDepth: number;
  /** `server.bodyProgress`. */
  progress: { minBytes: number; intervalMs: number };
}

export interface RequestBody {
  /** A parsed JSON body. */
  body?: unknown;
  /** Any other body: text as is, binary as base64. */
  rawBody?: string;
}

/** Whether JSON text nests arrays and objects deeper than `max`: one pass, no recursion, before anything parses it. */
export function nestsDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (OPENERS.has(c)) {
      if (++depth > max) return true;
    } else if (CLOSERS.has(c)) depth--;
  }
  return false;
}

/** raw-body's errors as the edge's codes. */
function fromRawBody(err: unknown, limit: number): unknown {
  const type = (err as { type?: string }).type;
  if (type === 'entity.too.large')
    return new AionError(ErrorCodes.PAYLOAD_TOO_LARGE, `the request body is larger than the ${limit} bytes this route accepts`, { details: { limit } });
  if (type === 'request.size.invalid') return new AionError(ErrorCodes.BAD_REQUEST, 'the request body is not as long as its Content-Length says');
  if (type === 'request.aborted') return new AionError(ErrorCodes.BAD_REQUEST, 'the client stopped sending the request body');
  if (type !== undefined) return new AionError(ErrorCodes.BAD_REQUEST, `the request body could not be read (${type})`);
  return err;
}

/** Reads the whole body, cutting off a client that sends fewer than `minBytes` in an `intervalMs`. */
async function readWithProgress(req: IncomingMessage, length: number | undefined, { limit, progress }: BodyLimits): Promise<Buffer> {
  let received = 0;
  let atLastCheck = 0;
  const count = (chunk: Buffer) => (received += chunk.length);
  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<never>((_, reject) => {
    timer = setInterval(() => {
      if (received - atLastCheck < progress.minBytes) {
        reject(
          new AionError(
            ErrorCodes.REQUEST_TIMEOUT,
            `the request body arrived too slowly (under ${progress.minBytes} bytes in ${progress.intervalMs} ms); send it in one go`,
            { headers: { Connection: 'close' } },
          ),
        );
      }
      atLastCheck = received;
    }, progress.intervalMs);
  });
  req.on('data', count);
  try {
    return await Promise.race([getRawBody(req, { limit, length }).catch((err) => Promise.reject(fromRawBody(err, limit))), stalled]);
  } finally {
    clearInterval(timer);
    req.off('data', count);
  }
}

/** Reads and parses a request body: JSON (depth-checked, strict UTF-8), text, or base64 for anything else. */
export async function readRequestBody(ctx: Koa.Context, limits: BodyLimits): Promise<RequestBody> {
  if (!BODY_METHODS.has(ctx.method) || ((ctx.request.length ?? 0) === 0 && ctx.req.headers['transfer-encoding'] === undefined)) return {};
  const raw = await readWithProgress(ctx.req, ctx.request.length, limits);
  const type = ctx.request.type;
  if (type === 'application/json' || type.endsWith('+json') || (!type && raw.length > 0)) {
    if (raw.length === 0) return {};
    let text: string;
    try {
      text = utf8.decode(raw);
    } catch {
      throw new AionError(ErrorCodes.BAD_REQUEST, 'the request body is not valid UTF-8');
    }
    if (nestsDeeperThan(text, limits.maxDepth)) {
      throw new AionError(ErrorCodes.BAD_REQUEST, `the JSON body nests arrays and objects deeper than ${limits.maxDepth} levels (server.jsonMaxDepth)`, {
        details: { maxDepth: limits.maxDepth },
      });
    }
    try {
      return { body: JSON.parse(text) };
    } catch (e) {
      throw new AionError(ErrorCodes.BAD_REQUEST, `the request body is not valid JSON: ${(e as Error).message}`);
    }
  }
  if (type.startsWith('text/') || type === 'application/x-www-form-urlencoded') return { rawBody: raw.toString('utf8') };
  return { rawBody: raw.toString('base64') };
}
