/**
 * Tasks across kernels (several `--workers`, or several machines) through Redis: the kernel that runs
 * a task appends its events to a Redis stream, so a client that reconnects to another kernel resumes
 * there from its Last-Event-ID; and a cancel that reaches another kernel is passed on to the one that
 * runs the task. Without Redis a task's live events and cancel stay with the kernel that runs it.
 */
import { Redis } from 'ioredis';
import type { Disposable } from '@aion/extension-api';
import type { TaskEvent } from './eventLog.js';

const FINAL_EVENTS = new Set(['done', 'error']);
/** A task's stream outlives its end by this long, for clients that come back late. */
const STREAM_TTL_SECONDS = 15 * 60;
/** Events kept per task (approximately, as Redis trims): a long streamed answer has one per token. */
const STREAM_MAX_EVENTS = 100_000;
/** How long one blocking read waits before the follower looks at whether the task ended without it. */
const BLOCK_MS = 5_000;

export interface TaskRelay extends Disposable {
  /** Appends one event of a task this kernel runs. */
  publish(taskId: string, event: TaskEvent): void;
  /** The task's events after `afterId`, then live ones until its final event; `ended` says whether it ended without one. */
  follow(taskId: string, afterId: number, ended: () => Promise<TaskEvent | undefined>): AsyncGenerator<TaskEvent>;
  /** Asks whichever kernel runs the task to cancel it. */
  requestCancel(taskId: string): Promise<void>;
  /** Cancels asked for on any kernel; the handler ignores tasks it does not run. */
  onCancel(handler: (taskId: string) => void): void;
}

export function redisUrlMasked(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'redis://(unparsable URL)';
  }
}

export class RedisTaskRelay implements TaskRelay {
  private readonly writer: Redis;
  private readonly subscriber: Redis;
  private readonly readers = new Set<Redis>();
  private readonly cancelHandlers: Array<(taskId: string) => void> = [];
  private writes: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly url: string,
    private readonly prefix: string,
    private readonly log: (level: 'warn' | 'error', message: string) => void,
  ) {
    this.writer = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2 });
    this.subscriber = this.writer.duplicate();
    for (const c of [this.writer, this.subscriber])
      c.on('error', (err: Error) => log('warn', `task relay Redis error (${redisUrlMasked(url)}): ${err.message}`));
  }

  static async connect(url: string, prefix: string, log: (level: 'warn' | 'error', message: string) => void): Promise<RedisTaskRelay> {
    const relay = new RedisTaskRelay(url, prefix, log);
    await Promise.all([relay.writer.connect(), relay.subscriber.connect()]);
    await relay.subscriber.subscribe(relay.cancelChannel);
    relay.subscriber.on('message', (_channel: string, taskId: string) => {
      for (const handler of relay.cancelHandlers) handler(taskId);
    });
    return relay;
  }

  private key(taskId: string): string {
    return `${this.prefix}:task:${taskId}`;
  }

  private get cancelChannel(): string {
    return `${this.prefix}:cancel`;
  }

  publish(taskId: string, event: TaskEvent): void {
    const key = this.key(taskId);
    // One writer, in order: a reader never sees event 5 before event 4.
    const pipeline = this.writer.multi().xadd(key, 'MAXLEN', '~', STREAM_MAX_EVENTS, '*', 'e', JSON.stringify(event)).expire(key, STREAM_TTL_SECONDS);
    this.writes = this.writes.then(() => pipeline.exec()).catch((err: Error) => this.log('warn', `task ${taskId}: an event was not relayed: ${err.message}`));
  }

  async *follow(taskId: string, afterId: number, ended: () => Promise<TaskEvent | undefined>): AsyncGenerator<TaskEvent> {
    // A blocking read holds its connection, so each follower has its own.
    const reader = this.writer.duplicate();
    this.readers.add(reader);
    try {
      let cursor = '0-0';
      for (;;) {
        const answer = (await reader.xread('BLOCK', BLOCK_MS, 'STREAMS', this.key(taskId), cursor)) as Array<[string, Array<[string, string[]]>]> | null;
        if (!answer) {
          // Nothing new: the task may have ended on a kernel that died, or before its stream existed.
          const final = await ended();
          if (final) {
            if (final.id > afterId) yield final;
            return;
          }
          continue;
        }
        for (const [, entries] of answer) {
          for (const [entryId, fields] of entries) {
            cursor = entryId;
            const event = JSON.parse(fields[1]!) as TaskEvent;
            if (event.id <= afterId) continue;
            yield event;
            if (FINAL_EVENTS.has(event.event)) return;
          }
        }
      }
    } finally {
      this.readers.delete(reader);
      reader.disconnect();
    }
  }

  async requestCancel(taskId: string): Promise<void> {
    await this.writer.publish(this.cancelChannel, taskId);
  }

  onCancel(handler: (taskId: string) => void): void {
    this.cancelHandlers.push(handler);
  }

  async dispose(): Promise<void> {
    await this.writes;
    for (const reader of this.readers) reader.disconnect();
    await Promise.allSettled([this.writer.quit(), this.subscriber.quit()]);
  }
}
