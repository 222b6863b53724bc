/** Calls in flight per key (a provider, an API key) against a limit; no queue: callers move on or answer 429/503. */
export class ConcurrencyLimiter {
  private readonly inFlight = new Map<string, number>();

  tryAcquire(key: string, limit: number): boolean {
    const n = this.inFlight.get(key) ?? 0;
    if (n >= limit) return false;
    this.inFlight.set(key, n + 1);
    return true;
  }

  release(key: string): void {
    const n = (this.inFlight.get(key) ?? 1) - 1;
    if (n <= 0) this.inFlight.delete(key);
    else this.inFlight.set(key, n);
  }

  count(key: string): number {
    return this.inFlight.get(key) ?? 0;
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries(this.inFlight);
  }
}
