import assert from 'node:assert/strict';
import { AsyncQueue, forEachItem } from '../src/index.js';

const settle = () => new Promise((r) => setImmediate(r));

describe('AsyncQueue and forEachItem', () => {
  it('hands a queue’s items over as they are pushed, those already queued first, then its end', () => {
    const queue = new AsyncQueue<number>();
    queue.push(1);
    const seen: Array<number | string> = [];
    forEachItem(
      queue,
      (n) => void seen.push(n),
      (error) => seen.push(error === undefined ? 'end' : 'failed'),
    );
    assert.deepEqual(seen, [1], 'the queued item at once');
    queue.push(2);
    assert.deepEqual(seen, [1, 2], 'a pushed item in the same turn, without a promise in between');
    queue.end();
    queue.push(3);
    assert.deepEqual(seen, [1, 2, 'end'], 'nothing after the end');
  });

  it('passes a queue’s failure to the end, and a consumer’s throw ends its consumption without reaching the producer', () => {
    const failing = new AsyncQueue<number>();
    let ended: unknown;
    forEachItem(
      failing,
      () => undefined,
      (error) => (ended = error),
    );
    failing.end(new Error('upstream broke'));
    assert.equal((ended as Error).message, 'upstream broke');

    const queue = new AsyncQueue<number>();
    const seen: number[] = [];
    forEachItem(
      queue,
      (n) => {
        if (n === 2) throw new Error('cannot take 2');
        seen.push(n);
      },
      (error) => (ended = error),
    );
    queue.push(1);
    assert.doesNotThrow(() => queue.push(2));
    queue.push(3);
    assert.deepEqual(seen, [1]);
    assert.equal((ended as Error).message, 'cannot take 2');
    assert.ok(queue.isEnded, 'the producer sees the consumer gone');
  });

  it('stops early without calling the end, and runs the queue’s onReturn', () => {
    let returned = false;
    const queue = new AsyncQueue<number>({ onReturn: () => (returned = true) });
    let ended = false;
    const stop = forEachItem(
      queue,
      () => undefined,
      () => (ended = true),
    );
    stop();
    queue.push(1);
    assert.equal(returned, true);
    assert.equal(ended, false);
  });

  it('pulls any other iterable, waiting for each item’s promise before the next pull', async () => {
    const pulled: number[] = [];
    async function* source() {
      for (let i = 1; i <= 3; i++) {
        pulled.push(i);
        yield i;
      }
    }
    const order: string[] = [];
    let release!: () => void;
    const done = new Promise<unknown>((resolve) =>
      forEachItem(
        source(),
        (n) => {
          order.push(`took ${n}`);
          if (n === 1) return new Promise<void>((r) => (release = r));
        },
        resolve,
      ),
    );
    await settle();
    assert.deepEqual(pulled, [1], 'no second pull while the first item is in hand');
    release();
    assert.equal(await done, undefined);
    assert.deepEqual(order, ['took 1', 'took 2', 'took 3']);
  });

  it('refuses a second consumer of one queue', () => {
    const queue = new AsyncQueue<number>();
    forEachItem(
      queue,
      () => undefined,
      () => undefined,
    );
    assert.throws(() => queue.drainTo({ item: () => undefined, end: () => undefined }), /already has a consumer/);
  });
});

describe('forEachItem and async context', () => {
  it('runs a pushed item’s consumer in the consumer’s async context, not the producer’s', async () => {
    const { AsyncLocalStorage } = await import('node:async_hooks');
    const who = new AsyncLocalStorage<string>();
    const queue = new AsyncQueue<number>();
    const seen: Array<string | undefined> = [];
    who.run('consumer', () =>
      forEachItem(
        queue,
        () => void seen.push(who.getStore()),
        () => seen.push(`end in ${who.getStore()}`),
      ),
    );
    who.run('producer', () => {
      queue.push(1);
      queue.end();
    });
    assert.deepEqual(seen, ['consumer', 'end in consumer']);
  });
});
