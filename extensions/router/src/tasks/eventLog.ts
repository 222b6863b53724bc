export interface TaskEvent {
  /** 1, 2, 3…: what a client sends back as Last-Event-ID. */
  id: number;
  event: 'token' | 'partial' | 'tool' | 'step' | 'done' | 'error';
  data: unknown;
}

/**
 * The events of one task, kept so a subscriber that joins late or reconnects with Last-Event-ID
 * gets everything after the id it saw, then follows live until the task ends.
 */
export class EventLog {
  readonly events: TaskEvent[] = [];
  private closed = false;
  private wake?: () => void;
  private woken?: Promise<void>;
  closedAt?: number;

  /**
   * `onEvent` sees every event as it is added (the relay to other kernels). `idsAfter`: the last id a
   * client may already hold, for a task taken over from a kernel that stopped, so ids keep increasing.
   */
  constructor(
    private readonly onEvent?: (event: TaskEvent) => void,
    private readonly idsAfter = 0,
  ) {}

  get isClosed(): boolean {
    return this.closed;
  }

  push(event: TaskEvent['event'], data: unknown): void {
    if (this.closed) return;
    const added: TaskEvent = { id: this.idsAfter + this.events.length + 1, event, data };
    this.events.push(added);
    this.onEvent?.(added);
    this.notify();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.closedAt = Date.now();
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    this.woken = undefined;
    wake?.();
  }

  private changed(): Promise<void> {
    this.woken ??= new Promise<void>((resolve) => (this.wake = resolve));
    return this.woken;
  }

  /** Events after `afterId`, then live ones until the task ends. */
  async *follow(afterId = 0): AsyncGenerator<TaskEvent> {
    let index = Math.max(0, Math.min(afterId - this.idsAfter, this.events.length));
    for (;;) {
      while (index < this.events.length) yield this.events[index++]!;
      if (this.closed) return;
      await this.changed();
    }
  }
}
