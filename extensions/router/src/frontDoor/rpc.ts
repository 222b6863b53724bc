import { AionError, AsyncQueue, ErrorCodes, isAionError } from '@aion/extension-api';
import type { Caller } from '../caller.js';
import { validateTaskInput } from './input.js';
import type { TaskService } from '../tasks/tasks.js';

interface JsonRpcRequest {
  jsonrpc?: string;
  id?: string | number | null;
  method?: unknown;
  params?: unknown;
}

type JsonRpcResponse = { jsonrpc: '2.0'; id: string | number | null; result?: unknown; error?: { code: number; message: string; data?: unknown } };

/** JSON-RPC error codes: the spec's, and -32000 for an Aion error whose stable code travels in `data.code`. */
const PARSE_ERROR = -32700;
const INVALID_REQUEST = -32600;
const METHOD_NOT_FOUND = -32601;
const INVALID_PARAMS = -32602;
const SERVER_ERROR = -32000;

function errorOf(err: unknown): { code: number; message: string; data?: unknown } {
  if (isAionError(err)) {
    const code = err.code === ErrorCodes.VALIDATION_FAILED || err.code === ErrorCodes.BAD_REQUEST ? INVALID_PARAMS : SERVER_ERROR;
    return { code, message: err.message, data: { code: err.code, details: err.details } };
  }
  return { code: SERVER_ERROR, message: 'internal error', data: { code: ErrorCodes.INTERNAL } };
}

function taskIdOf(params: unknown): string {
  const id = (params as { task_id?: unknown } | undefined)?.task_id;
  if (typeof id !== 'string' || !id) throw new AionError(ErrorCodes.VALIDATION_FAILED, 'params.task_id is required');
  return id;
}

/**
 * One WebSocket connection speaking JSON-RPC 2.0: `tasks.submit`, `tasks.get`, `tasks.subscribe`,
 * `tasks.unsubscribe`, `tasks.cancel`; subscribed tasks send `tasks.event` notifications
 * `{ task_id, id, event, data }` (the same events as the SSE stream). Batches are answered as batches.
 */
export function jsonRpcSession(messages: AsyncIterable<string>, tasks: TaskService, caller: Caller): AsyncIterable<object> {
  const subscriptions = new Map<string, AsyncIterator<unknown>>();
  const out = new AsyncQueue<object>({ onReturn: () => stopAll() });
  function stopAll(): void {
    for (const it of subscriptions.values()) void it.return?.(undefined);
    subscriptions.clear();
  }

  async function subscribe(taskId: string, afterId: number): Promise<void> {
    if (subscriptions.has(taskId)) return;
    const events = (await tasks.events(taskId, caller, afterId))[Symbol.asyncIterator]();
    subscriptions.set(taskId, events);
    void (async () => {
      try {
        for (;;) {
          const next = await events.next();
          if (next.done) break;
          const e = next.value as { id: number; event: string; data: unknown };
          out.push({ jsonrpc: '2.0', method: 'tasks.event', params: { task_id: taskId, id: e.id, event: e.event, data: e.data } });
        }
      } catch (err) {
        out.push({ jsonrpc: '2.0', method: 'tasks.event', params: { task_id: taskId, event: 'error', data: errorOf(err).data } });
      } finally {
        if (subscriptions.get(taskId) === events) subscriptions.delete(taskId);
      }
    })();
  }

  async function call(method: string, params: unknown): Promise<unknown> {
    switch (method) {
      case 'tasks.submit': {
        const { subscribe: follow, ...body } = (params ?? {}) as { subscribe?: boolean };
        const input = validateTaskInput(body, 'params');
        const { task } = await tasks.submit({ ...input, wait: undefined }, caller);
        if (follow) await subscribe(task.task_id, 0);
        if (input.wait) return tasks.wait(task.task_id, typeof input.wait === 'number' ? input.wait : Number.MAX_SAFE_INTEGER);
        return task;
      }
      case 'tasks.get':
        return tasks.get(taskIdOf(params), caller);
      case 'tasks.subscribe': {
        const taskId = taskIdOf(params);
        const last = (params as { last_event_id?: unknown }).last_event_id;
        await subscribe(taskId, typeof last === 'number' ? last : typeof last === 'string' ? Number(last) || 0 : 0);
        return { task_id: taskId, subscribed: true };
      }
      case 'tasks.unsubscribe': {
        const taskId = taskIdOf(params);
        void subscriptions.get(taskId)?.return?.(undefined);
        subscriptions.delete(taskId);
        return { task_id: taskId, subscribed: false };
      }
      case 'tasks.cancel':
        return tasks.cancel(taskIdOf(params), caller);
      default:
        throw Object.assign(new Error(`no method ${method}`), { rpcCode: METHOD_NOT_FOUND });
    }
  }

  async function answer(message: JsonRpcRequest): Promise<JsonRpcResponse | undefined> {
    const id = message.id ?? null;
    if (typeof message !== 'object' || message === null || message.jsonrpc !== '2.0' || typeof message.method !== 'string') {
      return { jsonrpc: '2.0', id, error: { code: INVALID_REQUEST, message: 'not a JSON-RPC 2.0 request' } };
    }
    const isNotification = message.id === undefined;
    try {
      const result = await call(message.method, message.params);
      return isNotification ? undefined : { jsonrpc: '2.0', id, result };
    } catch (err) {
      if (isNotification) return undefined;
      const rpcCode = (err as { rpcCode?: number }).rpcCode;
      return { jsonrpc: '2.0', id, error: rpcCode ? { code: rpcCode, message: (err as Error).message } : errorOf(err) };
    }
  }

  void (async () => {
    try {
      for await (const frame of messages) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(frame);
        } catch {
          out.push({ jsonrpc: '2.0', id: null, error: { code: PARSE_ERROR, message: 'the frame is not valid JSON' } });
          continue;
        }
        if (Array.isArray(parsed)) {
          if (parsed.length === 0) {
            out.push({ jsonrpc: '2.0', id: null, error: { code: INVALID_REQUEST, message: 'an empty batch' } });
            continue;
          }
          void Promise.all(parsed.map((m) => answer(m as JsonRpcRequest))).then((answers) => {
            const batch = answers.filter((a): a is JsonRpcResponse => a !== undefined);
            if (batch.length) out.push(batch);
          });
        } else void answer(parsed as JsonRpcRequest).then((a) => a && out.push(a));
      }
    } finally {
      stopAll();
      out.end();
    }
  })();
  return out;
}
