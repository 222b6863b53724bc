import * as aion from '@aion/extension-api';
import { CancellationTokenSource, type Disposable, type Remote } from '@aion/extension-api';
import type { ModelInfo, ProviderContribution, ProviderImplementation, ProviderModel } from './providerTypes.js';
import type { CatalogProvider } from '../types.js';

export interface ProviderSettings {
  enabled?: boolean;
  maxConcurrency?: number;
  models?: Array<Partial<ProviderModel> & { id: string }>;
}

export interface CatalogOptions {
  providers: Record<string, ProviderSettings>;
  autoDetect: { enabled: boolean; probeTimeoutMs: number; reprobeMs: number };
  providerConcurrency: number;
  log: (level: 'info' | 'warn', message: string) => void;
}

const DEFAULT_CONTEXT = 8_192;

function completeModel(partial: Partial<ProviderModel> & { id: string }, template: ProviderModel | undefined): ProviderModel {
  return {
    id: partial.id,
    contextWindow: partial.contextWindow ?? template?.contextWindow ?? DEFAULT_CONTEXT,
    costPer1kInput: partial.costPer1kInput ?? template?.costPer1kInput ?? 0,
    costPer1kOutput: partial.costPer1kOutput ?? template?.costPer1kOutput ?? 0,
    capabilities: partial.capabilities ?? template?.capabilities ?? { chat: 0.5 },
    tools: partial.tools ?? template?.tools ?? false,
    streaming: partial.streaming ?? template?.streaming ?? true,
    embed: partial.embed ?? template?.embed ?? false,
    // A provider answers for its own models' owner and residency, never the template's.
    ...(partial.owner ? { owner: partial.owner } : {}),
    ...(partial.residency ? { residency: partial.residency } : {}),
  };
}

function isProviderEntry(entry: Record<string, unknown>): entry is ProviderContribution & Record<string, unknown> {
  return (
    typeof entry.id === 'string' &&
    typeof entry.route === 'string' &&
    typeof entry.tier === 'string' &&
    Array.isArray(entry.models) &&
    typeof entry.residency === 'object'
  );
}

/**
 * The providers the router can use: contributed entries (listed without activating anything), the
 * operator's settings, and, for providers the configuration does not mention, whether they answer a
 * `listModels` probe. Local providers' model lists come from what the server reports it has.
 */
export class ProviderCatalog implements Disposable {
  private list: CatalogProvider[] = [];
  private readonly refreshing = new Set<string>();
  private readonly refreshAgain = new Set<string>();
  private readonly implementations = new Map<string, Promise<Remote<ProviderImplementation>>>();
  private intents = new Set<string>(['chat']);
  private reprobeTimer?: NodeJS.Timeout;
  private initial?: Promise<void>;
  private disposed = false;

  constructor(private readonly options: CatalogOptions) {}

  get providers(): readonly CatalogProvider[] {
    return this.list;
  }

  get knownIntents(): ReadonlySet<string> {
    return this.intents;
  }

  get(id: string): CatalogProvider | undefined {
    return this.list.find((p) => p.id === id);
  }

  /** Reads the contributed entries and starts the probes; resolves when every first probe has answered or timed out. */
  load(): Promise<void> {
    this.initial ??= this.doLoad();
    return this.initial;
  }

  private async doLoad(): Promise<void> {
    const contributed = await aion.contributions.list('providers');
    const next: CatalogProvider[] = [];
    for (const { extensionId, entry } of contributed) {
      if (!isProviderEntry(entry)) continue;
      const settings = this.options.providers[entry.id] ?? {};
      const models = settings.models ? settings.models.map((m) => completeModel(m, entry.models.find((c) => c.id === m.id) ?? entry.models[0])) : entry.models;
      next.push({
        id: entry.id,
        extensionId,
        displayName: entry.displayName,
        route: entry.route,
        tier: entry.tier,
        residency: entry.residency,
        models,
        ...(entry.models.length === 0 ? { listsModels: true } : {}),
        availability:
          settings.enabled === true ? 'configured' : settings.enabled === false ? 'disabled' : this.options.autoDetect.enabled ? 'probing' : 'unavailable',
        detail:
          settings.enabled === false
            ? 'disabled in extensions["aion.router"].providers'
            : settings.enabled === undefined && !this.options.autoDetect.enabled
              ? 'auto-detection is off and the configuration does not enable it'
              : undefined,
        maxConcurrency: settings.maxConcurrency ?? this.options.providerConcurrency,
      });
    }
    await Promise.all(
      contributed
        .filter(({ entry }) => isProviderEntry(entry))
        .map(({ entry }) =>
          this.placeOnGpu(
            entry as unknown as ProviderContribution,
            next.find((p) => p.id === entry.id),
          ),
        ),
    );
    this.list = next;
    this.refreshIntents();
    // A configured api provider is not probed, but its own `models` setting still replaces the defaults.
    await Promise.all(next.filter((p) => p.availability === 'configured' && p.route !== 'local').map((p) => this.adoptConfiguredModels(p)));
    await Promise.all(next.filter((p) => p.availability === 'probing' || (p.availability === 'configured' && p.route === 'local')).map((p) => this.probe(p)));
    if (this.options.autoDetect.reprobeMs > 0 && !this.disposed) {
      this.reprobeTimer = setInterval(() => {
        for (const p of this.list)
          if (p.availability === 'unavailable' && this.options.providers[p.id]?.enabled === undefined && this.options.autoDetect.enabled) void this.probe(p);
      }, this.options.autoDetect.reprobeMs);
      this.reprobeTimer.unref();
    }
  }

  private refreshIntents(): void {
    const intents = new Set<string>(['chat']);
    for (const p of this.list) for (const m of p.models) for (const k of Object.keys(m.capabilities)) intents.add(k);
    this.intents = intents;
  }

  /** A provider that requires a GPU is unavailable with NO_ACCELERATOR where none fits, never run silently on the CPU. */
  private async placeOnGpu(entry: ProviderContribution, p: CatalogProvider | undefined): Promise<void> {
    const gpu = entry.resources?.gpu;
    if (!p || !gpu?.required || gpu.fallback === 'cpu') return;
    try {
      const accelerators = await aion.extensions.getApi<{ find(requirement: { vendor?: string; memoryMiB?: number }): Promise<unknown> }>('aion.accelerators');
      await accelerators.find({ vendor: gpu.vendor, memoryMiB: gpu.memoryMiB });
    } catch (err) {
      const code = (err as { code?: string }).code;
      const reason = code === 'NO_ACCELERATOR' ? (err as Error).message : `aion.accelerators, which finds GPUs, is not installed in this server`;
      p.noAccelerator = `NO_ACCELERATOR: ${p.id} needs a GPU${gpu.vendor ? ` (${gpu.vendor})` : ''}${gpu.memoryMiB ? ` with ${gpu.memoryMiB} MiB free` : ''}: ${reason}`;
      p.availability = 'unavailable';
      p.detail = p.noAccelerator;
    }
  }

  /**
   * The provider's own `models` setting (its `configuredModels`) replaces the contributed defaults,
   * unless the router's `providers.<id>.models` already did. A provider without the method keeps them.
   */
  private async adoptConfiguredModels(p: CatalogProvider, impl?: Remote<ProviderImplementation>): Promise<void> {
    if (this.options.providers[p.id]?.models || p.noAccelerator) return;
    try {
      impl ??= await this.implementation(p.id);
      const configured = (await impl.configuredModels?.()) as ModelInfo[] | undefined | null;
      if (!Array.isArray(configured) || configured.length === 0) return;
      const defaults = p.models;
      p.models = configured
        .filter((m) => typeof m?.id === 'string' && m.id !== '')
        .map((m) => completeModel(m, defaults.find((c) => c.id === m.id) ?? defaults.find((c) => !c.embed)));
      this.refreshIntents();
    } catch (err) {
      // Providers built before configuredModels existed answer that the method is unknown: their defaults stand.
      if ((err as { code?: unknown }).code !== 'CONTRIBUTION_NOT_FOUND')
        this.options.log('info', `provider ${p.id} did not report its configured models: ${(err as Error).message}`);
    }
  }

  /** Asks the provider for its models; answering makes an auto-detected provider available. */
  async probe(p: CatalogProvider): Promise<void> {
    if (p.noAccelerator) return;
    const source = new CancellationTokenSource();
    let timer: NodeJS.Timeout | undefined;
    try {
      // Starting the provider's host is bounded by the kernel's activation timeout; the probe times only the answer.
      const impl = await this.implementation(p.id);
      if (p.route !== 'local') await this.adoptConfiguredModels(p, impl);
      timer = setTimeout(() => source.cancel(), this.options.autoDetect.probeTimeoutMs);
      const found = (await Promise.race([
        impl.listModels(source.token),
        new Promise<never>((_, reject) =>
          source.token.onCancellationRequested(() => reject(new Error(`no answer within ${this.options.autoDetect.probeTimeoutMs} ms`))),
        ),
      ])) as ModelInfo[];
      // A provider that declares no models lists them at run time: an empty list then means none now.
      if (p.route === 'local' && Array.isArray(found) && (found.length > 0 || p.listsModels) && !this.options.providers[p.id]?.models) {
        const template = p.models[0];
        p.models = found.map((m) =>
          completeModel({ ...m, id: m.id }, p.models.find((c) => c.id === m.id || c.id === m.id.replace(/:latest$/, '')) ?? template),
        );
        this.refreshIntents();
      }
      if (p.availability !== 'configured') {
        if (p.availability !== 'detected')
          this.options.log('info', `provider ${p.id} answered: available with ${p.models.length} model${p.models.length === 1 ? '' : 's'}`);
        p.availability = 'detected';
        p.detail = undefined;
      }
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (p.availability !== 'configured') {
        if (p.availability !== 'unavailable') this.options.log('info', `provider ${p.id} is not available: ${message}`);
        p.availability = 'unavailable';
        p.detail = message;
      }
    } finally {
      clearTimeout(timer);
      source.dispose();
    }
  }

  /**
   * Asks a provider for its models again, because it said they changed (the devices provider, as
   * devices come and go). Several requests while one probe runs make one more probe, not one each.
   */
  refresh(id: string): void {
    const p = this.list.find((c) => c.id === id);
    if (!p || p.availability === 'disabled' || this.disposed) return;
    if (this.refreshing.has(id)) {
      this.refreshAgain.add(id);
      return;
    }
    this.refreshing.add(id);
    void this.probe(p).finally(() => {
      this.refreshing.delete(id);
      if (this.refreshAgain.delete(id)) this.refresh(id);
    });
  }

  /** The provider's runtime implementation (activating its extension on first use), cached. */
  implementation(id: string): Promise<Remote<ProviderImplementation>> {
    let impl = this.implementations.get(id);
    if (!impl) {
      impl = aion.contributions.get<ProviderImplementation>('providers', id);
      this.implementations.set(id, impl);
      impl.catch(() => this.implementations.delete(id));
    }
    return impl;
  }

  /** Forgets a cached implementation, e.g. after its host crashed. */
  forget(id: string): void {
    this.implementations.delete(id);
  }

  dispose(): void {
    this.disposed = true;
    clearInterval(this.reprobeTimer);
  }
}
