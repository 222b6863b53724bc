import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { TestKernel } from '@aion/core';
import { client, ROUTER_DIR, startRouterKernel } from './helpers.js';

/** A local provider that answers "on the device" and declares that it needs a GPU (or may fall back to the CPU). */
function gpuProvider(root: string, id: string, gpu: Record<string, unknown>): string {
  const dir = join(root, id);
  mkdirSync(dir, { recursive: true });
  const model = { id: 'm', contextWindow: 4096, costPer1kInput: 0, costPer1kOutput: 0, capabilities: { chat: 0.9 }, tools: false, streaming: true };
  const entry = { id, displayName: id, route: 'local', tier: 'local', residency: { scope: 'host' }, models: [model], resources: { gpu } };
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({
      name: id,
      publisher: 'gputest',
      version: '1.0.0',
      type: 'module',
      main: 'e.js',
      engines: { aion: '^0.1.0' },
      contributes: { providers: [entry] },
      aion: { host: 'shared' },
    }),
  );
  writeFileSync(
    join(dir, 'e.js'),
    `import * as aion from '@aion/extension-api';
export function activate(ctx) {
  ctx.subscriptions.push(aion.contributions.register('providers', '${id}', {
    listModels: () => [{ id: 'm' }],
    async *chat() { yield { type: 'token', text: 'on the device' }; yield { type: 'done', finishReason: 'stop', usage: { inputTokens: 1, outputTokens: 3 } }; },
  }));
}`,
  );
  return dir;
}

describe('router: providers that need a GPU', function () {
  this.timeout(60_000);
  let root: string;
  let kernel: TestKernel;

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'aion-gpu-providers-'));
    symlinkSync(resolve(ROUTER_DIR, '..', '..', 'node_modules'), join(root, 'node_modules'));
    gpuProvider(root, 'needs-gpu', { required: true, vendor: 'nvidia', memoryMiB: 8192 });
    gpuProvider(root, 'cpu-ok', { required: true, fallback: 'cpu' });
    kernel = await startRouterKernel({
      extensions: [root],
      config: { 'aion.router': { providers: { 'needs-gpu': { enabled: true }, 'cpu-ok': { enabled: true } } } },
    });
  });
  after(async () => {
    await kernel?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('leaves a provider that needs a missing GPU unavailable with NO_ACCELERATOR, naming what it needs, and never runs it on the CPU', async () => {
    const api = client(kernel);
    const caps = (await api.json(kernel.request('/v1/capabilities', { headers: { authorization: 'Bearer test-token' } }))).body;
    const needs = caps.providers.find((p: { id: string }) => p.id === 'needs-gpu');
    assert.equal(needs.availability, 'unavailable');
    assert.match(needs.detail, /NO_ACCELERATOR: needs-gpu needs a GPU \(nvidia\) with 8192 MiB free/);
    const { body } = await api.json(api.post('/v1/tasks', { input: 'hi', wait: true, engine: { provider: 'needs-gpu' } }));
    assert.notEqual(body.engine?.provider, 'needs-gpu');
  });

  it('runs a provider that declares a CPU fallback', async () => {
    const api = client(kernel);
    const caps = (await api.json(kernel.request('/v1/capabilities', { headers: { authorization: 'Bearer test-token' } }))).body;
    assert.notEqual(caps.providers.find((p: { id: string }) => p.id === 'cpu-ok').availability, 'unavailable');
  });
});
