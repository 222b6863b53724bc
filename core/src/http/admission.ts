import { AionError, ErrorCodes } from '@aion/extension-api';

/**
 * Dispatch slots (`server.maxInFlight`) and draining. A request takes a slot only once its body is
 * read, so clients trickling bodies cannot starve everyone else.
 */
export class Admission {
  private inFlight = 0;
  private draining = false;
  private readonly idle = new Set<() => void>();

  constructor(private readonly maxInFlight: number) {}

  get count(): number {
    return this.inFlight;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  refuseIfDraining(): void {
    if (this.draining)
      throw new AionError(ErrorCodes.SHUTTING_DOWN, 'the server is shutting down; retry against another instance', {
        headers: { 'Retry-After': '1', Connection: 'close' },
      });
  }

  /** Runs `work` holding one of the slots; refuses (synchronously) while draining or saturated. */
  run<T>(work: () => Promise<T>): Promise<T> {
    this.refuseIfDraining();
    if (this.inFlight >= this.maxInFlight) {
      throw new AionError(ErrorCodes.SERVICE_UNAVAILABLE, `the server is saturated (${this.inFlight} requests in flight); retry shortly`, {
        headers: { 'Retry-After': '1' },
      });
    }
    this.inFlight++;
    let running: Promise<T>;
    try {
      running = work();
    } catch (err) {
      this.release();
      throw err;
    }
    return running.then(
      (value) => {
        this.release();
        return value;
      },
      (err: unknown) => {
        this.release();
        throw err;
      },
    );
  }

  private release(): void {
    if (--this.inFlight === 0) for (const resolve of this.idle) resolve();
  }

  /** Refuses new work from now on and resolves true once nothing is in flight, false after `timeoutMs`. */
  drain(timeoutMs: number): Promise<boolean> {
    this.draining = true;
    if (this.inFlight === 0) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.idle.delete(done);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.idle.delete(done);
        resolve(false);
      }, timeoutMs);
      this.idle.add(done);
    });
  }
}
