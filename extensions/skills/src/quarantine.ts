import { Emitter, type Event } from '@aion/extension-api';

export interface QuarantineOptions {
  enabled: boolean;
  /** Fatal sandbox failures of one skill within `windowMs` that quarantine it. */
  maxFailures: number;
  windowMs: number;
}

export interface QuarantineFailure {
  code: string;
  message: string;
  /** ISO time. */
  at: string;
}

export interface QuarantineRecord {
  /** Why, in words a person can act on. */
  reason: string;
  /** ISO time the skill was quarantined. */
  at: string;
  /** The failures that tipped it, oldest first. */
  failures: QuarantineFailure[];
}

/**
 * Takes a skill out of service when the sandbox keeps having to kill it: every fatal failure (a
 * timed-out or out-of-memory WASM worker, a crashed worker, a process killed by a signal) is
 * counted per skill in a sliding window, and the skill whose count reaches `maxFailures` is
 * quarantined until an operator enables it again. Its neighbours are not touched.
 */
export class SkillQuarantine {
  private readonly recent = new Map<string, Array<QuarantineFailure & { atMs: number }>>();
  private readonly records = new Map<string, QuarantineRecord>();
  private readonly changed = new Emitter<string>();
  /** Fires with the skill id when a skill is quarantined or released. */
  readonly onDidChange: Event<string> = this.changed.event;

  constructor(
    private readonly options: QuarantineOptions,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts one fatal failure; answers the record when it quarantines the skill. */
  recordFatal(id: string, code: string, message: string): QuarantineRecord | undefined {
    if (!this.options.enabled || this.records.has(id)) return undefined;
    const now = this.now();
    const window = (this.recent.get(id) ?? []).filter((f) => now - f.atMs < this.options.windowMs);
    window.push({ code, message, at: new Date(now).toISOString(), atMs: now });
    if (window.length < this.options.maxFailures) {
      this.recent.set(id, window);
      return undefined;
    }
    this.recent.delete(id);
    const codes = window.map((f) => f.code).join(', ');
    const record: QuarantineRecord = {
      reason: `The sandbox had to kill it ${window.length} times within ${Math.round(this.options.windowMs / 1000)} s (${codes}); the last time: ${message}`,
      at: new Date(now).toISOString(),
      failures: window.map(({ atMs: _atMs, ...failure }) => failure),
    };
    this.records.set(id, record);
    this.changed.fire(id);
    return record;
  }

  get(id: string): QuarantineRecord | undefined {
    return this.records.get(id);
  }

  /** Lifts the quarantine and forgets the skill's recent failures; answers whether it was quarantined. */
  release(id: string): boolean {
    this.recent.delete(id);
    if (!this.records.delete(id)) return false;
    this.changed.fire(id);
    return true;
  }

  entries(): Record<string, QuarantineRecord> {
    return Object.fromEntries(this.records);
  }

  /** Puts back what `entries()` saved, skipping anything that is not a record. */
  restore(saved: unknown): void {
    if (typeof saved !== 'object' || saved === null) return;
    for (const [id, record] of Object.entries(saved as Record<string, Partial<QuarantineRecord>>)) {
      if (typeof record?.reason === 'string' && typeof record.at === 'string')
        this.records.set(id, { reason: record.reason, at: record.at, failures: Array.isArray(record.failures) ? record.failures : [] });
    }
  }

  dispose(): void {
    this.changed.dispose();
  }
}
