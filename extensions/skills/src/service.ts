import { readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { AionError, Emitter, isAionError, type Disposable, type Event, type Logger, type Memento, type Principal } from '@aion/extension-api';
import { validateModule } from '@aion/sandbox';
import type { PackListing, SkillDescription, SkillSummary, ToolCallOptions, ToolCallResult, ToolDefinition, ToolFilter } from './api.js';
import { schemaProblems, SkillCatalog } from './catalog.js';
import { effectiveLimits, type SkillsConfig } from './config.js';
import { skillError } from './errors.js';
import { Gatekeeper, READ_SCOPE, hasScope, type FindAccelerator } from './gatekeeper.js';
import { McpClients } from './mcp/client.js';
import { PackStore, type LoadedPack } from './packs/packStore.js';
import { SkillQuarantine } from './quarantine.js';
import { resolveInPack, trustedKeysFrom, type TrustedKey } from './packs/signing.js';
import { watchPacks } from './packWatcher.js';
import { RateLimiter, RedisRateLimiter, type CallLimiter } from './rateLimiter.js';
import { JsRunner, ProcessRunner, WasmRunner, type JsSkillImplementation, type Runners } from './runtimes.js';
import { searchSkills } from './search.js';
import { SkillSwitches } from './switches.js';
import { SkillTools } from './tools.js';
import { HUB_DEVICE, type CallContext, type ExecuteResult, type JsonSchema, type Skill, type SkillEntry } from './types.js';
import { UsageRecorder } from './usage.js';

/** What the service needs from its surroundings: `ctx` and the `aion` namespaces, or stand-ins in a benchmark. */
export interface ServiceHost {
  logger: Logger;
  config: SkillsConfig;
  /** The JSON schema of a `skills` entry (from this extension's manifest). */
  pointSchema: JsonSchema;
  version: string;
  /** A secret of this extension (`SKILL_*` for skills, `MCP_*` for MCP servers). */
  secret(name: string): Promise<string | undefined>;
  /** The implementation an extension registered for its `js` skill. */
  resolveJsSkill?(id: string): Promise<JsSkillImplementation>;
  /** Entries other extensions contribute to the `skills` point. */
  listContributed?(): Promise<Array<{ extensionId: string; entry: Record<string, unknown>; expose?: { skills?: boolean | string[] } }>>;
  state?: Memento;
  /** Where run-time switches (skills enabled or disabled) are kept. */
  storagePath?: string;
  /** A GPU that meets a skill's `resources.gpu`, from aion.accelerators; throws NO_ACCELERATOR when none does. */
  findAccelerator?: FindAccelerator;
}

interface PackStatus {
  name: string;
  state: 'loaded' | 'invalid';
  stamp?: string;
  pack?: LoadedPack;
  hashes: string[];
  skills: string[];
  error?: string;
}

const SECRET_TTL_MS = 30_000;

/**
 * The skills hub in one object: the catalog, the gatekeeper, the runtimes, the pack store with its
 * watcher, the MCP client connections, search and the tools API. The extension wires it to routes,
 * commands and MCP; a benchmark can run it without a kernel.
 */
export class SkillsService {
  readonly catalog: SkillCatalog;
  readonly gatekeeper: Gatekeeper;
  readonly packs: PackStore;
  readonly wasm: WasmRunner;
  readonly processes: ProcessRunner;
  readonly mcpClients: McpClients;
  readonly usage: UsageRecorder;
  readonly quarantine: SkillQuarantine;
  readonly tools: SkillTools;
  private readonly limiter: CallLimiter;
  private readonly switches: SkillSwitches;
  private readonly trusted: TrustedKey[];
  private readonly validateEntry: ValidateFunction;
  private readonly packStatus = new Map<string, PackStatus>();
  private readonly secretCache = new Map<string, { value: string | undefined; at: number }>();
  private readonly changed = new Emitter<void>();
  private packWatcher?: Disposable;
  private reloading?: Promise<void>;
  private reloadAgain = false;
  private changeTimer?: NodeJS.Timeout;
  private disposed = false;
  /** Fires (debounced) when the set of skills, or whether one is enabled, changes. */
  readonly onDidChange: Event<void> = this.changed.event;

  private constructor(private readonly host: ServiceHost) {
    const { config, logger } = host;
    this.trusted = trustedKeysFrom(config.trustedKeys);
    this.validateEntry = new Ajv2020({ allErrors: true, strict: false }).compile(host.pointSchema);
    this.catalog = new SkillCatalog(config.disabled);
    this.catalog.onDidChange(() => this.scheduleChange());
    this.quarantine = new SkillQuarantine(config.quarantine);
    this.switches = new SkillSwitches(host.storagePath, this.catalog, this.quarantine, logger);
    this.quarantine.onDidChange(() => {
      this.scheduleChange();
      this.switches.saveQuarantine();
    });
    this.usage = new UsageRecorder((err) => logger.warn('usage could not be saved', { error: String(err) }));
    this.wasm = new WasmRunner(config.wasm);
    // Inside the extension's storage: its host may be allowed to write nowhere else.
    this.processes = new ProcessRunner({ onNotice: (m) => logger.warn(m), workDir: host.storagePath ? join(host.storagePath, 'tmp') : undefined });
    this.mcpClients = new McpClients(config.mcpServers, {
      catalog: this.catalog,
      secret: (n) => this.secret(n),
      limits: config.limits.defaults,
      version: host.version,
      log: logger,
    });
    const runners: Runners = {
      wasm: this.wasm,
      process: this.processes,
      js: new JsRunner((id) => {
        if (!host.resolveJsSkill) throw skillError('SKILL_UNAVAILABLE', `js skills need a kernel; ${id} cannot run here.`);
        return host.resolveJsSkill(id);
      }),
      mcp: this.mcpClients,
    };
    const { redisUrl } = config.rateLimit;
    this.limiter = redisUrl ? new RedisRateLimiter({ ...config.rateLimit, redisUrl }, (m) => logger.warn(m)) : new RateLimiter(config.rateLimit);
    this.gatekeeper = new Gatekeeper({
      catalog: this.catalog,
      runners,
      limiter: this.limiter,
      usage: this.usage,
      secrets: (name) => this.secret(`SKILL_${name}`),
      quarantine: this.quarantine,
      log: logger,
      maxInputBytes: config.maxInputBytes,
      findAccelerator: host.findAccelerator,
    });
    this.tools = new SkillTools(this.catalog, this.gatekeeper, this.quarantine);
    this.packs = new PackStore({
      packsDir: config.packsDir,
      quarantineDir: config.quarantineDir,
      trustedKeys: () => this.trusted,
      validateEntry: (entry) => (this.validateEntry(entry) ? [] : schemaProblems(this.validateEntry.errors).map((p) => `${p.path} ${p.message}`)),
      checkModule: (bytes, entry) => void validateModule(bytes, { memoryPages: effectiveLimits(entry.limits, config.limits).memory_pages }),
      warn: (m, d) => logger.warn(m, d),
    });
  }

  static async start(host: ServiceHost): Promise<SkillsService> {
    const service = new SkillsService(host);
    await service.packs.init();
    await service.switches.restore();
    void service.wasm.wasm.ready().catch((err) => host.logger.warn('the WASM engine did not start', { error: String(err) }));
    await service.reloadPacks();
    await service.loadContributed();
    service.mcpClients.start();
    if (host.state) void service.usage.persistTo(host.state);
    if (host.config.watch) service.packWatcher = watchPacks(host.config.packsDir, () => service.reloadPacks(), host.logger);
    return service;
  }

  get version(): string {
    return this.host.version;
  }

  // ---- packs ----

  /** Loads packs that appeared or changed, unloads packs that left; one pass at a time. */
  reloadPacks(): Promise<void> {
    if (this.reloading) {
      this.reloadAgain = true;
      return this.reloading;
    }
    this.reloading = (async () => {
      try {
        do {
          this.reloadAgain = false;
          await this.reloadOnce();
        } while (this.reloadAgain && !this.disposed);
      } finally {
        this.reloading = undefined;
      }
    })();
    return this.reloading;
  }

  private async reloadOnce(): Promise<void> {
    const names = new Set(await this.packs.installedNames());
    for (const name of [...this.packStatus.keys()]) if (!names.has(name)) this.unloadPack(name);
    for (const name of names) {
      const stamp = await this.packs.stampOf(name);
      if (stamp !== undefined && this.packStatus.get(name)?.stamp === stamp) continue;
      await this.loadPack(name, stamp);
    }
  }

  private async loadPack(name: string, stamp: string | undefined): Promise<void> {
    const before = this.packStatus.get(name);
    try {
      const pack = await this.packs.load(name);
      const skills: Skill[] = [];
      const hashes: string[] = [];
      for (const entry of pack.entries) skills.push(await this.skillFromPack(pack, entry, hashes));
      const { added, refused } = this.catalog.replaceSource(`pack:${name}`, skills);
      for (const r of refused) this.host.logger.warn(`skill pack ${name}: ${r.id} left out: ${r.reason}`, { pack: name });
      this.forgetModules(before?.hashes ?? [], hashes);
      this.packStatus.set(name, { name, state: 'loaded', stamp, pack, hashes, skills: added });
      if (!pack.signed) this.host.logger.warn(`skill pack ${name} ${pack.version} is loaded UNSIGNED`, { pack: name });
      else this.host.logger.info(`skill pack ${name} ${pack.version} loaded (${added.length} skills, signed by ${pack.signer})`, { pack: name });
    } catch (err) {
      this.catalog.removeSource(`pack:${name}`);
      this.forgetModules(before?.hashes ?? [], []);
      const message = err instanceof Error ? err.message : String(err);
      if (isAionError(err) && err.code === 'PACK_QUARANTINED') this.packStatus.delete(name);
      else this.packStatus.set(name, { name, state: 'invalid', stamp, hashes: [], skills: [], error: message });
      this.host.logger.warn(`skill pack ${name} not loaded: ${message}`, { pack: name, code: isAionError(err) ? err.code : undefined });
    }
  }

  private unloadPack(name: string): void {
    const status = this.packStatus.get(name);
    this.packStatus.delete(name);
    this.catalog.removeSource(`pack:${name}`);
    this.forgetModules(status?.hashes ?? [], []);
    this.host.logger.info(`skill pack ${name} unloaded`, { pack: name });
  }

  private forgetModules(before: readonly string[], after: readonly string[]): void {
    const inUse = new Set([...after, ...[...this.packStatus.values()].flatMap((s) => s.hashes)]);
    for (const hash of before) if (!inUse.has(hash)) this.wasm.wasm.forget(hash);
  }

  private async skillFromPack(pack: LoadedPack, entry: SkillEntry, hashes: string[]): Promise<Skill> {
    const limits = effectiveLimits(entry.limits, this.host.config.limits);
    const skill: Skill = {
      id: entry.id,
      title: entry.title,
      description: entry.description,
      inputSchema: entry.inputSchema,
      ...(entry.outputSchema ? { outputSchema: entry.outputSchema } : {}),
      runtime: entry.runtime,
      ...(entry.scope ? { scope: entry.scope } : {}),
      permissions: { network: entry.permissions?.network ?? [], secrets: entry.permissions?.secrets ?? [] },
      limits,
      tags: entry.tags ?? [],
      source: { kind: 'pack', pack: pack.name, version: pack.version, signed: pack.signed, ...(pack.keyId ? { keyId: pack.keyId, signer: pack.signer } : {}) },
      ...(entry.resources ? { resources: entry.resources } : {}),
    };
    const file = resolveInPack(pack.dir, entry.entry!);
    if (entry.runtime === 'wasm') {
      const { hash } = await this.wasm.wasm.compile(new Uint8Array(await readFile(file)));
      hashes.push(hash);
      skill.wasm = { hash, args: entry.args ?? [] };
    } else if (entry.runtime === 'process') {
      const script = ['.js', '.mjs', '.cjs'].includes(extname(file));
      skill.process = {
        command: script ? process.execPath : file,
        args: script ? [file, ...(entry.args ?? [])] : (entry.args ?? []),
        keepAlive: entry.keepAlive ?? false,
      };
    }
    return skill;
  }

  async installPack(path: string, options: { allowUnsigned?: boolean } = {}) {
    const { pack, replaced, warnings } = await this.packs.install(path, options);
    await this.reloadPacks();
    const status = this.packStatus.get(pack.name);
    if (status?.state !== 'loaded')
      throw new AionError('PACK_INVALID', `The pack ${pack.name} was installed but could not be loaded: ${status?.error ?? 'unknown reason'}`);
    return {
      name: pack.name,
      version: pack.version,
      skills: status.skills,
      signed: pack.signed,
      ...(pack.signer ? { signer: pack.signer, keyId: pack.keyId } : {}),
      replaced,
      warnings,
    };
  }

  async removePack(name: string, options: { quarantined?: boolean } = {}): Promise<{ removed: boolean }> {
    const removed = options.quarantined ? await this.packs.removeQuarantined(name) : await this.packs.remove(name);
    if (!options.quarantined) await this.reloadPacks();
    return { removed };
  }

  async listPacks(): Promise<PackListing> {
    await this.reloadPacks();
    return {
      installed: [...this.packStatus.values()]
        .sort((a, b) => a.name.localeCompare(b.name))
        .map((s) => ({
          name: s.name,
          ...(s.pack ? { version: s.pack.version, signed: s.pack.signed, ...(s.pack.signer ? { signer: s.pack.signer, keyId: s.pack.keyId } : {}) } : {}),
          state: s.state,
          skills: s.skills,
          ...(s.error ? { error: s.error } : {}),
        })),
      quarantined: await this.packs.quarantined(),
    };
  }

  // ---- extension-contributed skills ----

  async loadContributed(): Promise<void> {
    if (!this.host.listContributed) return;
    const entries = await this.host.listContributed().catch((err) => {
      this.host.logger.warn('could not list contributed skills', { error: String(err) });
      return [];
    });
    const skills: Skill[] = [];
    for (const { extensionId, entry, expose } of entries) {
      if (!this.validateEntry(entry)) continue; // registered at run time without a manifest entry: nothing to describe it
      const e = entry as unknown as SkillEntry;
      if (e.runtime !== 'js') {
        this.host.logger.warn(
          `${extensionId} contributes ${e.id} as a ${e.runtime} skill; extensions contribute js skills, wasm and process skills come in packs`,
          { skill: e.id },
        );
        continue;
      }
      skills.push({
        id: e.id,
        title: e.title,
        description: e.description,
        inputSchema: e.inputSchema,
        ...(e.outputSchema ? { outputSchema: e.outputSchema } : {}),
        runtime: 'js',
        ...(e.scope ? { scope: e.scope } : {}),
        permissions: { network: e.permissions?.network ?? [], secrets: e.permissions?.secrets ?? [] },
        limits: effectiveLimits(e.limits, this.host.config.limits),
        tags: e.tags ?? [],
        source: {
          kind: 'extension',
          extensionId,
          ...(expose?.skills === true || (Array.isArray(expose?.skills) && expose.skills.includes(e.id)) ? { exposed: true } : {}),
        },
        ...(e.resources ? { resources: e.resources } : {}),
      });
    }
    const { refused } = this.catalog.replaceSource('extensions', skills);
    for (const r of refused) this.host.logger.warn(`contributed skill ${r.id} left out: ${r.reason}`);
  }

  // ---- calling ----

  execute(id: string, args: unknown, call: CallContext): Promise<ExecuteResult> {
    return this.gatekeeper.execute(id, args, call);
  }

  private async secret(name: string): Promise<string | undefined> {
    const cached = this.secretCache.get(name);
    if (cached && performance.now() - cached.at < SECRET_TTL_MS) return cached.value;
    const value = await this.host.secret(name);
    this.secretCache.set(name, { value, at: performance.now() });
    return value;
  }

  // ---- listing and search ----

  visibleSkills(principal: Principal): Skill[] {
    return this.catalog
      .all()
      .filter((s) => this.gatekeeper.mayCall(s, principal))
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  summary(skill: Skill, score?: number): SkillSummary {
    const quarantine = this.quarantine.get(skill.id);
    const enabled = this.catalog.isEnabled(skill.id);
    return {
      id: skill.id,
      title: skill.title,
      description: skill.description,
      tags: skill.tags,
      runtime: skill.runtime,
      enabled: enabled && !quarantine,
      state: quarantine ? 'quarantined' : enabled ? 'enabled' : 'disabled',
      ...(quarantine ? { quarantine } : {}),
      source: skill.source as unknown as Record<string, unknown>,
      ...(score !== undefined ? { score } : {}),
      devices: [{ ...HUB_DEVICE }],
      device_count: 1,
    };
  }

  search(query: { q?: string; tags?: string[]; principal?: Principal } = {}): SkillSummary[] {
    const principal = query.principal;
    const pool = this.catalog.all().filter((s) => !principal || !s.scope || hasScope(principal, s.scope) || hasScope(principal, 'skills:admin'));
    return searchSkills(pool, query.q, query.tags ?? []).map((h) => this.summary(h.skill, query.q ? h.score : undefined));
  }

  describe(id: string, principal?: Principal): SkillDescription {
    const skill = this.catalog.get(id)?.skill;
    if (!skill || (principal && skill.scope && !hasScope(principal, skill.scope) && !hasScope(principal, 'skills:admin')))
      throw skillError('SKILL_NOT_FOUND', `No skill ${id} is installed.`);
    return {
      ...this.summary(skill),
      inputSchema: skill.inputSchema,
      ...(skill.outputSchema ? { outputSchema: skill.outputSchema } : {}),
      ...(skill.scope ? { scope: skill.scope } : {}),
      permissions: skill.permissions,
      limits: skill.limits,
    };
  }

  /** Enabling also lifts a quarantine and forgets the skill's recent failures. */
  async setEnabled(id: string, enabled: boolean): Promise<{ id: string; enabled: boolean }> {
    if (!this.catalog.get(id)) throw skillError('SKILL_NOT_FOUND', `No skill ${id} is installed.`);
    if (enabled && this.quarantine.release(id)) {
      this.host.logger.info(`skill ${id} released from quarantine`, { skill: id });
      await this.switches.settled();
    }
    if (this.catalog.setEnabled(id, enabled)) await this.switches.saveSwitches();
    return { id, enabled: this.catalog.isEnabled(id) && !this.quarantine.get(id) };
  }

  // ---- tools for models (src/tools.ts) ----

  toolName(id: string): string {
    return this.tools.toolName(id);
  }

  listTools(filter: ToolFilter = {}): ToolDefinition[] {
    return this.tools.list(filter);
  }

  executeTool(
    name: string,
    args: unknown,
    principal: Principal,
    options: ToolCallOptions & { extension?: string; signal?: AbortSignal } = {},
  ): Promise<ToolCallResult> {
    return this.tools.execute(name, args, principal, options);
  }

  /** Whether `principal` may read the catalog (the routes check this too). */
  mayRead(principal: Principal | undefined): boolean {
    return !principal || hasScope(principal, READ_SCOPE);
  }

  private scheduleChange(): void {
    if (this.changeTimer) return;
    this.changeTimer = setTimeout(() => {
      this.changeTimer = undefined;
      this.changed.fire();
    }, 20);
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    clearTimeout(this.changeTimer);
    this.packWatcher?.dispose();
    await this.reloading?.catch(() => undefined);
    await this.switches.settled();
    await this.limiter.close?.();
    await this.usage.dispose();
    await this.mcpClients.close();
    await this.processes.close();
    await this.wasm.close();
    this.catalog.dispose();
    this.quarantine.dispose();
    this.changed.dispose();
  }
}
