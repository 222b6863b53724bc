import { AionError } from '@aion/extension-api';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { loadConfig } from './config/configuration.js';
import { ContributionRegistry } from './contributions/contributionRegistry.js';
import { HostManager } from './hosts/hostManager.js';
import { CommandsChannel } from './commands/commandsChannel.js';
import { NetworkIsolation } from './hosts/networkIsolation.js';
import { describeExtensions } from './http/extensionsRoute.js';
import { healthReport } from './http/health.js';
import { ExtensionRegistry } from './registry/extensionRegistry.js';
import { Kernel } from './kernel.js';
import { createLogger } from './logging.js';

export interface TestKernelOptions {
  /** Folders of the extensions under test (each an extension, or a folder of extensions). */
  extensions?: string[];
  /** Configuration merged over the defaults (e.g. `{ extensions: { "me.hello": { greeting: "hi" } } }`). */
  config?: Record<string, unknown>;
  /** Built-in extensions to load as well: true for all, or a list of ids (their dependencies come along). */
  builtins?: boolean | string[];
  /** Environment used for configuration overrides (defaults to none, so tests are hermetic). */
  env?: NodeJS.ProcessEnv;
  /**
   * Throw when an extension under test (in `extensions`) is invalid, skipped or failed to activate,
   * naming the file and JSON pointer (default true). Tests of the failure paths themselves pass false.
   */
  strict?: boolean;
  /** Keep the temporary data directory after stop (for debugging). */
  keepDataDir?: boolean;
  logLevel?: string;
  /** Where the kernel's log lines go (default stderr), e.g. a stream a test reads. */
  logDestination?: NodeJS.WritableStream;
}

export interface TestKernel {
  url: string;
  kernel: Kernel;
  dataDir: string;
  /** `fetch` against the kernel: `request('/v1/hello')`. */
  request(path: string, init?: RequestInit): Promise<Response>;
  /** Runs a contributed command as the CLI does, activating its extension: `executeCommand('hello.greet', 'bob')`. */
  executeCommand<T = unknown>(command: string, ...args: unknown[]): Promise<T>;
  /** What `GET /v1/extensions` shows an admin, read in process (the route itself needs an authenticated admin). */
  extensions(): Array<Record<string, any>>;
  /** What `/healthz` shows an admin: counts, and each host with its pid and extensions. */
  health(): Record<string, any>;
  stop(): Promise<void>;
}

/** A real kernel on 127.0.0.1, port 0, with a temporary data directory: for extension authors' tests. */
export async function startTestKernel(options: TestKernelOptions = {}): Promise<TestKernel> {
  const dataDir = mkdtempSync(join(tmpdir(), 'aion-test-'));
  const given = options.config ?? {};
  // Port 0 and loopback unless the test says otherwise, even when it sets other server options.
  const server = { port: 0, host: '127.0.0.1', ...(given.server as Record<string, unknown> | undefined) };
  const config = loadConfig({ env: options.env ?? {}, overrides: { dataDir, ...given, server } });
  const logger = createLogger({ level: options.logLevel ?? process.env.AION_TEST_LOG_LEVEL ?? 'silent', destination: options.logDestination });
  const kernel = await Kernel.start({ config, extensionDirs: (options.extensions ?? []).map((p) => resolve(p)), builtins: options.builtins ?? false, logger });
  if (options.strict !== false) {
    const roots = (options.extensions ?? []).map((p) => resolve(p));
    const underTest = (path: string) => roots.some((root) => path === root || path.startsWith(root + sep));
    const registry = kernel.get(ExtensionRegistry);
    const problems = [
      ...registry.rejected.filter((r) => underTest(r.manifestPath)).flatMap((r) => r.errors),
      ...registry
        .all()
        .filter((r) => underTest(r.extensionPath) && ['skipped', 'failed', 'invalid'].includes(r.state))
        .flatMap((r) => r.errors),
    ];
    if (problems.length > 0) {
      await kernel.stop();
      if (!options.keepDataDir) rmSync(dataDir, { recursive: true, force: true });
      throw new AionError(
        problems[0]!.code,
        `the extension under test did not start: ${problems.map((p) => `${p.code}: ${p.message}`).join('; ')} (pass strict: false to startTestKernel to test such failures)`,
        { details: problems },
      );
    }
  }
  const statusSources = () => ({
    config: kernel.config,
    registry: kernel.get(ExtensionRegistry),
    contributions: kernel.get(ContributionRegistry),
    hosts: kernel.get(HostManager),
    network: kernel.get(NetworkIsolation),
  });
  return {
    url: kernel.url,
    kernel,
    dataDir,
    request: (path, init) => fetch(kernel.url + path, init),
    executeCommand: <T>(command: string, ...args: unknown[]) => kernel.get(CommandsChannel).execute(command, args) as Promise<T>,
    extensions: () => describeExtensions(statusSources()),
    health: () => healthReport(statusSources(), true),
    stop: async () => {
      await kernel.stop();
      if (!options.keepDataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Asks `probe` every `everyMs` until it answers something other than undefined or false; fails naming `what` after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
  everyMs = 25,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value as T;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The Redis that tests of several kernels use (`AION_TEST_REDIS_URL` overrides it). */
export const TEST_REDIS_URL = process.env.AION_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Why the test Redis cannot be used, or undefined when it answers. */
export async function probeRedis(url = TEST_REDIS_URL): Promise<string | undefined> {
  const { Redis } = await import('ioredis');
  const redis = new Redis(url, { lazyConnect: true, connectTimeout: 2_000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await redis.connect();
    await redis.ping();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  } finally {
    redis.disconnect();
  }
}
