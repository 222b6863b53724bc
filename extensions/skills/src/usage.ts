import type { Memento } from '@aion/extension-api';

export interface UsageRow {
  skill: string;
  /** `tenant/subject`, with `via extension` when another extension called on its behalf. */
  caller: string;
  calls: number;
  errors: number;
  errorsByCode: Record<string, number>;
  totalMs: number;
  maxMs: number;
  /** ISO time of the last call. */
  lastAt: string;
}

interface Row extends Omit<UsageRow, 'lastAt'> {
  lastAtMs: number;
}

const STATE_KEY = 'usage.v1';
const MAX_ROWS = 10_000;

/**
 * Calls, errors and durations per skill and caller, in memory, and persisted through `ctx.state`
 * (served by `aion.storage`) when that extension is installed.
 */
export class UsageRecorder {
  private readonly rows = new Map<string, Row>();
  private dirty = false;
  private persistence: Memento | undefined;
  private timer: NodeJS.Timeout | undefined;
  private delayMs = 2_000;

  constructor(private readonly onPersistError: (err: unknown) => void = () => undefined) {}

  /** Loads earlier figures and saves new ones `delayMs` after a call; without storage it stays in memory. */
  async persistTo(state: Memento, delayMs = 2_000): Promise<boolean> {
    let saved: UsageRow[] | undefined;
    try {
      saved = await state.get<UsageRow[]>(STATE_KEY);
    } catch {
      return false;
    }
    for (const { lastAt, ...row } of saved ?? [])
      if (!this.rows.has(key(row.skill, row.caller))) this.rows.set(key(row.skill, row.caller), { ...row, lastAtMs: Date.parse(lastAt) || 0 });
    this.persistence = state;
    this.delayMs = delayMs;
    return true;
  }

  record(skill: string, caller: string, durationMs: number, errorCode?: string): void {
    const k = key(skill, caller);
    let row = this.rows.get(k);
    if (!row) {
      if (this.rows.size >= MAX_ROWS) this.evictOldest();
      row = { skill, caller, calls: 0, errors: 0, errorsByCode: {}, totalMs: 0, maxMs: 0, lastAtMs: 0 };
      this.rows.set(k, row);
    }
    row.calls++;
    row.totalMs += durationMs;
    if (durationMs > row.maxMs) row.maxMs = durationMs;
    row.lastAtMs = Date.now();
    if (errorCode) {
      row.errors++;
      row.errorsByCode[errorCode] = (row.errorsByCode[errorCode] ?? 0) + 1;
    }
    this.dirty = true;
    // Saved shortly after, not per call: one write covers a burst of calls.
    if (this.persistence && !this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, this.delayMs);
      this.timer.unref();
    }
  }

  list(filter: { skill?: string; caller?: string } = {}): Array<UsageRow & { averageMs: number }> {
    return [...this.rows.values()]
      .filter((r) => (!filter.skill || r.skill === filter.skill) && (!filter.caller || r.caller === filter.caller))
      .map(({ lastAtMs, ...r }) => ({
        ...r,
        totalMs: round(r.totalMs),
        maxMs: round(r.maxMs),
        averageMs: round(r.totalMs / Math.max(1, r.calls)),
        lastAt: new Date(lastAtMs).toISOString(),
      }))
      .sort((a, b) => b.calls - a.calls);
  }

  async flush(): Promise<void> {
    if (!this.persistence || !this.dirty) return;
    this.dirty = false;
    try {
      await this.persistence.update(
        STATE_KEY,
        this.list().map(({ averageMs: _a, ...row }) => row),
      );
    } catch (err) {
      this.dirty = true;
      this.onPersistError(err);
    }
  }

  async dispose(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  private evictOldest(): void {
    let oldest: [string, Row] | undefined;
    for (const entry of this.rows) if (!oldest || entry[1].lastAtMs < oldest[1].lastAtMs) oldest = entry;
    if (oldest) this.rows.delete(oldest[0]);
  }
}

function key(skill: string, caller: string): string {
  return `${skill}\u0000${caller}`;
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
