import { inject, injectable } from 'inversify';
import { AionError, CancellationToken, Emitter, ErrorCodes, type HostKind, type HttpResponseData } from '@aion/extension-api';
import { HooksProtocol, LifecycleProtocol, RoutesProtocol, RpcEndpoint, type CallTapParams, type HandleRouteParams } from '@aion/extension-api/protocol';
import type { RequestType } from 'vscode-jsonrpc';
import { ROOT_CONTEXT, context } from '@opentelemetry/api';
import { currentCallContext, inClientSpan } from '@aion/host-runtime';
import type { AionConfig } from '../config/configuration.js';
import type { ExtensionRecord } from '../registry/extensionRecord.js';
import { ExtensionRegistry } from '../registry/extensionRegistry.js';
import { permissionFlags } from './placement.js';
import type { Logger } from '../logging.js';
import { TYPES } from '../tokens.js';
import { ChildProcessTransport, InProcessTransport, type HostTransport, type StartedHost } from './hostTransports.js';

export type HostState = 'running' | 'unresponsive' | 'exited';

/** Kernel → host requests of a host's own life; every other request runs extension code for a call, and carries its context. */
const LIFECYCLE = new Set(Object.values(LifecycleProtocol.host).map((t) => t.method));

/** The kernel's side of one running extension host. */
export class HostConnection {
  state: HostState = 'running';
  readonly extensions = new Set<string>();
  lastPongAt = Date.now();
  private pingTimer?: NodeJS.Timeout;

  constructor(
    readonly key: string,
    readonly kind: HostKind,
    readonly endpoint: RpcEndpoint,
    readonly started: StartedHost,
  ) {}

  get pid(): number | undefined {
    return this.started.pid;
  }

  /** Set by telemetry: called with each request's protocol method, duration and outcome. */
  onRequestDone?: (method: string, ms: number, failed: boolean) => void;

  /**
   * Hands a request for a declared route to the host. A host in the kernel's own process runs the
   * handler without a message (no JSON-RPC, no stream bridge between the edge and the handler); the
   * answer and its errors are the same either way, and the call is timed and traced as a `$handleRoute` request.
   */
  handleRoute(params: HandleRouteParams, token: CancellationToken): Promise<HttpResponseData> {
    const local = this.started.local;
    if (!local) return this.request(RoutesProtocol.host.handle, params, token);
    return this.call(RoutesProtocol.host.handle, params, (p) => local.handleRoute(p, token), true);
  }

  /** Runs one of the host's hook taps; in the kernel's own process without a message, as `handleRoute` does. */
  callTap(params: CallTapParams): Promise<unknown> {
    const local = this.started.local;
    if (!local) return this.request(HooksProtocol.host.callTap, params);
    return this.call(HooksProtocol.host.callTap, params, (p) => local.callTap(p, CancellationToken.None), true);
  }

  /**
   * A request to the host, carrying the active call context (request id, trace parent) for calls that
   * run extension code; inside a recorded trace, the call is a span of its own.
   */
  request<P, R>(type: RequestType<P, R, any>, params: P, token?: CancellationToken): Promise<R> {
    return this.call(type, params, (p) => this.endpoint.sendRequest(type, p, token));
  }

  /**
   * One call into the host, however it travels (`send`): timed, and traced as a span of a sampled trace.
   * A call `inProcess` needs no call context in its params: the callee runs in this async context already.
   */
  private call<P, R>(type: RequestType<P, R, any>, params: P, send: (params: P) => Promise<R>, inProcess = false): Promise<R> {
    if (this.state === 'exited') return Promise.reject(new AionError(ErrorCodes.EXTENSION_HOST_CRASHED, `extension host ${this.key} is not running`));
    const observe = this.onRequestDone;
    const go = (p: P) => (observe ? this.timed(type.method, () => send(p), observe) : send(p));
    if (LIFECYCLE.has(type.method)) return go(params);
    if (context.active() === ROOT_CONTEXT) return go(params);
    // A contribution is named by its point and id (its extension rides along in the params too); named only for a recorded span.
    const name = () => {
      const target = (params as { extensionId?: string; point?: string; id?: string; command?: string }) ?? {};
      return `${type.method.slice(1)} ${target.point ? `${target.point}/${target.id}` : (target.extensionId ?? target.command ?? this.key)}`;
    };
    // Inside a sampled trace the call is a span of its own, and the context it carries names that span.
    return inClientSpan(name, type.method, this.key, () => go(inProcess ? params : ({ ...params, context: currentCallContext() } as P)));
  }

  private timed<R>(method: string, send: () => Promise<R>, observe: (method: string, ms: number, failed: boolean) => void): Promise<R> {
    const started = performance.now();
    const sent = send();
    sent.then(
      () => observe(method, performance.now() - started, false),
      () => observe(method, performance.now() - started, true),
    );
    return sent;
  }

  startHeartbeat(intervalMs: number, unresponsiveAfterMs: number, onUnresponsive: () => void, onRecovered: () => void): void {
    if (intervalMs <= 0) return;
    let inFlight = false;
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastPongAt > unresponsiveAfterMs && this.state === 'running') {
        this.state = 'unresponsive';
        onUnresponsive();
      }
      if (inFlight) return;
      inFlight = true;
      this.endpoint
        .sendRequest(LifecycleProtocol.host.ping, { sentAt: Date.now() })
        .then(() => {
          this.lastPongAt = Date.now();
          if (this.state === 'unresponsive') {
            this.state = 'running';
            onRecovered();
          }
        })
        .catch(() => undefined)
        .finally(() => (inFlight = false));
    }, intervalMs);
    this.pingTimer.unref();
  }

  stopHeartbeat(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
  }
}

export interface HostCrash {
  host: HostConnection;
  extensions: string[];
  /** Set when the host crashed too often and its extensions are now disabled. */
  disabledReason?: string;
  restartInMs: number;
}

/**
 * Starts, watches and restarts extension hosts: one `kernel` host, one `shared` host, one process
 * per `dedicated` extension, and whatever `remote` transport is registered.
 */
@injectable()
export class HostManager {
  private readonly hosts = new Map<string, HostConnection>();
  private readonly starting = new Map<string, Promise<HostConnection>>();
  private readonly transports = new Map<HostKind, HostTransport>();
  private readonly crashes = new Map<string, number[]>();
  private readonly notBefore = new Map<string, number>();
  private readonly disabled = new Map<string, string>();
  /** Spare host processes started ahead of a reload (`aion dev`), by host key. */
  private readonly standby = new Map<string, Promise<StartedHost>>();
  /** Hosts stopped on purpose (a reload): their exit is not a crash. */
  private readonly stoppedOnPurpose = new WeakSet<HostConnection>();
  private shuttingDown = false;

  private readonly didStart = new Emitter<HostConnection>();
  readonly onDidStartHost = this.didStart.event;
  private readonly didCrash = new Emitter<HostCrash>();
  readonly onDidCrash = this.didCrash.event;

  constructor(
    @inject(TYPES.KernelOptions) private readonly config: AionConfig,
    @inject(TYPES.Logger) private readonly logger: Logger,
    @inject(ExtensionRegistry) private readonly registry: ExtensionRegistry,
  ) {
    this.transports.set('kernel', new InProcessTransport());
    this.transports.set('shared', new ChildProcessTransport('shared'));
    this.transports.set('dedicated', new ChildProcessTransport('dedicated'));
  }

  registerTransport(transport: HostTransport): void {
    this.transports.set(transport.kind, transport);
  }

  hasTransport(kind: HostKind): boolean {
    return this.transports.has(kind);
  }

  keyFor(record: ExtensionRecord): string {
    return record.hostKey;
  }

  all(): HostConnection[] {
    return [...this.hosts.values()];
  }

  find(key: string): HostConnection | undefined {
    return this.hosts.get(key);
  }

  disabledReason(record: ExtensionRecord): string | undefined {
    return this.disabled.get(this.keyFor(record));
  }

  /** Hosts the crash policy disabled, with the reason. */
  disabledHosts(): Array<{ key: string; reason: string }> {
    return [...this.disabled].map(([key, reason]) => ({ key, reason }));
  }

  /** Lets a host the crash policy disabled start again, with a clean crash history. */
  enableHost(key: string): boolean {
    this.crashes.delete(key);
    this.notBefore.delete(key);
    return this.disabled.delete(key);
  }

  /** The host for `record` if it is running now (not disabled, not shutting down); `hostFor` starts one. */
  runningHostFor(record: ExtensionRecord): HostConnection | undefined {
    if (this.shuttingDown) return undefined;
    const key = this.keyFor(record);
    if (this.disabled.has(key)) return undefined;
    const running = this.hosts.get(key);
    return running && running.state !== 'exited' ? running : undefined;
  }

  /** The running host for `record`, started (after any restart backoff) when needed. */
  async hostFor(record: ExtensionRecord): Promise<HostConnection> {
    if (this.shuttingDown) throw new AionError(ErrorCodes.SHUTTING_DOWN, 'the server is shutting down');
    const key = this.keyFor(record);
    const reason = this.disabled.get(key);
    if (reason) throw new AionError(ErrorCodes.EXTENSION_DISABLED, reason);
    const running = this.hosts.get(key);
    if (running && running.state !== 'exited') return running;
    let pending = this.starting.get(key);
    if (!pending) {
      pending = this.start(key, record).finally(() => this.starting.delete(key));
      this.starting.set(key, pending);
    }
    return pending;
  }

  /** What starting `record`'s host takes: its transport, every extension placed in it, and their permission flags. */
  private launchPlan(key: string, record: ExtensionRecord): { transport: HostTransport; members: ExtensionRecord[]; flags: string[] } {
    const transport = this.transports.get(record.hostKind);
    if (!transport) throw new AionError(ErrorCodes.EXTENSION_DISABLED, `no transport for host kind "${record.hostKind}" is available in this kernel`);
    // Every extension placed in this host, so its permission flags cover all of them from the start.
    const found = this.registry.all().filter((r) => r.hostKey === key);
    const members = found.length ? found : [record];
    const isolated = record.hostKind === 'shared' || record.hostKind === 'dedicated';
    return { transport, members, flags: isolated ? permissionFlags(members, this.config) : [] };
  }

  /**
   * For development (`aion dev`): starts a spare process for `record`'s host, so the next restart of
   * that host (a reload) skips process start-up. A spare that exits is forgotten.
   */
  prepareStandby(record: ExtensionRecord): void {
    const key = this.keyFor(record);
    if (this.shuttingDown || this.standby.has(key) || record.hostKind === 'kernel' || this.disabled.has(key)) return;
    const { transport, members, flags } = this.launchPlan(key, record);
    const spare = transport.start({ key, extensions: members, permissionFlags: flags });
    this.standby.set(key, spare);
    spare.then(
      (started) => started.onExit(() => this.standby.get(key) === spare && this.standby.delete(key)),
      () => this.standby.get(key) === spare && this.standby.delete(key),
    );
  }

  private async start(key: string, record: ExtensionRecord): Promise<HostConnection> {
    const wait = (this.notBefore.get(key) ?? 0) - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const { transport, members, flags } = this.launchPlan(key, record);
    const spare = this.standby.get(key);
    this.standby.delete(key);
    const started = (spare && (await spare.catch(() => undefined))) || (await transport.start({ key, extensions: members, permissionFlags: flags }));
    const endpoint = new RpcEndpoint(started.connection);
    const host = new HostConnection(key, record.hostKind, endpoint, started);
    const log = this.logger.child({ host: key, pid: started.pid });
    started.onOutput?.(({ stream, line }) => (stream === 'stderr' ? log.warn({ stream }, line) : log.info({ stream }, line)));
    started.onExit(({ code, signal }) => this.handleExit(host, code, signal));
    this.hosts.set(key, host);
    this.didStart.fire(host);
    started.connection.listen();
    const { pingIntervalMs, unresponsiveAfterMs } = this.config.hosts;
    if (record.hostKind !== 'kernel') {
      host.startHeartbeat(
        pingIntervalMs,
        unresponsiveAfterMs,
        () =>
          log.error(
            { extensions: [...host.extensions] },
            `extension host ${key} is unresponsive (no answer for ${unresponsiveAfterMs} ms); extensions: ${[...host.extensions].join(', ') || 'none'}`,
          ),
        () => log.info(`extension host ${key} answers again`),
      );
    }
    log.info({ kind: record.hostKind }, `extension host ${key} started`);
    const escapes = ['--allow-child-process', '--allow-addons'].filter((f) => flags.includes(f));
    if (escapes.length > 0)
      log.warn(
        { flags: escapes },
        `extension host ${key} runs with ${escapes.join(' and ')}: what those processes or addons do is not bound by Node's permission model (docs/security-model.md)`,
      );
    return host;
  }

  private handleExit(host: HostConnection, code: number | null, signal: string | null): void {
    host.state = 'exited';
    host.stopHeartbeat();
    const extensions = [...host.extensions];
    const message = `extension host ${host.key} exited (${signal ?? `code ${code}`}) while serving ${extensions.join(', ') || 'no extensions'}`;
    host.endpoint.close(new AionError(ErrorCodes.EXTENSION_HOST_CRASHED, message, { details: { host: host.key, extensions } }));
    if (this.hosts.get(host.key) === host) this.hosts.delete(host.key);
    if (this.shuttingDown || this.stoppedOnPurpose.has(host)) return;
    const now = Date.now();
    const { crashWindowMs, maxCrashes, restartBackoffMs, maxRestartBackoffMs } = this.config.hosts;
    const history = (this.crashes.get(host.key) ?? []).filter((t) => now - t < crashWindowMs);
    history.push(now);
    this.crashes.set(host.key, history);
    let disabledReason: string | undefined;
    if (history.length >= maxCrashes) {
      disabledReason = `extension host ${host.key} crashed ${history.length} times within ${Math.round(crashWindowMs / 1000)} s; its extensions (${extensions.join(', ')}) are disabled until the server restarts`;
      this.disabled.set(host.key, disabledReason);
      this.logger.error({ host: host.key, extensions }, disabledReason);
    } else this.logger.error({ host: host.key, extensions }, message);
    const restartInMs = Math.min(restartBackoffMs * 2 ** (history.length - 1), maxRestartBackoffMs);
    this.notBefore.set(host.key, now + restartInMs);
    this.didCrash.fire({ host, extensions, disabledReason, restartInMs });
  }

  /** Stops one host on purpose, so the next `hostFor` starts a fresh one (no crash count, no backoff). */
  async stopHost(key: string): Promise<void> {
    const host = this.hosts.get(key);
    if (!host || host.state === 'exited') return;
    this.stoppedOnPurpose.add(host);
    await this.kill(host, new AionError(ErrorCodes.EXTENSION_HOST_CRASHED, `extension host ${key} is restarting`));
    if (this.hosts.get(key) === host) this.hosts.delete(key);
  }

  private kill(host: HostConnection, reason: AionError): Promise<void> {
    return new Promise<void>((resolve) => {
      host.stopHeartbeat();
      if (host.state === 'exited') return resolve();
      const timer = setTimeout(resolve, 2_000);
      host.started.onExit(() => {
        clearTimeout(timer);
        resolve();
      });
      host.endpoint.close(reason);
      host.started.kill();
    });
  }

  /** Stops every host; children that do not exit promptly are killed. */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    for (const spare of this.standby.values())
      void spare.then(
        (started) => started.kill(),
        () => undefined,
      );
    this.standby.clear();
    await Promise.all(this.all().map((host) => this.kill(host, new AionError(ErrorCodes.SHUTTING_DOWN, 'the server is shutting down'))));
    this.hosts.clear();
  }
}
