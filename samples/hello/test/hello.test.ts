import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { startTestKernel, type TestKernel } from '@aion/core';

const extensionDir = fileURLToPath(new URL('../..', import.meta.url));

describe('samples.hello', () => {
  let kernel: TestKernel;
  before(async () => {
    kernel = await startTestKernel({ extensions: [extensionDir], config: { extensions: { 'samples.hello': { greeting: 'hi' } } } });
  });
  after(() => kernel.stop());

  it('greets with the configured word', async () => {
    const res = await kernel.request('/v1/hello?name=ada');
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { message: 'hi ada' });
  });

  it('echoes a JSON body and refuses an empty one', async () => {
    const ok = await kernel.request('/v1/hello/echo', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"x":1}' });
    assert.deepEqual(await ok.json(), { echo: { x: 1 } });
    const empty = await kernel.request('/v1/hello/echo', { method: 'POST' });
    assert.equal(empty.status, 400);
    assert.equal(((await empty.json()) as { error: { code: string } }).error.code, 'BAD_REQUEST');
  });

  it('streams a count as server-sent events', async () => {
    const text = await (await kernel.request('/v1/hello/count?to=3')).text();
    assert.deepEqual(
      [...text.matchAll(/data: (.*)/g)].map((m) => JSON.parse(m[1]!).n),
      [1, 2, 3],
    );
  });

  it('answers WebSocket frames in upper case', async () => {
    const ws = new WebSocket(`${kernel.url.replace('http', 'ws')}/v1/hello/socket`);
    const reply = await new Promise<string>((resolve, reject) => {
      ws.on('open', () => ws.send('quiet'));
      ws.on('message', (m) => resolve(m.toString()));
      ws.on('error', reject);
    });
    ws.close();
    assert.equal(reply, 'QUIET');
  });

  it('shows up in /v1/extensions as active, with its activation time', async () => {
    const extensions = kernel.extensions() as Array<{ id: string; state: string; activationMs: number }>;
    const hello = extensions.find((e) => e.id === 'samples.hello')!;
    assert.equal(hello.state, 'active');
    assert.ok(hello.activationMs >= 0);
  });
});
