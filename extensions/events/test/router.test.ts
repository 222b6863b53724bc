import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { startTestKernel, type TestKernel } from '@aion/core';
import { startFakeOpenAI, type FakeOpenAI } from '@aion/ext-provider-openai/testing';
import type { EventEnvelope } from '../src/api.js';
import { FIXTURES, waitFor } from './helpers.js';

const require = createRequire(import.meta.url);
const ROUTER_AUTH = join(dirname(require.resolve('@aion/ext-router/package.json')), 'test', 'fixtures', 'test-auth');

describe('aion.events from the router: task.finished and provider.failed, end to end', function () {
  this.timeout(120_000);
  let openai: FakeOpenAI;
  let kernel: TestKernel;

  before(async () => {
    openai = await startFakeOpenAI({
      reply: (request) => (JSON.stringify(request.body).includes('[fail]') ? { kind: 'status', status: 500 } : { kind: 'answer', text: 'Hi from openai' }),
    });
    kernel = await startTestKernel({
      builtins: ['aion.storage', 'aion.events', 'aion.router', 'aion.provider-openai'],
      extensions: [ROUTER_AUTH, resolve(FIXTURES, 'publisher')],
      config: {
        permissions: { grants: { 'routertest.test-auth': { kernelHost: true } } },
        extensions: {
          'routertest.test-auth': {
            tokens: { 'acme-token': { sub: 'ada', scopes: ['tasks:write', 'tasks:read'], api_key_id: 'key-acme', tenant_id: 'acme' } },
          },
          'aion.router': { circuitBreaker: { failureThreshold: 1000 } },
          'aion.provider-openai': { baseUrl: openai.url, apiKeySecret: '', timeoutMs: 2000 },
          'aion.events': { pollIntervalMs: 50, sinks: { memory: { type: 'memory', types: ['task.*', 'provider.*'] } } },
        },
      },
    });
  });
  after(async () => {
    await kernel?.stop();
    await openai?.close();
  });

  const task = async (content: string) => {
    const res = await kernel.request('/v1/tasks', {
      method: 'POST',
      headers: { authorization: 'Bearer acme-token', 'content-type': 'application/json' },
      body: JSON.stringify({ intent: 'chat', messages: [{ role: 'user', content }], wait: true }),
    });
    return (await res.json()) as { task_id: string; status: string };
  };
  const delivered = (taskId: string, type: string) =>
    waitFor(`${type} of ${taskId} at the sink`, async () => {
      const { events } = await kernel.executeCommand<{ events: EventEnvelope[] }>('publisher.received');
      return events.find((e) => e.type === type && (e.data as { task_id: string }).task_id === taskId);
    });

  it("publishes a finished task to the sink, under the caller's tenant", async () => {
    const done = await task('hello');
    assert.equal(done.status, 'OK');
    const event = await delivered(done.task_id, 'task.finished');
    assert.equal(event.source, 'aion.events');
    assert.equal(event.tenant_id, 'acme');
    assert.equal(event.key, done.task_id);
    const data = event.data as { status: string; intent: string; subject: string; engine: { provider: string } };
    assert.equal(data.status, 'OK');
    assert.equal(data.intent, 'chat');
    assert.equal(data.subject, 'ada');
    assert.equal(data.engine.provider, 'openai');
  });

  it('publishes each failed provider call, then the failed task', async () => {
    const failed = await task('please [fail]');
    assert.notEqual(failed.status, 'OK');
    const providerFailed = await delivered(failed.task_id, 'provider.failed');
    assert.match((providerFailed.data as { engine: string }).engine, /^openai\//);
    const finished = await delivered(failed.task_id, 'task.finished');
    assert.ok(providerFailed.id < finished.id, 'in publish order');
    assert.equal((finished.data as { status: string }).status, failed.status);
  });
});
