import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SpanKind, trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { startTestKernel, type TestKernel } from '@aion/core';
import { startFakeOpenAI, type FakeOpenAI } from '@aion/ext-provider-openai/testing';
import { OBSERVABILITY_EXTENSION_DIR } from '../src/testing.js';
import { tracingSettings } from '../src/tracing.js';
import { chat, OPENAI_DIR, ROUTER_DIR, TEST_AUTH, TOKENS, until } from './helpers.js';

const CLIENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN = '00f067aa0ba902b7';
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;

const kernelOptions = (openai: FakeOpenAI, observability: Record<string, unknown> = {}) => ({
  extensions: [OBSERVABILITY_EXTENSION_DIR, ROUTER_DIR, OPENAI_DIR, TEST_AUTH],
  config: {
    extensions: {
      'routertest.test-auth': { tokens: TOKENS },
      'aion.provider-openai': { baseUrl: openai.url, apiKeySecret: '', timeoutMs: 20_000 },
      'aion.observability': observability,
    },
  },
});

describe('traces: one trace from the edge through the router and the provider to the upstream', function () {
  describe('with an in-process exporter', () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    let openai: FakeOpenAI;
    let kernel: TestKernel;

    before(async () => {
      trace.setGlobalTracerProvider(provider);
      openai = await startFakeOpenAI();
      kernel = await startTestKernel(kernelOptions(openai, { tracing: { enabled: false } }));
    });
    after(async () => {
      await kernel?.stop();
      await openai?.close();
      trace.disable();
      await provider.shutdown();
    });

    it('continues the caller traceparent: server span, a client span per hop into a host, traceparent to the upstream', async () => {
      exporter.reset();
      const init = chat('traced');
      const res = await kernel.request('/v1/chat/completions', {
        ...init,
        headers: { ...init.headers, traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`, 'x-request-id': 'trace-test-1' },
      });
      assert.equal(res.status, 200, await res.clone().text());
      const spans = await until(async () => {
        const all = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === CLIENT_TRACE);
        return all.some((s) => s.kind === SpanKind.SERVER) ? all : undefined;
      }, 'the server span');
      const server = spans.find((s) => s.kind === SpanKind.SERVER)!;
      assert.equal(server.name, 'POST /v1/chat/completions');
      assert.equal(parentOf(server), CLIENT_SPAN, 'the caller span is the parent');
      assert.equal(server.attributes['http.route'], '/v1/chat/completions');
      assert.equal(server.attributes['http.response.status_code'], 200);
      assert.equal(server.attributes['aion.request_id'], 'trace-test-1');
      const route = spans.find((s) => s.name === 'handleRoute aion.router')!;
      assert.ok(route, `spans: ${spans.map((s) => s.name).join(', ')}`);
      assert.equal(parentOf(route), server.spanContext().spanId, 'the router call is a child of the request');
      const providerCall = spans.find((s) => s.name.startsWith('invokeContribution providers/openai'))!;
      assert.ok(providerCall, `spans: ${spans.map((s) => s.name).join(', ')}`);
      assert.equal(parentOf(providerCall), route.spanContext().spanId, 'the provider call is a child of the router call, across the router host');
      const upstream = openai.requests.filter((r) => r.method === 'POST').at(-1)!;
      const header = String(upstream.headers.traceparent ?? '');
      const [, traceId, parentSpan, flags] = header.split('-');
      assert.equal(traceId, CLIENT_TRACE, `the upstream got ${header || 'no traceparent'}`);
      assert.equal(parentSpan, providerCall.spanContext().spanId, 'the upstream call is a child of the provider call, across the provider host');
      assert.equal(flags, '01');
    });

    it('starts a new trace without a caller traceparent', async () => {
      exporter.reset();
      const res = await kernel.request('/v1/chat/completions', chat('fresh'));
      assert.equal(res.status, 200);
      const server = await until(
        async () => exporter.getFinishedSpans().find((s) => s.kind === SpanKind.SERVER && s.name === 'POST /v1/chat/completions'),
        'the server span',
      );
      assert.equal(parentOf(server), undefined);
      const header = String(openai.requests.filter((r) => r.method === 'POST').at(-1)!.headers.traceparent ?? '');
      assert.equal(header.split('-')[1], server.spanContext().traceId);
    });
  });

  describe('with a real OTLP/HTTP receiver on loopback', () => {
    let receiver: Server;
    let receiverUrl: string;
    const received: Array<{ path: string; contentType: string; body: any }> = [];
    let openai: FakeOpenAI;
    let kernel: TestKernel;

    before(async () => {
      receiver = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          received.push({ path: req.url ?? '', contentType: String(req.headers['content-type']), body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
          res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        });
      });
      await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
      receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
      openai = await startFakeOpenAI();
      kernel = await startTestKernel(
        kernelOptions(openai, { tracing: { enabled: true, endpoint: `${receiverUrl}/v1/traces`, sampleRatio: 1, serviceName: 'aion-under-test' } }),
      );
    });
    after(async () => {
      await kernel?.stop();
      await openai?.close();
      receiver?.close();
    });

    it('exports the request trace over OTLP/HTTP JSON with the service name', async () => {
      const res = await kernel.request('/v1/chat/completions', chat('exported'));
      assert.equal(res.status, 200);
      const spans = await until(async () => {
        const all = received.flatMap((r) =>
          r.body.resourceSpans.flatMap((rs: any) =>
            rs.scopeSpans.flatMap((ss: any) =>
              ss.spans.map((s: any) => ({ ...s, service: rs.resource.attributes.find((a: any) => a.key === 'service.name')?.value.stringValue })),
            ),
          ),
        );
        return all.some((s: any) => s.name === 'POST /v1/chat/completions') && all.some((s: any) => s.name.startsWith('invokeContribution providers/openai'))
          ? all
          : undefined;
      }, 'exported spans');
      assert.equal(received[0]!.path, '/v1/traces');
      assert.match(received[0]!.contentType, /application\/json/);
      const server = spans.find((s: any) => s.name === 'POST /v1/chat/completions');
      assert.equal(server.service, 'aion-under-test');
      assert.ok(spans.filter((s: any) => s.traceId === server.traceId).length >= 3, 'edge, router and provider spans share the trace');
      const status = await kernel.executeCommand<{ tracing: { url: string } | null }>('observability.status');
      assert.equal(status.tracing?.url, `${receiverUrl}/v1/traces`);
    });
  });

  describe('settings', () => {
    it('is off by default and honours the OpenTelemetry environment', () => {
      assert.equal(tracingSettings({}, {}), undefined);
      const fromEnv = tracingSettings(
        {},
        { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/', OTEL_TRACES_SAMPLER_ARG: '0.01', OTEL_SERVICE_NAME: 'edge' },
      )!;
      assert.equal(fromEnv.url, 'http://collector:4318/v1/traces');
      assert.equal(fromEnv.sampleRatio, 0.01);
      assert.equal(fromEnv.serviceName, 'edge');
      assert.equal(
        tracingSettings({ enabled: false }, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }),
        undefined,
        'configuration wins over the environment',
      );
      assert.equal(tracingSettings({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' }), undefined);
      assert.equal(tracingSettings({}, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/custom' })!.url, 'http://c:4318/custom');
    });
  });
});
