/**
 * The Portkey gateway as a peer in the benchmark, installed on demand into a cache directory (never a
 * dependency of the project). 1.15.2 needs `@hono/node-server` pinned to 1.13.5: with a newer one the
 * gateway crashes on the first request with `TypeError: immutable`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const PORTKEY_VERSION = '1.15.2';

const cacheDir = () => join(process.env.AION_BENCH_CACHE ?? join(homedir(), '.cache', 'aion-bench'), `portkey-${PORTKEY_VERSION}`);

/** The gateway's entry script, installing it first when the cache lacks it; undefined (with the reason printed) when it cannot be installed. */
export function installPortkey(): string | undefined {
  const dir = cacheDir();
  const entry = join(dir, 'node_modules', '@portkey-ai', 'gateway', 'build', 'start-server.js');
  if (existsSync(entry)) return entry;
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ private: true, dependencies: { '@portkey-ai/gateway': PORTKEY_VERSION }, overrides: { '@hono/node-server': '1.13.5' } }, null, 2),
  );
  console.log(`installing the Portkey gateway ${PORTKEY_VERSION} into ${dir} (once) …`);
  const npm = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd: dir,
    stdio: ['ignore', 'inherit', 'inherit'],
    timeout: 300_000,
  });
  if (npm.status !== 0 || !existsSync(entry)) {
    console.log(`Portkey skipped: npm install in ${dir} failed (exit ${npm.status ?? npm.signal}); the registry must be reachable once`);
    return undefined;
  }
  return entry;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Starts the gateway headless on a free loopback port and waits until it answers. */
export async function startPortkey(entry: string): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  const child = spawn(process.execPath, [entry, `--port=${port}`, '--headless'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, NODE_ENV: 'production' },
  });
  const url = `http://127.0.0.1:${port}`;
  const until = Date.now() + 30_000;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`the Portkey gateway exited with ${child.exitCode}`);
    try {
      await fetch(`${url}/`);
      return { child, url };
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  child.kill();
  throw new Error('the Portkey gateway did not answer within 30 s');
}

/** Headers that make Portkey forward to the fake upstream as the OpenAI provider. */
export const portkeyHeaders = (upstreamUrl: string) => ({
  'x-portkey-provider': 'openai',
  'x-portkey-custom-host': upstreamUrl,
  authorization: 'Bearer sk-bench',
});
