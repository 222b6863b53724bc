import { randomBytes } from 'node:crypto';

/**
 * UUIDv7 ids that sort in the order this process made them: the 48-bit millisecond time, then a 12-bit
 * counter for ids within one millisecond (RFC 9562, method 1). A clock that steps back keeps the last time.
 */
export class EventIdFactory {
  private lastMs = 0;
  private counter = 0;

  next(now = Date.now()): string {
    if (now > this.lastMs) {
      this.lastMs = now;
      this.counter = randomBytes(1)[0]! & 0x7f;
    } else if (++this.counter > 0xfff) {
      this.lastMs += 1;
      this.counter = 0;
    }
    const time = this.lastMs.toString(16).padStart(12, '0');
    const randB = randomBytes(8);
    randB[0] = (randB[0]! & 0x3f) | 0x80;
    const tail = randB.toString('hex');
    return `${time.slice(0, 8)}-${time.slice(8)}-7${this.counter.toString(16).padStart(3, '0')}-${tail.slice(0, 4)}-${tail.slice(4)}`;
  }
}

export const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
