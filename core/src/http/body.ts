import type { IncomingMessage } from 'node:http';
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

/** The error a body read ends with, in words the client can act on. */
const bodyErrors = {
  tooLarge: (limit: number) =>
    new AionError(ErrorCodes.PAYLOAD_TOO_LARGE, `the request body is larger than the ${limit} bytes this route accepts`, { details: { limit } }),
  tooShort: () => new AionError(ErrorCodes.BAD_REQUEST, 'the request body is not as long as its Content-Length says'),
  aborted: () => new AionError(ErrorCodes.BAD_REQUEST, 'the client stopped sending the request body'),
  tooSlow: ({ minBytes, intervalMs }: BodyLimits['progress']) =>
    new AionError(ErrorCodes.REQUEST_TIMEOUT, `the request body arrived too slowly (under ${minBytes} bytes in ${intervalMs} ms); send it in one go`, {
      headers: { Connection: 'close' },
    }),
};

/** One body being read: what it received by its last checkpoint, and how to fail it. */
interface BodyRead {
  received: number;
  checkpointAt: number;
  checkpointBytes: number;
  fail(error: AionError): void;
}

/**
 * Every body being read with one progress rule, checked by one timer for all of them (not one per
 * request): a read that received fewer than `minBytes` over a window of at least `intervalMs` fails.
 * The timer ticks four times per window and stops once a tick finds nothing to watch.
 */
class ProgressWatch {
  private readonly reads = new Set<BodyRead>();
  private timer?: NodeJS.Timeout;

  constructor(private readonly progress: BodyLimits['progress']) {}

  add(read: BodyRead): void {
    this.reads.add(read);
    if (!this.timer) {
      this.timer = setInterval(() => this.check(), Math.max(1, Math.floor(this.progress.intervalMs / 4)));
      this.timer.unref();
    }
  }

  delete(read: BodyRead): void {
    this.reads.delete(read);
  }

  private check(): void {
    if (this.reads.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
      return;
    }
    const now = performance.now();
    const { minBytes, intervalMs } = this.progress;
    for (const read of this.reads) {
      if (now - read.checkpointAt < intervalMs) continue;
      if (read.received - read.checkpointBytes < minBytes) read.fail(bodyErrors.tooSlow(this.progress));
      else {
        read.checkpointAt = now;
        read.checkpointBytes = read.received;
      }
    }
  }
}

/** One watch per progress rule (the server's; a kernel has one). */
const watches = new Map<string, ProgressWatch>();

function watchFor(progress: BodyLimits['progress']): ProgressWatch {
  const key = `${progress.minBytes}/${progress.intervalMs}`;
  let watch = watches.get(key);
  if (!watch) watches.set(key, (watch = new ProgressWatch(progress)));
  return watch;
}

/**
 * Reads the whole body from the request's events: at most `limit` bytes, exactly `length` when the
 * client declared one, cutting off a client that sends fewer than `minBytes` in an `intervalMs`.
 */
function readWithProgress(req: IncomingMessage, length: number | undefined, { limit, progress }: BodyLimits): Promise<Buffer> {
  if (length !== undefined && length > limit) return Promise.reject(bodyErrors.tooLarge(limit));
  return new Promise<Buffer>((resolve, reject) => {
    const parts: Buffer[] = [];
    const watch = watchFor(progress);
    const read: BodyRead = {
      received: 0,
      checkpointAt: performance.now(),
      checkpointBytes: 0,
      fail: (error) => {
        done();
        // Nothing more of this body is wanted: it is not buffered while the answer goes out.
        req.pause();
        reject(error);
      },
    };
    const onData = (chunk: Buffer) => {
      read.received += chunk.length;
      if (read.received > limit) return read.fail(bodyErrors.tooLarge(limit));
      parts.push(chunk);
    };
    const onEnd = () => {
      done();
      if (length !== undefined && read.received !== length) return reject(bodyErrors.tooShort());
      resolve(parts.length === 1 ? parts[0]! : Buffer.concat(parts, read.received));
    };
    const onAborted = () => read.fail(bodyErrors.aborted());
    const onClose = () => {
      if (!req.complete) onAborted();
    };
    const done = () => {
      watch.delete(read);
      req.off('data', onData).off('end', onEnd).off('aborted', onAborted).off('close', onClose).off('error', onAborted);
    };
    req.on('data', onData).on('end', onEnd).on('aborted', onAborted).on('close', onClose).on('error', onAborted);
    watch.add(read);
  });
}

/** `application/json` from `Application/JSON; charset=utf-8`; empty when there is no Content-Type. */
function mediaTypeOf(contentType: string | undefined): string {
  if (!contentType) return '';
  const semicolon = contentType.indexOf(';');
  return (semicolon < 0 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
}

/** Reads and parses a request body: JSON (depth-checked, strict UTF-8), text, or base64 for anything else. */
export async function readRequestBody(req: IncomingMessage, limits: BodyLimits): Promise<RequestBody> {
  const declared = req.headers['content-length'];
  const length = declared === undefined || declared === '' ? undefined : Number(declared);
  if (!BODY_METHODS.has(req.method!) || ((length ?? 0) === 0 && req.headers['transfer-encoding'] === undefined)) return {};
  const raw = await readWithProgress(req, length, limits);
  const type = mediaTypeOf(req.headers['content-type']);
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
