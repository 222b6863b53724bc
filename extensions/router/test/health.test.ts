import assert from 'node:assert/strict';
import { CircuitBreaker, HealthBook, LatencyWindow } from '../src/providers/health.js';

describe('circuit breaker', () => {
  let now = 0;
  const clock = () => now;
  beforeEach(() => (now = 1_000));

  it('opens after the threshold of consecutive failures; a success in between resets the count', () => {
    const b = new CircuitBreaker({ failureThreshold: 3, openMs: 1000, maxOpenMs: 10_000 }, clock);
    b.failure();
    b.failure();
    b.success();
    b.failure();
    b.failure();
    assert.equal(b.state, 'closed');
    b.failure();
    assert.equal(b.state, 'open');
    assert.equal(b.tryAcquire(), false);
    assert.equal(b.retryInMs, 1000);
  });

  it('lets one probe through when half-open; success closes it', () => {
    const b = new CircuitBreaker({ failureThreshold: 1, openMs: 1000, maxOpenMs: 10_000 }, clock);
    b.failure();
    now += 999;
    assert.equal(b.state, 'open');
    now += 1;
    assert.equal(b.state, 'half-open');
    assert.equal(b.tryAcquire(), true);
    assert.equal(b.tryAcquire(), false, 'only one probe at a time');
    assert.equal(b.admits, false);
    b.success();
    assert.equal(b.state, 'closed');
    assert.equal(b.tryAcquire(), true);
  });

  it('a failed probe opens it again for twice as long, up to the cap', () => {
    const b = new CircuitBreaker({ failureThreshold: 1, openMs: 1000, maxOpenMs: 3000 }, clock);
    b.failure();
    now += 1000;
    assert.ok(b.tryAcquire());
    b.failure();
    assert.equal(b.state, 'open');
    assert.equal(b.retryInMs, 2000);
    now += 2000;
    assert.ok(b.tryAcquire());
    b.failure();
    assert.equal(b.retryInMs, 3000);
  });

  it('honours a Retry-After longer than its own open time', () => {
    const b = new CircuitBreaker({ failureThreshold: 1, openMs: 1000, maxOpenMs: 60_000 }, clock);
    b.failure(20_000);
    assert.equal(b.retryInMs, 20_000);
  });

  it('a cancelled probe frees the probe slot without counting', () => {
    const b = new CircuitBreaker({ failureThreshold: 1, openMs: 10, maxOpenMs: 100 }, clock);
    b.failure();
    now += 10;
    assert.ok(b.tryAcquire());
    b.release();
    assert.ok(b.tryAcquire());
  });
});

describe('latency window', () => {
  it('reports the 95th percentile of the last samples', () => {
    const w = new LatencyWindow(100);
    assert.equal(w.p95, undefined);
    for (let i = 1; i <= 100; i++) w.add(i);
    assert.equal(w.p95, 95);
    for (let i = 0; i < 100; i++) w.add(1000);
    assert.equal(w.p95, 1000);
    assert.equal(w.count, 100);
  });
});

describe('latency samples shared between kernels', () => {
  const options = { failureThreshold: 3, openMs: 1000, maxOpenMs: 10_000 };

  it('hands over the samples measured here once, at most a window of each, and never the ones adopted from others', () => {
    const here = new HealthBook(options);
    assert.equal(here.takeSamples(), undefined, 'nothing kept before sharing starts');
    here.get('openai/a').latency.add(5);
    here.shareSamples();
    assert.equal(here.takeSamples(), undefined, 'a sample from before sharing is not sent');
    for (let i = 1; i <= 300; i++) here.get('openai/a').latency.add(i);
    here.get('openai/b').firstToken.add(7);
    here.adoptSamples({ 'openai/a': { latency: [9999] } });
    const taken = here.takeSamples()!;
    assert.deepEqual(
      taken['openai/a']!.latency,
      Array.from({ length: 128 }, (_, i) => 173 + i),
      'the last window of own samples',
    );
    assert.deepEqual(taken['openai/b'], { firstToken: [7] });
    assert.equal(here.takeSamples(), undefined, 'each sample is sent once');
  });

  it("another kernel's samples count in the window the decision reads", () => {
    const there = new HealthBook(options);
    there.adoptSamples({ 'openai/a': { latency: [100, 200], firstToken: [10] } });
    assert.equal(there.peek('openai/a')!.latency.count, 2);
    assert.equal(there.peek('openai/a')!.latency.p95, 200);
    assert.equal(there.peek('openai/a')!.firstToken.p95, 10);
  });
});
