import type { EventsConfiguration } from './config.js';
import { backoffDelay } from './config.js';
import type { Outbox } from './outbox.js';
import type { Sink } from './sinks/sink.js';

export interface DispatcherOptions {
  name: string;
  outbox: Outbox;
  /** The sink to deliver to, made on first use (a contributed sink activates its extension then). */
  sink: () => Promise<Sink>;
  settings: () => EventsConfiguration;
  /** This kernel's lease owner id. */
  owner: string;
  log: (level: 'info' | 'warn', message: string) => void;
}

/**
 * Delivers one sink's backlog in event id order. A failed event blocks the ones after it (the ordering
 * guarantee) and is retried with capped exponential backoff, forever unless dead-lettering is configured.
 */
export class SinkDispatcher {
  private running: Promise<void> | undefined;
  private stopped = false;
  private wakeIdle: (() => void) | undefined;
  private wakeAll = new Set<() => void>();
  private woken = false;

  constructor(private readonly o: DispatcherOptions) {}

  get name(): string {
    return this.o.name;
  }

  start(): void {
    this.running ??= this.loop();
  }

  /** New events for this sink: an idle dispatcher looks at once instead of at its next poll. */
  wake(): void {
    this.woken = true;
    this.wakeIdle?.();
  }

  async stop(graceMs = 2000): Promise<void> {
    this.stopped = true;
    for (const wake of this.wakeAll) wake();
    // A delivery in flight finishes (or times out) on its own; the kernel does not wait longer than the grace.
    await Promise.race([this.running, new Promise((r) => setTimeout(r, graceMs).unref())]);
    await this.o.outbox.releaseLease(this.o.name, this.o.owner).catch(() => undefined);
  }

  private sleep(ms: number, idle: boolean): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (idle && this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakeAll.delete(done);
        if (this.wakeIdle === done) this.wakeIdle = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeAll.add(done);
      if (idle) this.wakeIdle = done;
    });
  }

  private async loop(): Promise<void> {
    const { name, outbox } = this.o;
    let sink: Sink | undefined;
    while (!this.stopped) {
      const settings = this.o.settings();
      try {
        this.woken = false;
        if (!(await outbox.lease(name, this.o.owner, settings.leaseMs))) {
          await this.sleep(settings.pollIntervalMs, false);
          continue;
        }
        let leasedAt = Date.now();
        const batch = await outbox.pending(name, settings.batchSize);
        if (batch.length === 0) {
          await this.sleep(settings.pollIntervalMs, true);
          continue;
        }
        sink ??= await this.o.sink();
        for (const { event, attempts: before } of batch) {
          if (this.stopped) break;
          if (Date.now() - leasedAt > settings.leaseMs / 2) {
            if (!(await outbox.lease(name, this.o.owner, settings.leaseMs))) break;
            leasedAt = Date.now();
          }
          const attempts = before + 1;
          try {
            await sink.deliver(event);
          } catch (err) {
            const error = (err as Error).message || String(err);
            const limit = settings.deadLetterAfterAttempts;
            const dead = limit > 0 && attempts >= limit;
            const delay = backoffDelay(attempts, settings.retry);
            const now = Date.now();
            await outbox.markFailed(name, event.id, { attempts, error, at: now, nextAttemptAt: dead ? null : now + delay, dead });
            if (dead) {
              this.o.log('warn', `sink ${name}: event ${event.id} (${event.type}) set aside as dead after ${attempts} tries: ${error}`);
              continue;
            }
            if (attempts === 1 || attempts % 10 === 0)
              this.o.log('warn', `sink ${name}: event ${event.id} not delivered (try ${attempts}, next in ${delay} ms): ${error}`);
            await this.sleep(delay, false);
            break;
          }
          await outbox.markDelivered(name, event.id, attempts, Date.now());
        }
      } catch (err) {
        // The database or the sink's extension failed: the backlog stays, and the dispatcher tries again.
        this.o.log('warn', `sink ${name}: dispatch failed: ${(err as Error).message}`);
        await sink?.close().catch(() => undefined);
        sink = undefined;
        await this.sleep(settings.pollIntervalMs, false);
      }
    }
    await sink?.close().catch(() => undefined);
  }
}
