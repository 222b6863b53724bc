import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { AionError, CancellationTokenSource, ErrorCodes, isAionError, type CancellationToken } from '@aion/extension-api';
import { ActivationService } from '../activation/activationService.js';
import { CommandRegistry } from '../commands/commandRegistry.js';
import { CommandsChannel } from '../commands/commandsChannel.js';
import { ContributionRegistry } from '../contributions/contributionRegistry.js';
import { HostManager } from '../hosts/hostManager.js';
import { HooksChannel } from '../hooks/hooksChannel.js';
import { NetworkIsolation } from '../hosts/networkIsolation.js';
import { describeExtensions, type ExtensionStatusSources } from '../http/extensionsRoute.js';
import { healthReport, runHealthChecks } from '../http/health.js';
import { HttpEdge } from '../http/httpEdge.js';
import type { Kernel } from '../kernel.js';
import { ExtensionRegistry } from '../registry/extensionRegistry.js';
import {
  assertPrivate,
  CONTROL_METHODS,
  CONTROL_PROTOCOL_VERSION,
  ControlErrorCodes,
  controlSecretPath,
  controlSocketPath,
  readMessages,
  type ServerMessage,
} from './controlProtocol.js';

export interface ControlServerOptions {
  /** Requests a connection may make in a burst, refilled at `ratePerSecond` (default 20 and 10). */
  burst?: number;
  ratePerSecond?: number;
  /** Time a client has to authenticate (default 5 s). */
  authTimeoutMs?: number;
  maxConnections?: number;
}

/** The 256-bit secret shared with local clients, created 0600 on first use; an unsafe existing file is refused. */
export function ensureControlSecret(dataDir: string): string {
  const path = controlSecretPath(dataDir);
  if (!existsSync(path)) {
    try {
      writeFileSync(path, randomBytes(32).toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  assertPrivate(path, 'the control secret');
  const secret = readFileSync(path, 'utf8').trim();
  if (!/^[0-9a-f]{64}$/.test(secret))
    throw new AionError(ControlErrorCodes.UNSAFE, `${path} does not hold a 256-bit hex secret: delete it and start the server again`);
  return secret;
}

const digest = (value: string) => createHash('sha256').update(value).digest();

/** Constant-time: hashing first gives equal lengths, so the comparison leaks neither content nor length. */
function secretMatches(given: unknown, secret: string): boolean {
  return typeof given === 'string' && timingSafeEqual(digest(given), digest(secret));
}

/** The running server's side of the local control channel (`aion extensions list --running`, `aion health`, `aion reload`). */
export class ControlServer {
  private constructor(
    private readonly server: Server,
    readonly socketPath: string,
  ) {}

  static async start(kernel: Kernel, options: ControlServerOptions = {}): Promise<ControlServer> {
    const dataDir = kernel.config.dataDir;
    const secret = ensureControlSecret(dataDir);
    const socketPath = controlSocketPath(dataDir);
    await removeStaleSocket(socketPath);
    const { burst = 20, ratePerSecond = 10, authTimeoutMs = 5_000, maxConnections = 32 } = options;
    const version = kernelVersion();
    const server = createServer((socket) => serveConnection(socket, { kernel, secret, burst, ratePerSecond, authTimeoutMs, version }));
    server.maxConnections = maxConnections;
    // The socket is created 0600 (no window in which another user could connect). Node binds a path
    // synchronously inside listen(), so the umask is restored before anything else can run.
    const listening = new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.once('listening', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const umask = process.umask(0o177);
    try {
      server.listen(socketPath);
    } finally {
      process.umask(umask);
    }
    await listening;
    chmodSync(socketPath, 0o600);
    return new ControlServer(server, socketPath);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    try {
      unlinkSync(this.socketPath);
    } catch {
      // already gone
    }
  }
}

function kernelVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

/** A socket left by a server that died is removed; one a live server answers on, or another user's, is not. */
async function removeStaleSocket(path: string): Promise<void> {
  let stats: ReturnType<typeof lstatSync>;
  try {
    stats = lstatSync(path);
  } catch {
    return;
  }
  if (!stats.isSocket()) throw new AionError(ControlErrorCodes.UNSAFE, `${path} exists and is not a socket: move it away`);
  const uid = process.getuid?.();
  if (uid !== undefined && stats.uid !== uid)
    throw new AionError(ControlErrorCodes.UNSAFE, `the control socket ${path} belongs to uid ${stats.uid}, not to you (uid ${uid}): refusing to replace it`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new AionError(ErrorCodes.CONFLICT, `another Aion server is running on this data directory (${path}): stop it or choose another --data-dir`);
  unlinkSync(path);
}

interface ConnectionContext {
  kernel: Kernel;
  secret: string;
  burst: number;
  ratePerSecond: number;
  authTimeoutMs: number;
  version: string;
}

function serveConnection(socket: Socket, { kernel, secret, burst, ratePerSecond, authTimeoutMs, version }: ConnectionContext): void {
  const send = (message: ServerMessage) => socket.writable && socket.write(JSON.stringify(message) + '\n');
  const refuse = (code: string, message: string) => {
    send({ type: 'error', code, message });
    socket.end();
    socket.destroySoon?.();
  };
  socket.on('error', () => socket.destroy());
  let authenticated = false;
  const authTimer = setTimeout(() => refuse(ErrorCodes.TIMEOUT, `authenticate within ${authTimeoutMs} ms`), authTimeoutMs);
  // What this client asked runs only while it is connected: a CLI that exits (Ctrl-C) stops its command.
  const connected = new CancellationTokenSource();
  socket.once('close', () => {
    clearTimeout(authTimer);
    connected.cancel();
  });
  // A token bucket per connection: a client that floods gets RATE_LIMITED answers, not the kernel's time.
  let tokens = burst;
  let refilledAt = Date.now();
  const take = () => {
    const now = Date.now();
    tokens = Math.min(burst, tokens + ((now - refilledAt) / 1000) * ratePerSecond);
    refilledAt = now;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  };
  send({ type: 'hello', protocol: CONTROL_PROTOCOL_VERSION, capabilities: [...CONTROL_METHODS] });
  readMessages(
    socket,
    (message) => {
      if (!authenticated) {
        clearTimeout(authTimer);
        if (message.type !== 'auth') return refuse(ErrorCodes.UNAUTHENTICATED, 'the first message must be { "type": "auth", "protocol", "secret" }');
        if (message.protocol !== CONTROL_PROTOCOL_VERSION)
          return refuse(
            ControlErrorCodes.PROTOCOL_MISMATCH,
            `this server speaks control protocol ${CONTROL_PROTOCOL_VERSION}, the client ${JSON.stringify(message.protocol)}: use the aion CLI of the server's version (${version})`,
          );
        if (!secretMatches(message.secret, secret)) return refuse(ErrorCodes.UNAUTHENTICATED, 'wrong control secret');
        authenticated = true;
        return void send({ type: 'ready', server: { version, pid: process.pid, url: kernel.url } });
      }
      const id = typeof message.id === 'number' ? message.id : 0;
      if (!take())
        return void send({
          id,
          error: { code: ErrorCodes.RATE_LIMITED, message: `more than ${ratePerSecond} requests a second on one connection: slow down` },
        });
      answer(kernel, String(message.method), (message.params ?? {}) as Record<string, unknown>, connected.token).then(
        (result) => send({ id, result }),
        (err) =>
          send({ id, error: isAionError(err) ? { code: err.code, message: err.message } : { code: ErrorCodes.INTERNAL, message: (err as Error).message } }),
      );
    },
    (reason) => refuse(ErrorCodes.BAD_REQUEST, reason),
  );
}

function statusSources(kernel: Kernel): ExtensionStatusSources {
  return {
    config: kernel.config,
    registry: kernel.get(ExtensionRegistry),
    contributions: kernel.get(ContributionRegistry),
    hosts: kernel.get(HostManager),
    network: kernel.get(NetworkIsolation),
  };
}

async function answer(kernel: Kernel, method: string, params: Record<string, unknown>, token: CancellationToken): Promise<unknown> {
  switch (method) {
    case 'extensions.list':
      return describeExtensions(statusSources(kernel));
    case 'health': {
      const health = healthReport(statusSources(kernel), true);
      const checks = await runHealthChecks((hook, payload) => kernel.get(HooksChannel).call(hook, payload));
      if (checks.some((c) => c.status === 'failed' || c.status === 'degraded')) health.status = 'degraded';
      return { url: kernel.url, health: { ...health, checks }, readiness: kernel.get(HttpEdge).readiness };
    }
    case 'reload': {
      if (typeof params.extension !== 'string') throw new AionError(ErrorCodes.BAD_REQUEST, 'reload needs { "extension": "<id>" }');
      return kernel.get(ActivationService).reload(params.extension);
    }
    case 'commands.execute': {
      // Only what the command's own declaration (its owner's manifest) offers the CLI as running in the
      // server: the channel is not a way to any command.
      const { command, args } = params;
      if (typeof command !== 'string' || kernel.get(CommandRegistry).declarationOf(command)?.cli?.running !== true)
        throw new AionError(ErrorCodes.NOT_FOUND, `this server offers no command ${JSON.stringify(command)} to the CLI (contributes.commands[].cli.running)`);
      return kernel.get(CommandsChannel).execute(command, [args ?? {}], token);
    }
    default:
      throw new AionError(ErrorCodes.NOT_FOUND, `unknown control method "${method}"; this server offers ${CONTROL_METHODS.join(', ')}`);
  }
}
