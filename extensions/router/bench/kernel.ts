/**
 * The Aion side of the benchmark, in its own process: a kernel with the router, the OpenAI-compatible
 * provider pointed at the fake upstream, and the test authentication fixture. Arguments: the upstream
 * URL, the router's host kind and the provider's (`shared`, their manifests' choice, or `kernel`).
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestKernel } from '@aion/core';

const [upstream, routerHost, providerHost = routerHost] = process.argv.slice(2) as [string, 'shared' | 'kernel', ('shared' | 'kernel')?];
const require = createRequire(import.meta.url);
const routerDir = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const openaiDir = dirname(require.resolve('@aion/ext-provider-openai/package.json'));

/** The same extension with another `aion.host`: a manifest copy whose `main` points at the real build. */
function placed(dir: string, where: string, host: string): string {
  const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  if ((manifest.aion?.host ?? 'shared') === host) return dir;
  const copy = join(where, manifest.name.replace(/\W+/g, '-'));
  mkdirSync(copy, { recursive: true });
  manifest.aion = { ...manifest.aion, host };
  manifest.main = resolve(dir, manifest.main);
  writeFileSync(join(copy, 'package.json'), JSON.stringify(manifest));
  return copy;
}

const where = mkdtempSync(join(tmpdir(), 'aion-bench-ext-'));
const kernel = await startTestKernel({
  extensions: [placed(routerDir, where, routerHost), placed(openaiDir, where, providerHost), join(routerDir, 'test', 'fixtures', 'test-auth')],
  config: {
    // The load generator opens up to 1024 connections from one address: the per-address cap would refuse them.
    server: { maxInFlight: 10_000, maxConnectionsPerIp: 0 },
    // The manifest copies above are not where built-ins live, so the kernel host needs the operator's grant.
    permissions: { grants: { 'aion.router': { kernelHost: true }, 'aion.provider-openai': { kernelHost: true } } },
    extensions: {
      'aion.router': { providers: { openai: { enabled: true, maxConcurrency: 10_000 } }, limits: { maxRunningTasks: 10_000 } },
      'aion.provider-openai': { baseUrl: upstream, apiKeySecret: '' },
      'routertest.test-auth': { tokens: { 'bench-token': { sub: 'bench', scopes: ['tasks:write', 'tasks:read', 'models:read'] } } },
    },
  },
});
process.send!({ url: kernel.url });
process.on('disconnect', () => void kernel.stop().finally(() => process.exit(0)));
