import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { CancellationTokenSource, RequestType } from 'vscode-jsonrpc';
import { createMessageConnection, StreamMessageReader, StreamMessageWriter } from 'vscode-jsonrpc/node';
import { AionError, ErrorCodes } from '../src/index.js';
import { LifecycleProtocol, RpcEndpoint } from '../src/protocol/index.js';

/** Two endpoints over a real JSON-RPC connection: framed bytes through a pair of pipes. */
function endpointPair(): [RpcEndpoint, RpcEndpoint] {
  const aToB = new PassThrough();
  const bToA = new PassThrough();
  const a = createMessageConnection(new StreamMessageReader(bToA), new StreamMessageWriter(aToB));
  const b = createMessageConnection(new StreamMessageReader(aToB), new StreamMessageWriter(bToA));
  a.listen();
  b.listen();
  return [new RpcEndpoint(a), new RpcEndpoint(b)];
}

const Produce = new RequestType<{ count: number; failAt?: number }, { values: AsyncIterable<number> }, void>('test/produce');
const Wait = new RequestType<{ ms: number }, string, void>('test/wait');

describe('RPC endpoints and the stream bridge', () => {
  let caller: RpcEndpoint;
  let callee: RpcEndpoint;
  let produced = 0;
  let finished = 0;
  let cancelledHandlers = 0;

  beforeEach(() => {
    [caller, callee] = endpointPair();
    produced = finished = cancelledHandlers = 0;
    callee.onRequest(Produce, ({ count, failAt }, token) => {
      token.onCancellationRequested(() => cancelledHandlers++);
      async function* values() {
        try {
          for (let i = 0; i < count; i++) {
            if (i === failAt) throw new AionError('TEST_FAILURE', `failed at ${i}`, { details: { at: i } });
            produced++;
            yield i;
          }
        } finally {
          finished++;
        }
      }
      return { values: values() };
    });
    callee.onRequest(
      Wait,
      ({ ms }, token) =>
        new Promise<string>((resolve) => {
          const timer = setTimeout(() => resolve('waited'), ms);
          token.onCancellationRequested(() => {
            cancelledHandlers++;
            clearTimeout(timer);
            resolve('cancelled');
          });
        }),
    );
  });
  afterEach(() => {
    caller.close(new AionError(ErrorCodes.SHUTTING_DOWN, 'test over'));
    callee.close(new AionError(ErrorCodes.SHUTTING_DOWN, 'test over'));
  });

  it('carries a stream inside a result, every value in order', async () => {
    const { values } = await caller.sendRequest(Produce, { count: 1000 });
    const got: number[] = [];
    for await (const v of values) got.push(v);
    assert.deepEqual(
      got,
      Array.from({ length: 1000 }, (_, i) => i),
    );
    assert.equal(finished, 1);
  });

  it('holds a producer to the credit its consumer grants: it never runs more than a window ahead', async () => {
    const { values } = await caller.sendRequest(Produce, { count: 500 });
    let consumed = 0;
    let furthestAhead = 0;
    for await (const _ of values) {
      consumed++;
      await new Promise((r) => setTimeout(r, 1));
      furthestAhead = Math.max(furthestAhead, produced - consumed);
    }
    assert.equal(consumed, 500);
    assert.ok(furthestAhead <= 33, `the producer ran ${furthestAhead} values ahead of a slow consumer`);
  });

  it('stops the producer and cancels the handler when the consumer leaves early', async () => {
    const { values } = await caller.sendRequest(Produce, { count: 100_000 });
    let seen = 0;
    for await (const _ of values) if (++seen === 5) break;
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(finished, 1, "the producer's finally ran");
    assert.equal(cancelledHandlers, 1, "the handler's token was cancelled");
    assert.ok(produced < 100, `the producer stopped early (produced ${produced})`);
  });

  it("ends a stream with the producer's error, code and details intact", async () => {
    const { values } = await caller.sendRequest(Produce, { count: 10, failAt: 3 });
    const got: number[] = [];
    await assert.rejects(
      (async () => {
        for await (const v of values) got.push(v);
      })(),
      (err: AionError) => err.code === 'TEST_FAILURE' && (err.details as { at: number }).at === 3,
    );
    assert.deepEqual(got, [0, 1, 2]);
  });

  it('fails a cancelled request at once with CANCELLED and cancels the handler', async () => {
    const source = new CancellationTokenSource();
    const started = Date.now();
    const pending = caller.sendRequest(Wait, { ms: 5_000 }, source.token);
    setTimeout(() => source.cancel(), 20);
    await assert.rejects(pending, (err: AionError) => err.code === ErrorCodes.CANCELLED);
    assert.ok(Date.now() - started < 1_000);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(cancelledHandlers, 1);
  });

  it('fails pending requests and open streams with the closing error, and drops later notifications without throwing', async () => {
    const { values } = await caller.sendRequest(Produce, { count: 100_000 });
    const iterator = values[Symbol.asyncIterator]();
    await iterator.next();
    const pending = caller.sendRequest(Wait, { ms: 5_000 });
    caller.close(new AionError(ErrorCodes.EXTENSION_HOST_CRASHED, 'the host went away'));
    await assert.rejects(pending, (err: AionError) => err.code === ErrorCodes.EXTENSION_HOST_CRASHED);
    await assert.rejects(
      (async () => {
        for (;;) if ((await iterator.next()).done) return;
      })(),
      (err: AionError) => err.code === ErrorCodes.EXTENSION_HOST_CRASHED,
    );
    callee.connection.dispose();
    assert.doesNotThrow(() => callee.sendNotification(LifecycleProtocol.kernel.log, { level: 'info', message: 'after the end' }));
  });

  it('leaves class instances alone when replacing stream markers (a Buffer handed over in process)', () => {
    const body = Buffer.from('zip bytes');
    const value = { status: 200, body, nested: [{ data: body }] };
    const out = callee.streams.deserialize(value) as typeof value;
    assert.equal(out.body, body);
    assert.equal(out.nested[0]!.data, body);
    assert.equal(out.body.toString(), 'zip bytes');
  });
});
