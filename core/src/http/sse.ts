import { AionError, ErrorCodes, forEachItem, isAionError, type HttpResponseData, type ServerSentEvent } from '@aion/extension-api';
import { errorBody, sanitizeMessage } from './errorResponse.js';
import type { EdgeExchange } from './exchange.js';

const LINE_BREAK = /\r\n|\r|\n/;

function frameOf(e: ServerSentEvent): string {
  let frame = '';
  if (e.id !== undefined) frame += `id: ${e.id}\n`;
  if (e.event) frame += `event: ${e.event}\n`;
  if (e.retry !== undefined) frame += `retry: ${e.retry}\n`;
  // JSON has no raw line breaks; text is cut at every break a client reads as one (CR, LF, CRLF), so it cannot start a field of its own.
  if (typeof e.data !== 'string') return `${frame}data: ${JSON.stringify(e.data) ?? ''}\n\n`;
  for (const line of e.data.split(LINE_BREAK)) frame += `data: ${line}\n`;
  return `${frame}\n`;
}

/** Resolves when the response has room again, or is closed; leaves no listener behind. */
function drained(res: EdgeExchange['res']): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      res.off('drain', done).off('close', done);
      resolve();
    };
    res.on('drain', done).on('close', done);
  });
}

/**
 * Writes an extension's event stream as SSE. A queue in this process (an `AsyncQueue`, as the router's
 * chat stream is) is drained by push, each event written as it is pushed; any other stream is pulled,
 * the next event only when the client has taken the last.
 */
export function writeSseStream(exchange: EdgeExchange, response: HttpResponseData): Promise<void> {
  const res = exchange.res;
  exchange.status = response.status ?? 200;
  exchange.responded = true;
  // Over what the edge set already (request id, authentication's headers); the route's own headers last.
  exchange.set('content-type', 'text/event-stream; charset=utf-8');
  exchange.set('cache-control', 'no-cache');
  exchange.set('connection', 'keep-alive');
  exchange.set('x-accel-buffering', 'no');
  exchange.setAll(response.headers);
  res.writeHead(exchange.status, exchange.responseHeaders);
  res.flushHeaders();
  return new Promise<void>((resolve) => {
    let closed = false;
    // One wait for every event written while the client is behind (a pushed queue does not wait, it keeps writing).
    let waiting: Promise<void> | undefined;
    const write = (event: ServerSentEvent): void | Promise<void> => {
      if (closed || res.write(frameOf(event))) return;
      // The client is behind: a pulled stream waits for it (a pushed one is already produced and buffers).
      return (waiting ??= drained(res).then(() => {
        waiting = undefined;
      }));
    };
    const end = (err?: unknown) => {
      res.off('close', onClose);
      if (!closed) {
        if (err === undefined) res.end();
        else {
          const error = isAionError(err) ? err : new AionError(ErrorCodes.STREAM_ERROR, 'the stream failed');
          const payload = { code: error.code, message: sanitizeMessage(error.message) };
          // OpenAI clients read an error mid-stream from a data line holding `error`; the last frame and the end leave together.
          res.end(
            exchange.errorFormat === 'openai'
              ? `data: ${JSON.stringify(errorBody(payload, 'openai', 500))}\n\n`
              : `event: error\ndata: ${JSON.stringify(payload)}\n\n`,
          );
        }
      }
      resolve();
    };
    let stop: (() => void) | undefined;
    const onClose = () => {
      closed = true;
      stop?.();
      resolve();
    };
    // Before the first item: a queue that has already ended ends the response inside forEachItem.
    res.once('close', onClose);
    stop = forEachItem(response.stream as AsyncIterable<ServerSentEvent>, write, end);
  });
}
