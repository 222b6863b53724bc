/**
 * One Aion of the benchmark, in its own process: the router, the OpenAI-compatible provider pointed at
 * the fake upstream, the test authentication, and observability in one mode. Arguments: upstream URL,
 * mode (`off`, `metrics`, `trace-100`, `trace-1`), OTLP sink URL.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { startTestKernel } from '@aion/core';

const [upstream, mode, sink] = process.argv.slice(2) as [string, string, string];
const require = createRequire(import.meta.url);
const routerDir = dirname(require.resolve('@aion/ext-router/package.json'));
const openaiDir = dirname(require.resolve('@aion/ext-provider-openai/package.json'));
const observabilityDir = join(dirname(require.resolve('@aion/ext-router/package.json')), '..', 'observability');

const tracing = mode.startsWith('trace-') ? { enabled: true, endpoint: sink, sampleRatio: Number(mode.slice('trace-'.length)) / 100 } : { enabled: false };
const kernel = await startTestKernel({
  extensions: [routerDir, openaiDir, join(routerDir, 'test', 'fixtures', 'test-auth'), observabilityDir],
  config: {
    server: { maxInFlight: 10_000 },
    extensions: {
      'aion.router': { providers: { openai: { enabled: true, maxConcurrency: 10_000 } }, limits: { maxRunningTasks: 10_000 } },
      'aion.provider-openai': { baseUrl: upstream, apiKeySecret: '' },
      'routertest.test-auth': { tokens: { 'bench-token': { sub: 'bench', scopes: ['tasks:write', 'tasks:read', 'models:read', 'metrics:read'] } } },
      'aion.observability': { metrics: { enabled: mode !== 'off' }, tracing },
    },
  },
});
process.send!({ url: kernel.url });
process.on('disconnect', () => void kernel.stop().finally(() => process.exit(0)));
