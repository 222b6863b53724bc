import type Koa from 'koa';
import { AionError, ErrorCodes, isAionError, type HttpResponseData, type ServerSentEvent } from '@aion/extension-api';
import { errorBody, sanitizeMessage } from './errorResponse.js';

function frameOf(e: ServerSentEvent): string {
  let frame = '';
  if (e.id !== undefined) frame += `id: ${e.id}\n`;
  if (e.event) frame += `event: ${e.event}\n`;
  if (e.retry !== undefined) frame += `retry: ${e.retry}\n`;
  const data = typeof e.data === 'string' ? e.data : JSON.stringify(e.data);
  for (const line of data.split('\n')) frame += `data: ${line}\n`;
  return `${frame}\n`;
}

/** Writes an extension's event stream as SSE, pulling the next event only when the client has taken the last. */
export async function writeSseStream(ctx: Koa.Context, response: HttpResponseData): Promise<void> {
  const res = ctx.res;
  ctx.respond = false;
  res.writeHead(response.status ?? 200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no',
    'X-Request-Id': ctx.state.requestId as string,
    ...response.headers,
  });
  res.flushHeaders();
  const iterator = (response.stream as AsyncIterable<ServerSentEvent>)[Symbol.asyncIterator]();
  let closed = false;
  const onClose = () => {
    closed = true;
    void iterator.return?.();
  };
  res.once('close', onClose);
  try {
    for (;;) {
      const next = await iterator.next();
      if (next.done || closed) break;
      if (!res.write(frameOf(next.value))) await new Promise<void>((resolve) => res.once('drain', resolve).once('close', resolve));
    }
  } catch (err) {
    const error = isAionError(err) ? err : new AionError(ErrorCodes.STREAM_ERROR, 'the stream failed');
    const payload = { code: error.code, message: sanitizeMessage(error.message) };
    // OpenAI clients read an error mid-stream from a data line holding `error`.
    if (!closed)
      res.write(
        ctx.state.errorFormat === 'openai'
          ? `data: ${JSON.stringify(errorBody(payload, 'openai', 500))}\n\n`
          : `event: error\ndata: ${JSON.stringify(payload)}\n\n`,
      );
  } finally {
    res.off('close', onClose);
    if (!closed) res.end();
  }
}
