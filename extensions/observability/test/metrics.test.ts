import assert from 'node:assert/strict';
import { startTestKernel, type TestKernel } from '@aion/core';
import { startFakeOpenAI, type FakeOpenAI } from '@aion/ext-provider-openai/testing';
import { FakeTools } from '@aion/ext-accelerators/testing';
import { OBSERVABILITY_EXTENSION_DIR, sample } from '../src/testing.js';
import { bearer, chat, OPENAI_DIR, PROBE_FIXTURE, ROUTER_DIR, TEST_AUTH, TOKENS, until } from './helpers.js';

describe('aion.observability metrics over a real kernel, router and provider', function () {
  let openai: FakeOpenAI;
  let kernel: TestKernel;

  before(async () => {
    openai = await startFakeOpenAI();
    kernel = await startTestKernel({
      extensions: [OBSERVABILITY_EXTENSION_DIR, ROUTER_DIR, OPENAI_DIR, TEST_AUTH, PROBE_FIXTURE],
      config: {
        hosts: { restartBackoffMs: 50 },
        extensions: {
          'routertest.test-auth': { tokens: TOKENS },
          'aion.provider-openai': { baseUrl: openai.url, apiKeySecret: '', timeoutMs: 20_000 },
          'aion.observability': { metrics: { listen: '127.0.0.1:0' } },
        },
      },
    });
  });
  after(async () => {
    await kernel?.stop();
    await openai?.close();
  });

  const scrape = async () => (await kernel.request('/metrics', { headers: bearer('scraper') })).text();

  it('answers /metrics only to callers holding metrics:read', async () => {
    const anonymous = await kernel.request('/metrics');
    assert.equal(anonymous.status, 401);
    assert.equal(((await anonymous.json()) as { error: { code: string } }).error.code, 'UNAUTHENTICATED');
    const user = await kernel.request('/metrics', { headers: bearer('user') });
    assert.equal(user.status, 403);
    assert.equal(((await user.json()) as { error: { code: string } }).error.code, 'FORBIDDEN');
    for (const who of ['scraper', 'admin'] as const) {
      const res = await kernel.request('/metrics', { headers: bearer(who) });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      const text = await res.text();
      assert.ok(sample(text, 'aion_process_resident_memory_bytes')! > 0, 'default process metrics of the kernel process');
    }
  });

  it('counts requests by route template, method and status, never by raw path', async () => {
    for (const id of ['alpha-123', 'beta-456']) assert.equal((await kernel.request(`/probe/items/${id}`)).status, 200);
    assert.equal((await kernel.request('/no/such/path-789')).status, 404);
    const text = await until(async () => {
      const t = await scrape();
      return (sample(t, 'aion_http_requests_total', { route: '/probe/items/:id', method: 'GET', status: '200' }) ?? 0) >= 2 ? t : undefined;
    }, 'request counts');
    assert.ok(sample(text, 'aion_http_request_duration_seconds_count', { route: '/probe/items/:id', method: 'GET', status: '200' })! >= 2);
    assert.ok(sample(text, 'aion_http_requests_total', { route: 'unmatched', status: '404' })! >= 1);
    assert.doesNotMatch(text, /alpha-123|beta-456|path-789/);
    assert.notEqual(sample(text, 'aion_http_requests_in_flight'), undefined);
    assert.ok(sample(text, 'aion_rpc_call_duration_seconds_count', { method: '$handleRoute', outcome: 'ok' })! >= 2);
  });

  it('reports provider calls, tokens, cost, router decisions and circuit state after a chat completion', async () => {
    const res = await kernel.request('/v1/chat/completions', chat());
    assert.equal(res.status, 200, await res.clone().text());
    const text = await until(async () => {
      const t = await scrape();
      const reported = (sample(t, 'aion_provider_requests_total', { provider: 'openai', outcome: 'ok' }) ?? 0) >= 1;
      // The router and the kernel report on their own clocks.
      return reported && (sample(t, 'aion_http_requests_total', { route: '/v1/chat/completions', status: '200' }) ?? 0) >= 1 ? t : undefined;
    }, 'provider metrics');
    assert.ok(sample(text, 'aion_provider_request_duration_seconds_count', { provider: 'openai', outcome: 'ok' })! >= 1);
    assert.ok(sample(text, 'aion_provider_tokens_total', { provider: 'openai', direction: 'input' })! > 0);
    assert.ok(sample(text, 'aion_provider_tokens_total', { provider: 'openai', direction: 'output' })! > 0);
    assert.notEqual(sample(text, 'aion_provider_cost_usd_total', { provider: 'openai' }), undefined);
    assert.ok(sample(text, 'aion_router_decisions_total', { route: 'api' })! >= 1);
    assert.equal(sample(text, 'aion_circuit_state', { provider: 'openai', state: 'closed' }), 1);
    assert.equal(sample(text, 'aion_circuit_state', { provider: 'openai', state: 'open' }), 0);
    assert.ok(sample(text, 'aion_http_requests_total', { route: '/v1/chat/completions', method: 'POST', status: '200' })! >= 1);
  });

  it('counts provider errors by code', async () => {
    await openai.close();
    const res = await kernel.request('/v1/chat/completions', chat('fails'));
    assert.ok(res.status >= 500, `status ${res.status}`);
    const text = await until(async () => {
      const t = await scrape();
      return (sample(t, 'aion_provider_requests_total', { provider: 'openai', outcome: 'error' }) ?? 0) >= 1 ? t : undefined;
    }, 'provider error metrics');
    assert.match(text, /aion_provider_errors_total\{provider="openai",model="[^"]+",code="[A-Z_]+"\} [1-9]/);
  });

  it('counts rate-limit rejections', async () => {
    const res = await kernel.request('/probe/limited');
    assert.equal(res.status, 429);
    await until(
      async () => ((sample(await scrape(), 'aion_rate_limit_rejections_total', { route: '/probe/limited' }) ?? 0) >= 1 ? true : undefined),
      'rate-limit counter',
    );
  });

  it('reports host restarts and states after an extension host crashes', async () => {
    const host = kernel.extensions().find((e) => e.id === 'obstest.probe')!.hostKey as string;
    await until(async () => (sample(await scrape(), 'aion_extension_host_state', { host, state: 'running' }) === 1 ? true : undefined), `host ${host} running`);
    await kernel.request('/probe/exit', { method: 'POST' });
    // The next request starts the host again, after the restart backoff.
    await until(async () => ((await kernel.request('/probe/items/again')).status === 200 ? true : undefined), 'the host to restart');
    const after = await until(async () => {
      const t = await scrape();
      return (sample(t, 'aion_extension_host_restarts_total', { host }) ?? 0) >= 1 ? t : undefined;
    }, 'the restart counter');
    assert.equal(sample(after, 'aion_extension_host_state', { host, state: 'running' }), 1);
  });

  it('serves metrics without authentication on the separate listener, and nothing else there', async () => {
    const status = await kernel.executeCommand<{ metricsListener: string }>('observability.status');
    assert.match(status.metricsListener, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const res = await fetch(status.metricsListener);
    assert.equal(res.status, 200);
    assert.ok(sample(await res.text(), 'aion_process_resident_memory_bytes')! > 0);
    const other = await fetch(status.metricsListener.replace('/metrics', '/v1/extensions'));
    assert.equal(other.status, 404);
    assert.equal((await kernel.request('/metrics')).status, 401, 'the main port still requires metrics:read');
  });
});

describe('aion.observability configuration', function () {
  it('refuses to start with a malformed metrics.listen, naming the key (CONFIG_INVALID)', async () => {
    await assert.rejects(
      startTestKernel({
        extensions: [OBSERVABILITY_EXTENSION_DIR],
        config: { extensions: { 'aion.observability': { metrics: { listen: 'every interface please' } } } },
      }),
      (err: { code?: string; message: string }) => err.code === 'CONFIG_INVALID' && /aion\.observability\.metrics\.listen/.test(err.message),
    );
  });

  it('keeps /metrics on the main port when the separate listener cannot open, and says why', async () => {
    const blocker = await new Promise<import('node:net').Server>((resolve) => {
      import('node:net').then(({ createServer }) => {
        const s = createServer();
        s.listen(0, '127.0.0.1', () => resolve(s));
      });
    });
    const port = (blocker.address() as import('node:net').AddressInfo).port;
    const kernel = await startTestKernel({
      extensions: [OBSERVABILITY_EXTENSION_DIR, TEST_AUTH],
      config: { extensions: { 'routertest.test-auth': { tokens: TOKENS }, 'aion.observability': { metrics: { listen: `127.0.0.1:${port}` } } } },
    });
    try {
      const status = await kernel.executeCommand<{ metricsListener: string | null }>('observability.status');
      assert.equal(status.metricsListener, null);
      assert.equal((await kernel.request('/metrics', { headers: bearer('scraper') })).status, 200);
    } finally {
      await kernel.stop();
      blocker.close();
    }
  });

  it('answers 404 on /metrics when metrics are turned off', async () => {
    const kernel = await startTestKernel({
      extensions: [OBSERVABILITY_EXTENSION_DIR, TEST_AUTH],
      config: { extensions: { 'routertest.test-auth': { tokens: TOKENS }, 'aion.observability': { metrics: { enabled: false } } } },
    });
    try {
      const res = await kernel.request('/metrics', { headers: bearer('admin') });
      assert.equal(res.status, 404);
      assert.match(((await res.json()) as { error: { message: string } }).error.message, /metrics\.enabled is false/);
    } finally {
      await kernel.stop();
    }
  });
});

describe('aion.observability GPU gauges', function () {
  this.timeout(60_000);

  it('exports aion.accelerators readings by device, and none where it is not installed', async () => {
    const tools = new FakeTools();
    // nvidia-smi as an H200 answers (the detector's own fixtures hold the real capture).
    tools.write(
      'nvidia-smi',
      'case "$*" in *--query-gpu*) echo "0, NVIDIA H200, GPU-01060625-fc54-8566-0829-91dbf3a104a7, 143771, 2048, 141723, 37, 35, 580.159.04, 9.0";; *--version*) echo "CUDA Version        : 13.0";; esac',
    );
    const saved = process.env.PATH;
    process.env.PATH = `${tools.dir}:${saved}`;
    let kernel: TestKernel | undefined;
    try {
      kernel = await startTestKernel({
        extensions: [OBSERVABILITY_EXTENSION_DIR, TEST_AUTH],
        builtins: ['aion.accelerators', 'aion.accelerator-nvidia'],
        config: { extensions: { 'routertest.test-auth': { tokens: TOKENS } } },
      });
      const text = await (await kernel.request('/metrics', { headers: bearer('scraper') })).text();
      assert.match(text, /# TYPE aion_gpu_utilization_ratio gauge/);
      assert.match(text, /aion_gpu_utilization_ratio\{[^}]*GPU-01060625[^}]*\} 0\.37/);
      assert.match(text, /aion_gpu_memory_used_bytes\{[^}]*\} 2147483648/);
    } finally {
      process.env.PATH = saved;
      await kernel?.stop();
    }
    const without = await startTestKernel({
      extensions: [OBSERVABILITY_EXTENSION_DIR, TEST_AUTH],
      config: { extensions: { 'routertest.test-auth': { tokens: TOKENS } } },
    });
    try {
      const text = await (await without.request('/metrics', { headers: bearer('scraper') })).text();
      assert.doesNotMatch(text, /aion_gpu_/);
    } finally {
      await without.stop();
    }
  });
});
