/** Tasks: submit (idempotent, so retried safely), get, cancel, and streams that resume by Last-Event-ID. */
import { AionApiError, ClientErrorCodes } from './errors.js';
import { readEvents } from './sse.js';
import { abortError, type Transport } from './transport.js';
import type { TaskEvent, TaskRequest, TaskResult } from './types.js';

export interface SubmitOptions {
  /** Defaults to a new random key, so a retried submit never runs the task twice. */
  idempotencyKey?: string;
  /** Answer with the final result: true (the server's longest wait) or milliseconds. */
  wait?: boolean | number;
  signal?: AbortSignal;
}

export interface StreamOptions {
  /** Resume after this event id (what the last event you saw carried). */
  lastEventId?: number;
  /** Reconnections after a dropped connection before giving up (default 5). */
  reconnects?: number;
  signal?: AbortSignal;
}

const FINAL = new Set(['OK', 'ERROR', 'TIMEOUT', 'CANCELED']);

export class TasksApi {
  constructor(private readonly transport: Transport) {}

  /** Submits a task: QUEUED or RUNNING at once, or the final result with `wait`. */
  submit(request: TaskRequest, options: SubmitOptions = {}): Promise<TaskResult> {
    const body = options.wait === undefined ? request : { ...request, wait: options.wait };
    const headers = { 'idempotency-key': options.idempotencyKey ?? newKey() };
    return this.transport.json<TaskResult>('POST', '/v1/tasks', body, { headers, idempotent: true, signal: options.signal });
  }

  get(taskId: string, options: { signal?: AbortSignal } = {}): Promise<TaskResult> {
    return this.transport.json<TaskResult>('GET', `/v1/tasks/${encodeURIComponent(taskId)}`, undefined, options);
  }

  /** Cancels a task in flight; a finished task is `CONFLICT`. */
  cancel(taskId: string, options: { signal?: AbortSignal } = {}): Promise<TaskResult> {
    return this.transport.json<TaskResult>('POST', `/v1/tasks/${encodeURIComponent(taskId)}/cancel`, undefined, options);
  }

  /**
   * The task's events until `done` or `error`. A dropped connection is reopened with the id of the
   * last event received, so no event is lost or repeated.
   */
  async *stream(taskId: string, options: StreamOptions = {}): AsyncGenerator<TaskEvent> {
    let lastEventId = options.lastEventId ?? 0;
    let reconnects = options.reconnects ?? 5;
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { accept: 'text/event-stream' };
      if (lastEventId > 0) headers['last-event-id'] = String(lastEventId);
      let ended = false;
      try {
        const res = await this.transport.send('GET', `/v1/stream/${encodeURIComponent(taskId)}`, undefined, {
          headers,
          signal: options.signal,
          idempotent: true,
        });
        for await (const message of readEvents(res, options.signal)) {
          const event = { id: message.id ? Number(message.id) : 0, event: message.event ?? 'message', data: JSON.parse(message.data) } as TaskEvent;
          if (event.id) lastEventId = event.id;
          yield event;
          if (event.event === 'done' || event.event === 'error') {
            ended = true;
            return;
          }
        }
      } catch (err) {
        if (options.signal?.aborted) throw abortError(options.signal, err);
        if (err instanceof AionApiError && err.status !== 0) throw err;
        if (reconnects-- <= 0)
          throw err instanceof AionApiError
            ? err
            : new AionApiError(ClientErrorCodes.NETWORK_ERROR, `the stream of ${taskId} broke: ${(err as Error).message}`, { cause: err });
        await this.transport.backoff(attempt, undefined, options.signal);
        continue;
      }
      if (ended) return;
      if (options.signal?.aborted) throw abortError(options.signal);
      // The server closed the stream before the last event: resume where it stopped.
      if (reconnects-- <= 0) throw new AionApiError(ClientErrorCodes.NETWORK_ERROR, `the stream of ${taskId} ended before its done or error event`);
    }
  }

  /**
   * Submits a task and follows it to the end: `onToken` gets the text as it arrives. Aborting the
   * signal cancels the task, since this call started it.
   */
  async run(
    request: TaskRequest,
    options: { signal?: AbortSignal; idempotencyKey?: string; onEvent?: (event: TaskEvent) => void; onToken?: (text: string) => void } = {},
  ): Promise<TaskResult> {
    const task = await this.submit(request, { idempotencyKey: options.idempotencyKey, signal: options.signal });
    if (FINAL.has(task.status)) return task;
    try {
      for await (const event of this.stream(task.task_id, { signal: options.signal })) {
        options.onEvent?.(event);
        if (event.event === 'token') options.onToken?.(event.data.text);
        if (event.event === 'done') return event.data;
        if (event.event === 'error') return event.data.task ?? (await this.get(task.task_id));
      }
      return await this.get(task.task_id);
    } catch (err) {
      if (options.signal?.aborted) await this.cancel(task.task_id).catch(() => undefined);
      throw err;
    }
  }
}

function newKey(): string {
  return globalThis.crypto.randomUUID();
}
