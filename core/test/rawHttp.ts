import { connect, type Socket } from 'node:net';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The body parsed as JSON, when it is JSON. */
  json?: any;
  /** Milliseconds from the first byte sent to the answer. */
  ms: number;
}

function dechunk(raw: Buffer): Buffer | undefined {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = raw.indexOf('\r\n', at);
    if (eol < 0) return undefined;
    const size = parseInt(raw.subarray(at, eol).toString('latin1'), 16);
    if (Number.isNaN(size)) return undefined;
    if (size === 0) return Buffer.concat(parts);
    if (raw.length < eol + 2 + size) return undefined;
    parts.push(raw.subarray(eol + 2, eol + 2 + size));
    at = eol + 4 + size;
  }
}

/** The first complete HTTP/1.1 response in `data`, or undefined while more bytes are needed (`ended`: no more will come). */
export function parseResponse(data: Buffer, ended: boolean): Omit<RawResponse, 'ms'> | undefined {
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const [statusLine = '', ...lines] = data.subarray(0, end).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = data.subarray(end + 4);
  if (headers['content-length'] !== undefined) {
    const length = Number(headers['content-length']);
    if (body.length < length) return undefined;
    body = body.subarray(0, length);
  } else if (headers['transfer-encoding'] === 'chunked') {
    const whole = dechunk(body);
    if (!whole) return ended ? { status: Number(statusLine.split(' ')[1]), headers, body: body.toString('utf8') } : undefined;
    body = whole;
  } else if (!ended) return undefined;
  const text = body.toString('utf8');
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body: text, json };
}

/** A TCP connection to the kernel, from a chosen loopback address (127.0.0.0/8 is all local on Linux). */
export function openSocket(port: number, localAddress = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress });
    socket.once('connect', () => resolve(socket)).once('error', reject);
  });
}

/** Waits for one response on a socket; an answer that never comes is an error ("silence"). */
export function readResponse(socket: Socket, timeoutMs = 15_000, started = performance.now()): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    let data = Buffer.alloc(0);
    const finish = (ended: boolean) => {
      const parsed = parseResponse(data, ended);
      if (!parsed && !ended) return;
      cleanup();
      if (parsed) resolve({ ...parsed, ms: Math.round(performance.now() - started) });
      else reject(new Error(`the connection closed without an answer (${data.length} bytes: ${JSON.stringify(data.subarray(0, 80).toString('latin1'))})`));
    };
    const onData = (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      finish(false);
    };
    const onEnd = () => finish(true);
    const onError = (err: NodeJS.ErrnoException) => (data.length ? finish(true) : (cleanup(), reject(err)));
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('data', onData).off('end', onEnd).off('close', onEnd).off('error', onError);
    };
    socket.on('data', onData).on('end', onEnd).on('close', onEnd).on('error', onError);
  });
}

/** Sends raw bytes on a fresh connection and reads one response; the connection is closed afterwards. */
export async function rawRequest(port: number, payload: string | Buffer, options: { localAddress?: string; timeoutMs?: number } = {}): Promise<RawResponse> {
  const socket = await openSocket(port, options.localAddress);
  const started = performance.now();
  const response = readResponse(socket, options.timeoutMs, started);
  socket.write(payload);
  try {
    return await response;
  } finally {
    socket.destroy();
  }
}

/** A request as bytes: `Connection: close` so the answer ends the exchange. */
export function httpText(method: string, path: string, headers: Record<string, string> = {}, body?: string | Buffer): Buffer {
  const lines = [`${method} ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close'];
  const all = { ...headers };
  if (body !== undefined && !Object.keys(all).some((k) => k.toLowerCase() === 'content-length')) all['Content-Length'] = String(Buffer.byteLength(body));
  for (const [k, v] of Object.entries(all)) lines.push(`${k}: ${v}`);
  return Buffer.concat([
    Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'),
    body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : Buffer.from(body),
  ]);
}
