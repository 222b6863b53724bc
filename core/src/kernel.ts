import 'reflect-metadata';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Container } from 'inversify';
import { AionError, ErrorCodes, type HookKind } from '@aion/extension-api';
import { LifecycleProtocol } from '@aion/extension-api/protocol';
import { ActivationService } from './activation/activationService.js';
import { CommandRegistry } from './commands/commandRegistry.js';
import { loadConfig, type AionConfig, type LoadConfigOptions } from './config/configuration.js';
import { applyExtensionConfiguration } from './config/extensionConfiguration.js';
import { ContributionRegistry } from './contributions/contributionRegistry.js';
import { EventBus } from './events/eventBus.js';
import { ExtensionRegistry } from './registry/extensionRegistry.js';
import { findExtensionFolders, loadManifest, type ScannedManifest } from './registry/manifestLoader.js';
import { HookRegistry } from './hooks/hookRegistry.js';
import { HostManager } from './hosts/hostManager.js';
import { placeExtension } from './hosts/placement.js';
import { KernelEndpoint } from './hosts/kernelEndpoint.js';
import type { KernelChannel } from './hosts/kernelChannel.js';
import { CommandsChannel } from './commands/commandsChannel.js';
import { ContributionsChannel } from './contributions/contributionsChannel.js';
import { ExtensionApisChannel } from './activation/extensionApisChannel.js';
import { EventsChannel } from './events/eventsChannel.js';
import { HooksChannel } from './hooks/hooksChannel.js';
import { RealtimeChannel } from './http/realtimeChannel.js';
import { SecretsChannel } from './secrets/secretsChannel.js';
import { ClusterChannel } from './cluster/clusterChannel.js';
import { ClusterMembership } from './cluster/clusterMembership.js';
import { ChildProcessTransport } from './hosts/hostTransports.js';
import { NetworkIsolation } from './hosts/networkIsolation.js';
import { HttpEdge } from './http/httpEdge.js';
import { RealtimeService } from './http/realtimeService.js';
import { createLogger, type Logger } from './logging.js';
import { PermissionService } from './permissions/permissionService.js';
import { SecretsService } from './secrets/secretsService.js';
import { TYPES } from './tokens.js';
import { Telemetry } from './telemetry/telemetry.js';
import { enableCallContext } from '@aion/host-runtime';

/** The kernel half of every capability's protocol slice: a new capability is one channel file and one line here. */
const KERNEL_CHANNELS: Array<new (...args: never[]) => KernelChannel> = [
  HooksChannel,
  CommandsChannel,
  ExtensionApisChannel,
  ContributionsChannel,
  EventsChannel,
  SecretsChannel,
  RealtimeChannel,
  ClusterChannel,
];

/** The folder of built-in extensions in this repository. */
export const BUILTIN_EXTENSIONS_DIR = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..', 'extensions');

export interface KernelOptions {
  /** A loaded configuration, or how to load one. */
  config?: AionConfig | LoadConfigOptions;
  /** Extra folders: each is an extension or holds extensions (`--extensions-dir`). */
  extensionDirs?: string[];
  /** Load the built-in extensions: all (true, the default), none, or only these ids and their dependencies. */
  builtins?: boolean | string[];
  builtinDir?: string;
  logger?: Logger;
}

/**
 * The kernel: scan → validate → resolve dependencies → validate contributions and configuration →
 * mount routes → listen → activate `onStartup` → ready. Knows nothing about AI.
 */
export class Kernel {
  readonly container = new Container({ defaultScope: 'Singleton' });
  readonly config: AionConfig;
  readonly logger: Logger;
  url = '';
  port = 0;
  private stopping?: Promise<void>;

  private constructor(private readonly options: KernelOptions) {
    const c = options.config;
    this.config = c && 'server' in c ? (c as AionConfig) : loadConfig(c as LoadConfigOptions | undefined);
    this.logger = options.logger ?? createLogger();
    enableCallContext();
    const k = this.container;
    k.bind(TYPES.KernelOptions).toConstantValue(this.config);
    k.bind(TYPES.Logger).toConstantValue(this.logger);
    for (const service of [
      ExtensionRegistry,
      ContributionRegistry,
      HookRegistry,
      CommandRegistry,
      EventBus,
      PermissionService,
      SecretsService,
      RealtimeService,
      HostManager,
      ActivationService,
      ClusterMembership,
      KernelEndpoint,
      ...KERNEL_CHANNELS,
      HttpEdge,
      NetworkIsolation,
      Telemetry,
    ]) {
      k.bind(service as never).toSelf();
    }
    for (const channel of KERNEL_CHANNELS) k.bind(TYPES.KernelChannel).toService(channel as never);
    // Dedicated hosts enforce network allow-lists with this configuration's grants and enforcement mode.
    this.get(HostManager).registerTransport(new ChildProcessTransport('dedicated', this.get(NetworkIsolation)));
  }

  get<T>(service: new (...args: never[]) => T): T {
    return this.container.get(service as never) as T;
  }

  static async start(options: KernelOptions = {}): Promise<Kernel> {
    const kernel = new Kernel(options);
    try {
      await kernel.boot();
    } catch (err) {
      await kernel.stop().catch(() => undefined);
      throw err;
    }
    return kernel;
  }

  /** Everything up to (not including) listening: usable by `aion extensions list/validate`. */
  static load(options: KernelOptions = {}): Kernel {
    const kernel = new Kernel(options);
    kernel.loadExtensions();
    return kernel;
  }

  private scan(): ScannedManifest[] {
    const scanned: ScannedManifest[] = [];
    const builtins = this.options.builtins ?? true;
    if (builtins !== false) {
      const all = findExtensionFolders(this.options.builtinDir ?? BUILTIN_EXTENSIONS_DIR).map((dir) => loadManifest(dir, 'builtin'));
      if (builtins === true) scanned.push(...all);
      else {
        const wanted = new Set<string>();
        const add = (id: string) => {
          if (wanted.has(id)) return;
          wanted.add(id);
          for (const dep of all.find((s) => s.id === id)?.manifest?.extensionDependencies ?? []) add(dep);
        };
        builtins.forEach(add);
        scanned.push(...all.filter((s) => s.id && wanted.has(s.id)));
      }
    }
    for (const dir of findExtensionFolders(join(this.config.dataDir, 'extensions'))) scanned.push(loadManifest(dir, 'data'));
    // A folder named twice (a built-in passed with --extensions-dir too) is one extension, not a duplicate.
    const seen = new Set(scanned.map((s) => s.manifestPath));
    for (const root of this.options.extensionDirs ?? [])
      for (const dir of findExtensionFolders(root)) if (!seen.has(join(dir, 'package.json'))) scanned.push(loadManifest(dir, 'external'));
    return scanned;
  }

  private loadExtensions(): void {
    const registry = this.get(ExtensionRegistry);
    registry.register(this.scan(), {
      storageRoot: join(this.config.dataDir, 'storage'),
      disabled: this.config.disabledExtensions,
      builtinDir: this.options.builtinDir ?? BUILTIN_EXTENSIONS_DIR,
    });
    this.get(ContributionRegistry).load();
    const hooks = this.get(HookRegistry);
    const commands = this.get(CommandRegistry);
    const hosts = this.get(HostManager);
    for (const record of registry.all()) {
      if (record.state === 'skipped') continue;
      const placement = placeExtension(record, this.config);
      if (placement.refused) {
        registry.skip(record.id, { code: ErrorCodes.PERMISSION_DENIED, message: placement.refused });
        continue;
      }
      Object.assign(record, {
        hostKind: placement.hostKind,
        hostKey: placement.hostKey,
        enforcement: placement.enforcement,
        placementReason: placement.reason,
      });
      if (!hosts.hasTransport(record.hostKind)) {
        registry.skip(record.id, {
          code: ErrorCodes.EXTENSION_DISABLED,
          message: `${record.id} asks for a "${record.hostKind}" host, which this kernel cannot start`,
        });
        continue;
      }
      for (const hook of record.manifest.contributes?.hooks ?? []) {
        try {
          hooks.declare(hook.name, hook.kind as HookKind, record.id, hook.tap ?? 'public', hook.call ?? 'public');
        } catch (err) {
          registry.skip(record.id, { code: ErrorCodes.MANIFEST_INVALID, message: `${record.manifestPath}: /contributes/hooks: ${(err as Error).message}` });
        }
      }
      for (const command of record.manifest.contributes?.commands ?? []) commands.declare(command, record.id);
    }
    for (const rejected of registry.rejected) for (const e of rejected.errors) this.logger.error({ code: e.code }, e.message);
    for (const record of registry.all()) {
      if (record.state === 'skipped') for (const e of record.errors) this.logger.error({ extension: record.id, code: e.code }, e.message);
      for (const w of record.warnings) this.logger.warn({ extension: record.id, code: w.code }, w.message);
    }
  }

  private abortIfRequired(phase: string): void {
    const registry = this.get(ExtensionRegistry);
    const fatal = registry.all().filter((r) => r.manifest.aion?.bootFailure === 'abort' && (r.state === 'skipped' || r.state === 'failed'));
    if (fatal.length > 0) {
      throw new AionError(
        ErrorCodes.ACTIVATION_FAILED,
        `start-up aborted during ${phase}: ${fatal.map((r) => `${r.id} (${r.errors.map((e) => e.message).join('; ')})`).join(', ')}`,
      );
    }
  }

  private async boot(): Promise<void> {
    const started = performance.now();
    mkdirSync(this.config.dataDir, { recursive: true });
    for (const sub of ['extensions', 'storage', 'tmp', 'cache', 'logs']) mkdirSync(join(this.config.dataDir, sub), { recursive: true });
    this.get(KernelEndpoint);
    this.loadExtensions();
    applyExtensionConfiguration(this.config, this.get(ExtensionRegistry), this.logger);
    this.abortIfRequired('validation');
    await this.get(ClusterMembership).join();
    const edge = this.get(HttpEdge);
    edge.build();
    const { url, port } = await edge.listen();
    this.url = url;
    this.port = port;
    this.get(Telemetry).start(() => edge.inFlightRequests);
    await this.get(ActivationService).activateByEvent('onStartup');
    this.abortIfRequired('start-up activation');
    edge.markReady();
    this.logger.info({ url, bootMs: Math.round(performance.now() - started) }, `Aion is ready at ${url}`);
  }

  /** Drains in-flight requests (bounded), deactivates extensions (bounded), stops hosts. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    const { drainTimeoutMs, deactivateTimeoutMs } = this.config.server;
    const edge = this.container.isBound(HttpEdge) ? this.get(HttpEdge) : undefined;
    if (edge?.server) {
      const drained = await edge.drain(drainTimeoutMs);
      if (!drained) this.logger.warn(`${edge.inFlightRequests} requests were still in flight after ${drainTimeoutMs} ms`);
    }
    const registry = this.get(ExtensionRegistry);
    const hosts = this.get(HostManager);
    const deadline = Date.now() + deactivateTimeoutMs;
    for (const id of registry.topologicalOrder().reverse()) {
      const record = registry.get(id)!;
      if (record.state !== 'active') continue;
      const host = hosts.find(hosts.keyFor(record));
      const left = deadline - Date.now();
      if (!host || left <= 0) continue;
      await Promise.race([
        host
          .request(LifecycleProtocol.host.deactivate, { extensionId: id })
          .catch((err) => this.logger.warn({ extension: id, err: String(err) }, 'deactivate failed')),
        new Promise((r) => setTimeout(r, left)),
      ]);
      record.state = 'inactive';
    }
    if (this.container.isBound(Telemetry)) this.get(Telemetry).stop();
    await hosts.shutdown();
    await this.get(ClusterMembership).leave();
    await this.get(NetworkIsolation).dispose();
    await edge?.close();
    this.logger.info('Aion stopped');
  }
}
