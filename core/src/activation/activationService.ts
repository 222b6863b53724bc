import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { inject, injectable } from 'inversify';
import { AionError, ErrorCodes, EXTENSION_STATE_EVENT, isAionError, type ExtensionStateChange } from '@aion/extension-api';
import { LifecycleProtocol, type ExtensionDescription } from '@aion/extension-api/protocol';
import type { AionConfig } from '../config/configuration.js';
import { EventBus } from '../events/eventBus.js';
import { ContributionRegistry } from '../contributions/contributionRegistry.js';
import { CommandRegistry } from '../commands/commandRegistry.js';
import { ExtensionRegistry } from '../registry/extensionRegistry.js';
import type { ExtensionRecord, ExtensionState } from '../registry/extensionRecord.js';
import { HookRegistry } from '../hooks/hookRegistry.js';
import { HostManager, type HostConnection, type HostCrash } from '../hosts/hostManager.js';
import type { Logger } from '../logging.js';
import { TYPES } from '../tokens.js';

/** Activates extensions lazily, exactly once, dependencies first; restores them after a host restart. */
@injectable()
export class ActivationService {
  private readonly inFlight = new Map<string, Promise<ExtensionRecord>>();
  private eventIndex?: Map<string, string[]>;

  constructor(
    @inject(TYPES.KernelOptions) private readonly config: AionConfig,
    @inject(TYPES.Logger) private readonly logger: Logger,
    @inject(ExtensionRegistry) private readonly registry: ExtensionRegistry,
    @inject(ContributionRegistry) private readonly contributions: ContributionRegistry,
    @inject(CommandRegistry) private readonly commands: CommandRegistry,
    @inject(HookRegistry) private readonly hooks: HookRegistry,
    @inject(HostManager) private readonly hosts: HostManager,
    @inject(EventBus) private readonly events: EventBus,
  ) {
    hosts.onDidCrash((crash) => this.handleCrash(crash));
  }

  /** Extension ids that `event` activates. `*` counts as `onStartup`. */
  extensionsFor(event: string): string[] {
    if (!this.eventIndex) {
      this.eventIndex = new Map();
      for (const record of this.registry.all()) {
        for (const e of record.activationEvents) {
          const key = e === '*' ? 'onStartup' : e;
          this.eventIndex.set(key, [...(this.eventIndex.get(key) ?? []), record.id]);
        }
      }
    }
    return this.eventIndex.get(event) ?? [];
  }

  /** Activates everything `event` names; failures are recorded on the extensions, not thrown. */
  async activateByEvent(event: string): Promise<void> {
    await Promise.all(this.extensionsFor(event).map((id) => this.activate(id, event).catch(() => undefined)));
  }

  /** The running host of an extension, activating the extension first. */
  /** The running host of an extension already active, without waiting: the hot path's way; undefined otherwise (use `hostOf`). */
  activeHostOf(extensionId: string): HostConnection | undefined {
    const record = this.registry.get(extensionId);
    return record?.state === 'active' && this.inFlight.has(extensionId) ? this.hosts.runningHostFor(record) : undefined;
  }

  async hostOf(extensionId: string, reason: string): Promise<HostConnection> {
    return this.hosts.hostFor(await this.activate(extensionId, reason));
  }

  /** Concurrent callers share one activation; a failed activation stays failed with its error. */
  activate(id: string, reason = 'api'): Promise<ExtensionRecord> {
    const existing = this.inFlight.get(id);
    if (existing) return existing;
    const record = this.registry.get(id);
    if (!record) return Promise.reject(new AionError(ErrorCodes.EXTENSION_NOT_FOUND, `no extension ${id} is installed`));
    if (record.state === 'skipped' || record.state === 'invalid' || record.state === 'disabled') {
      const why = record.errors[record.errors.length - 1]?.message ?? `${id} is ${record.state}`;
      return Promise.reject(new AionError(record.state === 'disabled' ? ErrorCodes.EXTENSION_DISABLED : ErrorCodes.ACTIVATION_FAILED, why));
    }
    const promise = this.doActivate(record, reason);
    this.inFlight.set(id, promise);
    return promise;
  }

  private async doActivate(record: ExtensionRecord, reason: string): Promise<ExtensionRecord> {
    this.transition(record, 'activating');
    let host: HostConnection | undefined;
    try {
      for (const dep of record.manifest.extensionDependencies ?? []) {
        try {
          await this.activate(dep, `dependency of ${record.id}`);
        } catch (err) {
          throw new AionError(ErrorCodes.DEPENDENCY_FAILED, `${record.id} was not activated because its dependency ${dep} failed: ${(err as Error).message}`);
        }
      }
      host = await this.hosts.hostFor(record);
      const timeoutMs = record.manifest.aion?.resources?.activationTimeoutMs ?? this.config.hosts.activationTimeoutMs;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new AionError(ErrorCodes.TIMEOUT, `${record.id} did not finish activating within ${timeoutMs} ms`)), timeoutMs);
      });
      host.extensions.add(record.id);
      const result = await Promise.race([
        host.request(LifecycleProtocol.host.activate, { extension: this.describe(record), hostKind: record.hostKind }),
        timeout,
      ]).finally(() => clearTimeout(timer));
      record.activationMs = Math.round(result.activationMs * 100) / 100;
      record.activatedBy = reason;
      record.apiMethods = result.apiMethods;
      this.transition(record, 'active');
      this.logger.info({ extension: record.id, activationMs: record.activationMs, reason }, `activated ${record.id}`);
      void this.hooks.call('extension.activated', { id: record.id, activationMs: record.activationMs }).catch(() => undefined);
      return record;
    } catch (err) {
      // A host only speaks for extensions that are active in it.
      host?.extensions.delete(record.id);
      const error = isAionError(err) ? err : new AionError(ErrorCodes.ACTIVATION_FAILED, String(err));
      if (error.code === ErrorCodes.EXTENSION_HOST_CRASHED && this.inFlight.get(record.id) === undefined) throw error;
      record.errors.push(error.toJSON());
      this.transition(record, error.code === ErrorCodes.EXTENSION_DISABLED ? 'disabled' : 'failed');
      this.logger.error({ extension: record.id, code: error.code }, `activation of ${record.id} failed: ${error.message}`);
      throw error;
    }
  }

  /**
   * The operator turns an extension off at runtime: it is deactivated in its host and refused until
   * enabled again (`disabledExtensions` in the configuration does the same from start-up).
   */
  async disable(id: string, reason: string): Promise<ExtensionRecord> {
    const record = this.registry.require(id);
    if (record.state === 'skipped' || record.state === 'invalid')
      throw new AionError(ErrorCodes.CONFLICT, `${id} is ${record.state}: ${record.errors.at(-1)?.message ?? 'it cannot run'}`);
    await this.inFlight.get(id)?.catch(() => undefined);
    const host = this.hosts.find(this.hosts.keyFor(record));
    if (record.state === 'active' && host) {
      await host
        .request(LifecycleProtocol.host.deactivate, { extensionId: id })
        .catch((err) => this.logger.warn({ extension: id, err: String(err) }, 'deactivate failed'));
      host.extensions.delete(id);
    }
    this.inFlight.delete(id);
    this.contributions.forgetExtension(id);
    this.commands.forgetExtension(id);
    this.hooks.forgetExtension(id);
    record.errors.push({ code: ErrorCodes.EXTENSION_DISABLED, message: reason });
    this.transition(record, 'disabled');
    this.logger.warn({ extension: id }, reason);
    return record;
  }

  /**
   * Brings back an extension that is disabled (by the operator or by the crash policy, which disables
   * its whole host) or whose activation failed; `onStartup` extensions are activated again at once.
   */
  async enable(id: string): Promise<ExtensionRecord[]> {
    const record = this.registry.require(id);
    if (record.state !== 'disabled' && record.state !== 'failed')
      throw new AionError(ErrorCodes.CONFLICT, `${id} is ${record.state}; only a disabled or failed extension can be enabled`);
    const key = this.hosts.keyFor(record);
    const hostWasDisabled = this.hosts.enableHost(key);
    // A host the crash policy disabled took all its extensions with it: they come back together.
    const affected = hostWasDisabled ? this.registry.all().filter((r) => this.hosts.keyFor(r) === key && r.state === 'disabled') : [record];
    for (const r of affected) {
      r.errors = r.errors.filter((e) => e.code !== ErrorCodes.EXTENSION_DISABLED);
      this.transition(r, 'inactive');
      this.inFlight.delete(r.id);
    }
    this.logger.info({ extensions: affected.map((r) => r.id) }, `enabled ${affected.map((r) => r.id).join(', ')}`);
    const startup = new Set(this.extensionsFor('onStartup'));
    await Promise.all(affected.filter((r) => startup.has(r.id)).map((r) => this.activate(r.id, 'enabled by the operator').catch(() => undefined)));
    return affected;
  }

  /**
   * For development: deactivates every active extension in `id`'s host, restarts that host so changed
   * code is imported afresh, and activates them again (and `id`, even if it was not active yet).
   */
  async reload(id: string): Promise<{ host: string; extensions: string[]; ms: number }> {
    const started = performance.now();
    const record = this.registry.require(id);
    if (record.state === 'skipped' || record.state === 'invalid' || record.state === 'disabled')
      throw new AionError(ErrorCodes.CONFLICT, `${id} is ${record.state}: ${record.errors.at(-1)?.message ?? 'it cannot run'}`);
    // Modules imported into the kernel's own process stay cached: only a host process can load new code.
    if (record.hostKind === 'kernel')
      throw new AionError(
        ErrorCodes.CONFLICT,
        `${id} runs in the kernel host, whose modules cannot be reloaded: restart the server, or give it "aion.host": "shared" while developing`,
      );
    const key = this.hosts.keyFor(record);
    const members = this.registry.all().filter((r) => this.hosts.keyFor(r) === key);
    await Promise.all(members.map((r) => this.inFlight.get(r.id)?.catch(() => undefined)));
    const wasActive = new Set(members.filter((r) => r.state === 'active').map((r) => r.id));
    const host = this.hosts.find(key);
    for (const activeId of this.registry.topologicalOrder().reverse()) {
      if (!wasActive.has(activeId) || !host) continue;
      await host
        .request(LifecycleProtocol.host.deactivate, { extensionId: activeId })
        .catch((err) => this.logger.warn({ extension: activeId, err: String(err) }, 'deactivate failed'));
    }
    for (const r of members) {
      if (r.state !== 'active' && r.state !== 'failed' && r.state !== 'activating') continue;
      this.inFlight.delete(r.id);
      this.contributions.forgetExtension(r.id);
      this.commands.forgetExtension(r.id);
      this.hooks.forgetExtension(r.id);
      if (r.state === 'failed') r.errors = [];
      r.state = 'inactive';
    }
    await this.hosts.stopHost(key);
    const again = [...new Set([...wasActive, id])];
    const results = await Promise.allSettled(again.map((x) => this.activate(x, 'reload')));
    const mine = results[again.indexOf(id)];
    if (mine?.status === 'rejected') throw mine.reason;
    const ms = Math.round(performance.now() - started);
    this.logger.info({ host: key, extensions: again, ms }, `reloaded ${again.join(', ')} in ${ms} ms`);
    return { host: key, extensions: again, ms };
  }

  describe(record: ExtensionRecord): ExtensionDescription {
    mkdirSync(record.storagePath, { recursive: true });
    return {
      id: record.id,
      manifest: record.manifest,
      extensionPath: record.extensionPath,
      mainPath: record.manifest.main ? resolve(record.extensionPath, record.manifest.main) : undefined,
      storagePath: record.storagePath,
      configuration: record.configuration,
    };
  }

  /** Sets an extension's state and tells listeners of `kernel.extensionState` (the admin console) when it changed. */
  private transition(record: ExtensionRecord, state: ExtensionState): void {
    const previous = record.state;
    record.state = state;
    if (previous === state || !this.events.hasListeners(EXTENSION_STATE_EVENT)) return;
    const last = state === 'disabled' || state === 'failed' ? record.errors.at(-1) : undefined;
    const change: ExtensionStateChange = {
      id: record.id,
      state,
      previous,
      hostKey: record.hostKey,
      activationMs: record.activationMs ?? null,
      error: last ? { code: last.code, message: last.message } : null,
    };
    this.events.emit(EXTENSION_STATE_EVENT, change);
  }

  private handleCrash(crash: HostCrash): void {
    const previouslyActive: string[] = [];
    for (const record of this.registry.all()) {
      if (this.hosts.keyFor(record) !== crash.host.key) continue;
      if (record.state === 'active') previouslyActive.push(record.id);
      if (record.state === 'active' || record.state === 'activating') {
        this.inFlight.delete(record.id);
        if (crash.disabledReason) record.errors.push({ code: ErrorCodes.EXTENSION_DISABLED, message: crash.disabledReason });
        this.transition(record, crash.disabledReason ? 'disabled' : 'inactive');
      }
      this.contributions.forgetExtension(record.id);
      this.commands.forgetExtension(record.id);
      this.hooks.forgetExtension(record.id);
    }
    if (crash.disabledReason) {
      for (const record of this.registry.all()) if (this.hosts.keyFor(record) === crash.host.key) this.transition(record, 'disabled');
      return;
    }
    // Bring back what was running, after the backoff, so hooks and startup work resume by themselves.
    if (previouslyActive.length > 0) {
      setTimeout(() => {
        for (const id of previouslyActive) this.activate(id, 'restart after host crash').catch(() => undefined);
      }, crash.restartInMs).unref();
    }
  }
}
