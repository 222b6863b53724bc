import { existsSync, realpathSync } from 'node:fs';
import { join, sep } from 'node:path';
import { injectable } from 'inversify';
import { AionError, ErrorCodes, type ErrorPayload, type HostKind } from '@aion/extension-api';
import type { ExtensionRecord, RejectedExtension } from './extensionRecord.js';
import type { ScannedManifest } from './manifestLoader.js';

/** The kernel's list of extensions: identity, state, errors, and the dependency order. */
@injectable()
export class ExtensionRegistry {
  private readonly records = new Map<string, ExtensionRecord>();
  readonly rejected: RejectedExtension[] = [];

  all(): ExtensionRecord[] {
    return [...this.records.values()];
  }

  get(id: string): ExtensionRecord | undefined {
    return this.records.get(id);
  }

  require(id: string): ExtensionRecord {
    const record = this.records.get(id);
    if (!record) throw new AionError(ErrorCodes.EXTENSION_NOT_FOUND, `no extension ${id} is installed`);
    return record;
  }

  /** Turns scanned manifests into records; duplicates, missing dependencies and cycles are reported here. */
  register(scanned: ScannedManifest[], options: { storageRoot: string; disabled: string[]; defaultHost?: HostKind; builtinDir?: string }): void {
    const builtinRoot = options.builtinDir && existsSync(options.builtinDir) ? realpathSync(options.builtinDir) + sep : undefined;
    const isBuiltin = (s: ScannedManifest) => s.source === 'builtin' || (builtinRoot !== undefined && realpathSync(s.extensionPath).startsWith(builtinRoot));
    for (const s of scanned) {
      if (!s.manifest || !s.id || s.errors.length > 0) {
        this.rejected.push({ manifestPath: s.manifestPath, id: s.id, errors: s.errors });
        continue;
      }
      const existing = this.records.get(s.id);
      if (existing) {
        this.rejected.push({
          manifestPath: s.manifestPath,
          id: s.id,
          errors: [
            {
              code: ErrorCodes.DUPLICATE_EXTENSION,
              message: `extension ${s.id} is defined twice: ${existing.manifestPath} (loaded) and ${s.manifestPath} (skipped)`,
              details: { paths: [existing.manifestPath, s.manifestPath] },
            },
          ],
        });
        existing.warnings.push({ code: ErrorCodes.DUPLICATE_EXTENSION, message: `another copy at ${s.manifestPath} was skipped` });
        continue;
      }
      const m = s.manifest;
      this.records.set(s.id, {
        id: s.id,
        manifest: m,
        manifestPath: s.manifestPath,
        extensionPath: s.extensionPath,
        source: s.source,
        builtin: isBuiltin(s),
        hostKind: m.aion?.host ?? options.defaultHost ?? 'shared',
        hostKey: m.aion?.host ?? options.defaultHost ?? 'shared',
        enforcement: 'os',
        state: options.disabled.includes(s.id) ? 'disabled' : 'inactive',
        errors: options.disabled.includes(s.id)
          ? [{ code: ErrorCodes.EXTENSION_DISABLED, message: `${s.id} is disabled by configuration (disabledExtensions)` }]
          : [],
        warnings: [],
        activationEvents: [],
        configuration: {},
        storagePath: join(options.storageRoot, s.id),
      });
    }
    this.resolveDependencies();
  }

  /** Marks an extension unusable with a reason; its dependents follow. */
  skip(id: string, error: ErrorPayload): void {
    const record = this.records.get(id);
    if (!record || record.state === 'skipped') return;
    record.state = 'skipped';
    record.errors.push(error);
    for (const dependent of this.dependentsOf(id)) {
      this.skip(dependent.id, { code: ErrorCodes.DEPENDENCY_FAILED, message: `${dependent.id} depends on ${id}, which was skipped: ${error.message}` });
    }
  }

  dependentsOf(id: string): ExtensionRecord[] {
    return this.all().filter((r) => r.manifest.extensionDependencies?.includes(id));
  }

  private resolveDependencies(): void {
    for (const record of this.all()) {
      for (const dep of record.manifest.extensionDependencies ?? []) {
        if (!this.records.has(dep)) {
          this.skip(record.id, {
            code: ErrorCodes.DEPENDENCY_MISSING,
            message: `${record.id} depends on ${dep}, which is not installed`,
            details: { dependency: dep },
          });
        }
      }
    }
    // Depth-first search with colours; every back edge is a cycle that we report in full.
    const colour = new Map<string, 'grey' | 'black'>();
    const stack: string[] = [];
    const visit = (id: string) => {
      colour.set(id, 'grey');
      stack.push(id);
      for (const dep of this.records.get(id)?.manifest.extensionDependencies ?? []) {
        if (!this.records.has(dep)) continue;
        if (colour.get(dep) === 'grey') {
          const cycle = [...stack.slice(stack.indexOf(dep)), dep];
          for (const member of new Set(cycle)) {
            this.skip(member, { code: ErrorCodes.DEPENDENCY_CYCLE, message: `dependency cycle: ${cycle.join(' → ')}`, details: { cycle } });
          }
        } else if (!colour.has(dep)) visit(dep);
      }
      stack.pop();
      colour.set(id, 'black');
    };
    for (const id of this.records.keys()) if (!colour.has(id)) visit(id);
  }

  /** Ids in an order where every dependency comes before its dependents. */
  topologicalOrder(): string[] {
    const out: string[] = [];
    const seen = new Set<string>();
    const visit = (id: string) => {
      if (seen.has(id)) return;
      seen.add(id);
      for (const dep of this.records.get(id)?.manifest.extensionDependencies ?? []) if (this.records.has(dep)) visit(dep);
      out.push(id);
    };
    for (const id of this.records.keys()) visit(id);
    return out;
  }
}
