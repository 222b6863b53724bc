/**
 * What the router has observed about each provider/model on this instance: a circuit breaker and
 * recent latencies. Deliberately per process: it describes this instance's view of the upstreams.
 */

export interface CircuitOptions {
  failureThreshold: number;
  openMs: number;
  maxOpenMs: number;
}

export type CircuitState = 'closed' | 'open' | 'half-open';

/**
 * Closed: calls pass, consecutive failures are counted. Open: calls are refused until `openMs` has
 * passed. Half-open: one probe call passes; success closes the circuit, failure opens it again for
 * twice as long (up to `maxOpenMs`).
 *
 * Hand-written rather than cockatiel's breaker, which guards calls it executes: the decision reads every
 * candidate's state without calling it (`admits`, `retryInMs` for a 503's Retry-After), and an
 * upstream's own Retry-After sets how long the circuit stays open.
 */
export class CircuitBreaker {
  private failures = 0;
  private openedAt = 0;
  private openFor: number;
  private probing = false;
  private state_: 'closed' | 'open' = 'closed';

  constructor(
    private readonly options: CircuitOptions,
    private readonly now: () => number = Date.now,
    /** Told when this breaker opens (for how long) or closes: what other kernels adopt. */
    private readonly onTransition?: (state: 'open' | 'closed', openForMs: number) => void,
  ) {
    this.openFor = options.openMs;
  }

  /** Takes on a transition another kernel saw, without telling anyone back. */
  adopt(state: 'open' | 'closed', openForMs: number): void {
    this.probing = false;
    if (state === 'closed') {
      this.failures = 0;
      this.state_ = 'closed';
      this.openFor = this.options.openMs;
      return;
    }
    this.state_ = 'open';
    this.openedAt = this.now();
    this.openFor = Math.min(Math.max(openForMs, 0), this.options.maxOpenMs);
  }

  get state(): CircuitState {
    if (this.state_ === 'closed') return 'closed';
    return this.now() - this.openedAt >= this.openFor ? 'half-open' : 'open';
  }

  get consecutiveFailures(): number {
    return this.failures;
  }

  /** Milliseconds until an open circuit lets a probe through. */
  get retryInMs(): number {
    return this.state_ === 'open' ? Math.max(0, this.openFor - (this.now() - this.openedAt)) : 0;
  }

  /** Whether a call may be made now, without reserving anything. */
  get admits(): boolean {
    const s = this.state;
    return s === 'closed' || (s === 'half-open' && !this.probing);
  }

  /** Reserves the call: in half-open, the one probe. */
  tryAcquire(): boolean {
    const s = this.state;
    if (s === 'closed') return true;
    if (s === 'half-open' && !this.probing) {
      this.probing = true;
      return true;
    }
    return false;
  }

  success(): void {
    const wasOpen = this.state_ === 'open';
    this.failures = 0;
    this.probing = false;
    this.state_ = 'closed';
    this.openFor = this.options.openMs;
    if (wasOpen) this.onTransition?.('closed', 0);
  }

  /** A failure that says something about the upstream (not a cancel or a bad request). */
  failure(retryAfterMs?: number): void {
    const before = { state: this.state_, openedAt: this.openedAt };
    this.failures++;
    if (this.state_ === 'open') {
      // A failed probe: back off harder.
      if (this.probing) {
        this.openFor = Math.min(this.openFor * 2, this.options.maxOpenMs);
        this.openedAt = this.now();
      }
    } else if (this.failures >= this.options.failureThreshold) {
      this.state_ = 'open';
      this.openedAt = this.now();
      this.openFor = this.options.openMs;
    }
    if (this.state_ === 'open' && retryAfterMs !== undefined) this.openFor = Math.max(this.openFor, Math.min(retryAfterMs, this.options.maxOpenMs));
    this.probing = false;
    // Opened now, or opened again after a failed probe.
    if (this.state_ === 'open' && (before.state !== 'open' || this.openedAt !== before.openedAt)) this.onTransition?.('open', this.openFor);
  }

  /** A reserved probe ended without saying anything about the upstream (cancelled). */
  release(): void {
    this.probing = false;
  }
}

/** Latencies a window keeps, per engine. */
const WINDOW_SIZE = 128;

/** The last `size` latencies; the 95th percentile is recomputed after every 16 new samples, not per call. */
export class LatencyWindow {
  private readonly samples: number[] = [];
  private next = 0;
  private cachedP95?: number;
  private sinceSort = 0;
  /** This kernel's own samples not yet shared with the others (set only while they are shared). */
  unshared?: number[];

  constructor(private readonly size = WINDOW_SIZE) {}

  /** A latency measured here. */
  add(ms: number): void {
    this.adopt(ms);
    const unshared = this.unshared;
    if (unshared) {
      unshared.push(ms);
      // Only the last window's worth would survive on the other side anyway.
      if (unshared.length > 2 * this.size) unshared.splice(0, unshared.length - this.size);
    }
  }

  /** A latency measured by another kernel: counted here, never shared again. */
  adopt(ms: number): void {
    if (this.samples.length < this.size) this.samples.push(ms);
    else this.samples[this.next] = ms;
    this.next = (this.next + 1) % this.size;
    if (++this.sinceSort >= 16 || this.samples.length < 16) this.cachedP95 = undefined;
  }

  get count(): number {
    return this.samples.length;
  }

  get p95(): number | undefined {
    if (this.samples.length === 0) return undefined;
    if (this.cachedP95 === undefined) {
      this.sinceSort = 0;
      const sorted = [...this.samples].sort((a, b) => a - b);
      this.cachedP95 = sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.95) - 1)];
    }
    return this.cachedP95;
  }

  /** The samples taken here since the last call (at most a window's worth), then forgets them. */
  takeUnshared(): number[] | undefined {
    const unshared = this.unshared;
    if (!unshared?.length) return undefined;
    this.unshared = [];
    return unshared.length > this.size ? unshared.slice(-this.size) : unshared;
  }
}

/** Latencies one kernel took since it last shared them, per engine: what it tells the others. */
export type LatencySamples = Record<string, { latency?: number[]; firstToken?: number[] }>;

export interface EngineHealth {
  breaker: CircuitBreaker;
  latency: LatencyWindow;
  firstToken: LatencyWindow;
}

export class HealthBook {
  private readonly engines = new Map<string, EngineHealth>();
  /** Whether this kernel's samples are kept for the others (several kernels on one Redis). */
  private sharing = false;
  private readonly transitions: Array<(engine: string, state: 'open' | 'closed', openForMs: number) => void> = [];

  constructor(
    private options: CircuitOptions,
    private readonly now: () => number = Date.now,
  ) {}

  configure(options: CircuitOptions): void {
    this.options = options;
    this.engines.clear();
  }

  get(engine: string): EngineHealth {
    let h = this.engines.get(engine);
    if (!h) {
      const breaker = new CircuitBreaker(this.options, this.now, (state, openForMs) => {
        for (const listener of this.transitions) listener(engine, state, openForMs);
      });
      h = { breaker, latency: new LatencyWindow(), firstToken: new LatencyWindow() };
      if (this.sharing) {
        h.latency.unshared = [];
        h.firstToken.unshared = [];
      }
      this.engines.set(engine, h);
    }
    return h;
  }

  /** Every circuit that opens or closes here (to share with other kernels). */
  onTransition(listener: (engine: string, state: 'open' | 'closed', openForMs: number) => void): void {
    this.transitions.push(listener);
  }

  /** A transition another kernel saw, taken on here. */
  adopt(engine: string, state: 'open' | 'closed', openForMs: number): void {
    this.get(engine).breaker.adopt(state, openForMs);
  }

  /** From now on keeps the latencies measured here, for `takeSamples`. */
  shareSamples(): void {
    this.sharing = true;
    for (const h of this.engines.values()) {
      h.latency.unshared ??= [];
      h.firstToken.unshared ??= [];
    }
  }

  /** The latencies measured here since the last call, per engine; undefined when there are none. */
  takeSamples(): LatencySamples | undefined {
    let out: LatencySamples | undefined;
    for (const [engine, h] of this.engines) {
      const latency = h.latency.takeUnshared();
      const firstToken = h.firstToken.takeUnshared();
      if (latency || firstToken) (out ??= {})[engine] = { ...(latency ? { latency } : {}), ...(firstToken ? { firstToken } : {}) };
    }
    return out;
  }

  /** Latencies other kernels measured, added to the windows here: every kernel routes on what all of them saw. */
  adoptSamples(samples: LatencySamples): void {
    for (const [engine, s] of Object.entries(samples)) {
      const h = this.get(engine);
      for (const ms of s.latency ?? []) h.latency.adopt(ms);
      for (const ms of s.firstToken ?? []) h.firstToken.adopt(ms);
    }
  }

  peek(engine: string): EngineHealth | undefined {
    return this.engines.get(engine);
  }

  snapshot(): Record<string, { circuit: CircuitState; consecutive_failures: number; p95_ms: number | null; samples: number }> {
    const out: Record<string, { circuit: CircuitState; consecutive_failures: number; p95_ms: number | null; samples: number }> = {};
    for (const [engine, h] of this.engines) {
      out[engine] = { circuit: h.breaker.state, consecutive_failures: h.breaker.consecutiveFailures, p95_ms: h.latency.p95 ?? null, samples: h.latency.count };
    }
    return out;
  }
}
