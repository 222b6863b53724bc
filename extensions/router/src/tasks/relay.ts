/**
 * Tasks across kernels (several `--workers`, or several machines) through Redis: the kernel that runs
 * a task appends its events to a Redis stream, so a client that reconnects to another kernel resumes
 * there from its Last-Event-ID; a cancel that reaches another kernel is passed on to the one that
 * runs the task; a circuit that opens or closes on one kernel does on the others; and the latencies
 * each kernel measures reach the others' windows, so all route on what all saw. Without Redis
 * each kernel keeps these to itself.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { maskUrlPassword, type Disposable } from '@aion/extension-api';
import type { LatencySamples } from '../providers/health.js';
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
  /** The id of the task's last relayed event (0 when none): where a kernel taking the task over continues. */
  lastEventId(taskId: string): Promise<number>;
  /** Asks whichever kernel runs the task to cancel it. */
  requestCancel(taskId: string): Promise<void>;
  /** Cancels asked for on any kernel; the handler ignores tasks it does not run. */
  onCancel(handler: (taskId: string) => void): void;
  /** Tells the other kernels a circuit opened (for how long) or closed here. */
  publishCircuit(engine: string, state: 'open' | 'closed', openForMs: number): void;
  /** Circuits other kernels opened or closed (never this kernel's own). */
  onCircuit(handler: (engine: string, state: 'open' | 'closed', openForMs: number) => void): void;
  /** Tells the other kernels the latencies measured here since the last time. */
  publishLatency(samples: LatencySamples): void;
  /** Latencies other kernels measured (never this kernel's own). */
  onLatency(handler: (samples: LatencySamples) => void): void;
}

/** Samples one message may carry per engine and kind: a window's worth. */
const MAX_SAMPLES = 128;

/** A latency message from another kernel, kept only where it is well formed: finite, non-negative numbers, at most a window per engine. */
function latencySamplesOf(value: unknown): LatencySamples | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const out: LatencySamples = {};
  const numbers = (list: unknown) =>
    Array.isArray(list) ? list.slice(-MAX_SAMPLES).filter((n): n is number => typeof n === 'number' && Number.isFinite(n) && n >= 0) : undefined;
  for (const [engine, entry] of Object.entries(value as Record<string, unknown>)) {
    if (typeof entry !== 'object' || entry === null) continue;
    const { latency, firstToken } = entry as { latency?: unknown; firstToken?: unknown };
    out[engine] = { latency: numbers(latency), firstToken: numbers(firstToken) };
  }
  return out;
}

export class RedisTaskRelay implements TaskRelay {
  private readonly writer: Redis;
  private readonly subscriber: Redis;
  private readonly readers = new Set<Redis>();
  private readonly cancelHandlers: Array<(taskId: string) => void> = [];
  private readonly circuitHandlers: Array<(engine: string, state: 'open' | 'closed', openForMs: number) => void> = [];
  private readonly latencyHandlers: Array<(samples: LatencySamples) => void> = [];
  /** Tells this kernel's own circuit messages apart from the others'. */
  private readonly kernelId = randomUUID();
  private writes: Promise<unknown> = Promise.resolve();

  private constructor(
    url: string,
    private readonly prefix: string,
    private readonly log: (level: 'warn' | 'error', message: string) => void,
  ) {
    this.writer = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2 });
    this.subscriber = this.writer.duplicate();
    for (const c of [this.writer, this.subscriber])
      c.on('error', (err: Error) => log('warn', `task relay Redis error (${maskUrlPassword(url)}): ${err.message}`));
  }

  static async connect(url: string, prefix: string, log: (level: 'warn' | 'error', message: string) => void): Promise<RedisTaskRelay> {
    const relay = new RedisTaskRelay(url, prefix, log);
    await Promise.all([relay.writer.connect(), relay.subscriber.connect()]);
    await relay.subscriber.subscribe(relay.cancelChannel, relay.circuitChannel, relay.latencyChannel);
    relay.subscriber.on('message', (channel: string, message: string) => {
      if (channel === relay.cancelChannel) for (const handler of relay.cancelHandlers) handler(message);
      else if (channel === relay.latencyChannel) relay.latencyMessage(message);
      else relay.circuitMessage(message);
    });
    return relay;
  }

  private key(taskId: string): string {
    return `${this.prefix}:task:${taskId}`;
  }

  private get cancelChannel(): string {
    return `${this.prefix}:cancel`;
  }

  private get circuitChannel(): string {
    return `${this.prefix}:circuit`;
  }

  private get latencyChannel(): string {
    return `${this.prefix}:latency`;
  }

  private latencyMessage(message: string): void {
    let m: { from?: unknown; samples?: unknown };
    try {
      m = JSON.parse(message);
    } catch {
      return;
    }
    if (m.from === this.kernelId) return;
    const samples = latencySamplesOf(m.samples);
    if (samples) for (const handler of this.latencyHandlers) handler(samples);
  }

  publishLatency(samples: LatencySamples): void {
    this.writer
      .publish(this.latencyChannel, JSON.stringify({ from: this.kernelId, samples }))
      .catch((err: Error) => this.log('warn', `latencies were not shared: ${err.message}`));
  }

  onLatency(handler: (samples: LatencySamples) => void): void {
    this.latencyHandlers.push(handler);
  }

  private circuitMessage(message: string): void {
    let m: { from?: string; engine?: string; state?: string; openForMs?: number };
    try {
      m = JSON.parse(message);
    } catch {
      return;
    }
    if (m.from === this.kernelId || typeof m.engine !== 'string' || (m.state !== 'open' && m.state !== 'closed')) return;
    for (const handler of this.circuitHandlers) handler(m.engine, m.state, Number(m.openForMs) || 0);
  }

  publishCircuit(engine: string, state: 'open' | 'closed', openForMs: number): void {
    this.writer
      .publish(this.circuitChannel, JSON.stringify({ from: this.kernelId, engine, state, openForMs }))
      .catch((err: Error) => this.log('warn', `circuit ${engine} was not shared: ${err.message}`));
  }

  onCircuit(handler: (engine: string, state: 'open' | 'closed', openForMs: number) => void): void {
    this.circuitHandlers.push(handler);
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

  async lastEventId(taskId: string): Promise<number> {
    const [last] = (await this.writer.xrevrange(this.key(taskId), '+', '-', 'COUNT', 1)) as Array<[string, string[]]>;
    return last ? (JSON.parse(last[1][1]!) as TaskEvent).id : 0;
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
