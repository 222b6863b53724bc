/**
 * The aion.v1.AionTasks handlers. Every call runs a router command for the caller with
 * `commands.executeFor`, so the kernel verifies the metadata's credentials through the same
 * `http.authenticate` hook as REST, and the router owns and checks the task exactly as for REST.
 */
import { AsyncResource } from 'node:async_hooks';
import * as aion from '@aion/extension-api';
import { CancellationTokenSource } from '@aion/extension-api';
import type { Metadata, sendUnaryData, ServerUnaryCall, ServerWritableStream, ServiceError, UntypedServiceImplementation } from '@grpc/grpc-js';
import { taskBodyOf, taskEventOf, taskResultOf, type TaskRequestMessage } from './convert.js';
import { aionError, toServiceError } from './status.js';

interface Credentials {
  authorization?: string;
  apiKey?: string;
}

interface Task {
  task_id: string;
  status: string;
  error?: { code: string; message: string } | null;
  [key: string]: unknown;
}

interface TaskEvent {
  id: number;
  event: string;
  data: any;
}

const FINAL = new Set(['OK', 'ERROR', 'TIMEOUT', 'CANCELED']);

export interface ServiceSettings {
  maxInFlight(): number;
  defaultWaitMs(): number;
  retryAfterSeconds(): number;
  log(level: 'info' | 'warn', message: string): void;
}

/** Counts calls in flight; past the limit new calls are refused before any work. */
export class Admission {
  inFlight = 0;
  constructor(private readonly limit: () => number) {}
  tryEnter(): boolean {
    if (this.inFlight >= this.limit()) return false;
    this.inFlight++;
    return true;
  }
  leave(): void {
    this.inFlight--;
  }
}

function credentialsOf(metadata: Metadata): Credentials {
  const first = (key: string) => {
    const value = metadata.get(key)[0];
    return typeof value === 'string' && value ? value : undefined;
  };
  const authorization = first('authorization');
  const apiKey = first('x-api-key');
  if (!authorization && !apiKey) {
    throw new aion.AionError(
      aion.ErrorCodes.UNAUTHENTICATED,
      'send credentials in metadata: authorization: Bearer <access token or API key>, or x-api-key: <key>',
    );
  }
  return { authorization, apiKey };
}

/** Milliseconds left before the call's deadline, or undefined when it has none. */
function deadlineLeft(call: { getDeadline(): Date | number }): number | undefined {
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined;
}

export function createTaskService(admission: Admission, settings: ServiceSettings): UntypedServiceImplementation {
  const run = <T>(credentials: Credentials, command: string, ...args: unknown[]) => aion.commands.executeFor<T>(credentials, command, ...args);
  const overloaded = () =>
    aionError('SATURATED', `the gRPC service has ${admission.inFlight} calls in flight, its limit; retry shortly`, {
      'Retry-After': String(settings.retryAfterSeconds()),
    });

  // Cancels a task this call started and stopped waiting for; a task that already ended is left as it is.
  const abandon = (credentials: Credentials, task: Task) => {
    if (FINAL.has(task.status)) return;
    run(credentials, 'router.tasks.cancel', task.task_id).catch((err) => {
      if ((err as { code?: string }).code !== 'CONFLICT')
        settings.log('warn', `task ${task.task_id} was not cancelled after its call ended: ${(err as Error).message}`);
    });
  };

  const submit = async (call: ServerUnaryCall<TaskRequestMessage, unknown>, callback: sendUnaryData<unknown>) => {
    if (!admission.tryEnter()) return callback(overloaded() as ServiceError);
    const cancellation = new CancellationTokenSource();
    let answered = false;
    call.on('cancelled', () => answered || cancellation.cancel());
    try {
      const credentials = credentialsOf(call.metadata);
      const left = deadlineLeft(call);
      const body = taskBodyOf(call.request, left);
      const waitMs = call.request.wait ? Math.min(left ?? settings.defaultWaitMs(), settings.defaultWaitMs()) : 0;
      const { task } = await run<{ task: Task }>(
        credentials,
        'router.tasks.submit',
        body,
        { idempotencyKey: call.request.idempotency_key || undefined, idempotencyBody: call.request, waitMs },
        cancellation.token,
      );
      if (call.cancelled) {
        if (waitMs > 0) abandon(credentials, task);
        return;
      }
      if (task.status === 'ERROR' && task.error?.code === 'SATURATED')
        return callback(aionError('SATURATED', task.error.message, { 'Retry-After': String(settings.retryAfterSeconds()) }) as ServiceError);
      callback(null, taskResultOf(task));
    } catch (err) {
      callback(toServiceError(err) as ServiceError);
    } finally {
      answered = true;
      admission.leave();
    }
  };

  const statusById = async (call: ServerUnaryCall<{ task_id?: string }, unknown>, callback: sendUnaryData<unknown>) => {
    if (!admission.tryEnter()) return callback(overloaded() as ServiceError);
    try {
      const credentials = credentialsOf(call.metadata);
      if (!call.request.task_id) throw new aion.AionError(aion.ErrorCodes.BAD_REQUEST, 'task_id is required');
      callback(null, taskResultOf(await run<Task>(credentials, 'router.tasks.get', call.request.task_id)));
    } catch (err) {
      callback(toServiceError(err) as ServiceError);
    } finally {
      admission.leave();
    }
  };

  const stream = async (call: ServerWritableStream<{ request?: TaskRequestMessage | null; task_id?: string; last_event_id?: number }, unknown>) => {
    if (!admission.tryEnter()) return void call.emit('error', overloaded());
    let credentials: Credentials | undefined;
    let submitted: Task | undefined;
    let finished = false;
    let iterator: AsyncIterator<TaskEvent> | undefined;
    const cancelled = new Promise<'cancelled'>((resolve) => call.on('cancelled', () => resolve('cancelled')));
    try {
      credentials = credentialsOf(call.metadata);
      const { request, task_id: followId, last_event_id: afterId = 0 } = call.request;
      if (request && followId) throw new aion.AionError(aion.ErrorCodes.BAD_REQUEST, 'send either request (a new task) or task_id (an existing one), not both');
      let taskId = followId;
      if (request) {
        submitted = (
          await run<{ task: Task }>(credentials, 'router.tasks.submit', taskBodyOf(request, deadlineLeft(call)), {
            idempotencyKey: request.idempotency_key || undefined,
            idempotencyBody: request,
          })
        ).task;
        taskId = submitted.task_id;
      }
      if (!taskId) throw new aion.AionError(aion.ErrorCodes.BAD_REQUEST, 'send request (a new task) or task_id (an existing one)');
      const events = await run<AsyncIterable<TaskEvent>>(credentials, 'router.tasks.events', taskId, request ? 0 : afterId);
      iterator = events[Symbol.asyncIterator]();
      for (;;) {
        const next = await Promise.race([iterator.next(), cancelled]);
        if (next === 'cancelled' || next.done) break;
        const event = next.value;
        if (!call.write(taskEventOf(event))) await Promise.race([new Promise((r) => call.once('drain', r)), cancelled]);
        if (event.event === 'done' || event.event === 'error') {
          finished = true;
          break;
        }
      }
      if (!call.cancelled) call.end();
    } catch (err) {
      if (!call.cancelled) call.emit('error', toServiceError(err));
    } finally {
      void iterator?.return?.().catch(() => undefined);
      // A stream that submitted its task owns it: hanging up (or the deadline) cancels it.
      if (call.cancelled && submitted && credentials && !finished) abandon(credentials, submitted);
      admission.leave();
    }
  };

  // grpc-js calls handlers from socket callbacks; binding keeps them in this extension's context.
  return {
    Submit: AsyncResource.bind(submit),
    StatusById: AsyncResource.bind(statusById),
    Stream: AsyncResource.bind(stream),
  };
}
