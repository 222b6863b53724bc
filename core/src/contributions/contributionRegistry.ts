import { injectable, inject } from 'inversify';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { ErrorCodes, type ExposeDeclaration, type RouteContribution } from '@aion/extension-api';
import { formatAjvErrors } from '../config/configuration.js';
import { ExtensionRegistry } from '../registry/extensionRegistry.js';

/** Activation-event kinds the kernel itself raises; points add their own prefixes. */
const KERNEL_EVENT_KINDS = ['onStartup', 'onCommand', 'onRoute', 'onHook'];

/** Edit distance, for "did you mean" on names a person typed; names are short, so the plain table is enough. */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = row;
  }
  return previous[b.length]!;
}

/** ` (did you mean "x"?)` when one candidate is within two edits of `name`, else nothing. */
export function didYouMean(name: string, candidates: Iterable<string>): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const c of candidates) {
    const d = distance(name.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best ? ` (did you mean "${best}"?)` : '';
}

/** Points the kernel itself understands; every other point is declared by an extension. */
export const KERNEL_POINTS = ['contributionPoints', 'configuration', 'routes', 'commands', 'hooks', 'secrets'] as const;

interface PointInfo {
  name: string;
  owner: string;
  activationEventPrefix?: string;
  description?: string;
  validate: ValidateFunction;
}

export interface StaticContribution {
  extensionId: string;
  entry: Record<string, unknown>;
  /** The contributing extension's `aion.expose`, for a spoke deciding what its hub may see. */
  expose?: ExposeDeclaration;
}

export interface RuntimeImplementation {
  extensionId: string;
  methods: string[];
}

/** Declared points, every validated contribution to them, and the implementations registered at runtime. */
@injectable()
export class ContributionRegistry {
  private readonly points = new Map<string, PointInfo>();
  private readonly entries = new Map<string, StaticContribution[]>();
  private readonly implementations = new Map<string, RuntimeImplementation>();
  private readonly kernelRoutes: RouteContribution[] = [];
  private readonly ajv = new Ajv2020({ allErrors: true, strict: false });

  constructor(@inject(ExtensionRegistry) private readonly registry: ExtensionRegistry) {}

  /** Collects declared points, validates every contribution before any code runs, derives activation events. */
  load(): void {
    const usable = this.registry.all().filter((r) => r.state !== 'skipped');
    for (const record of usable) {
      for (const [name, decl] of Object.entries(record.manifest.contributes?.contributionPoints ?? {})) {
        const existing = this.points.get(name);
        if ((KERNEL_POINTS as readonly string[]).includes(name) || existing) {
          this.registry.skip(record.id, {
            code: ErrorCodes.MANIFEST_INVALID,
            message: `${record.manifestPath}: /contributes/contributionPoints/${name}: point ${name} is already declared by ${existing?.owner ?? 'the kernel'}`,
          });
          continue;
        }
        let validate: ValidateFunction;
        try {
          validate = this.ajv.compile(decl.schema);
        } catch (e) {
          this.registry.skip(record.id, {
            code: ErrorCodes.MANIFEST_INVALID,
            message: `${record.manifestPath}: /contributes/contributionPoints/${name}/schema: not a valid JSON schema (${(e as Error).message})`,
          });
          continue;
        }
        this.points.set(name, { name, owner: record.id, activationEventPrefix: decl.activationEventPrefix, description: decl.description, validate });
      }
    }
    for (const record of this.registry.all()) {
      if (record.state === 'skipped') continue;
      const events = new Set(record.manifest.activationEvents ?? []);
      const contributes = record.manifest.contributes ?? {};
      for (const route of contributes.routes ?? []) events.add(`onRoute:${route.method} ${route.path}`);
      for (const command of contributes.commands ?? []) events.add(`onCommand:${command.command}`);
      let invalid = false;
      const kinds = new Set([...KERNEL_EVENT_KINDS, ...[...this.points.values()].flatMap((p) => (p.activationEventPrefix ? [p.activationEventPrefix] : []))]);
      (record.manifest.activationEvents ?? []).forEach((event, index) => {
        const kind = event.split(':')[0]!;
        if (event === '*' || kinds.has(kind)) return;
        invalid = true;
        record.errors.push({
          code: ErrorCodes.MANIFEST_INVALID,
          message: `${record.manifestPath}: /activationEvents/${index}: "${kind}" is not an activation event of the kernel or of any installed contribution point${didYouMean(kind, kinds)}`,
        });
      });
      for (const [pointName, value] of Object.entries(contributes)) {
        if ((KERNEL_POINTS as readonly string[]).includes(pointName)) continue;
        const point = this.points.get(pointName);
        if (!point) {
          // Declared as for an extension that may not be installed: nothing to warn about.
          if (record.manifest.aion?.optionalPoints?.includes(pointName)) continue;
          record.warnings.push({
            code: ErrorCodes.CONTRIBUTION_POINT_UNKNOWN,
            message: `${record.manifestPath}: /contributes/${pointName}: no installed extension declares the contribution point "${pointName}"${didYouMean(pointName, [...KERNEL_POINTS, ...this.points.keys()])}`,
          });
          continue;
        }
        const items = Array.isArray(value) ? value : [value];
        items.forEach((entry, index) => {
          if (!point.validate(entry)) {
            invalid = true;
            for (const line of formatAjvErrors(point.validate.errors, `/contributes/${pointName}/${index}`)) {
              record.errors.push({
                code: ErrorCodes.CONTRIBUTION_INVALID,
                message: `${record.manifestPath}: ${line} (schema of point ${pointName} from ${point.owner})`,
              });
            }
            return;
          }
          const list = this.entries.get(pointName) ?? [];
          const expose = record.manifest.aion?.expose;
          list.push({ extensionId: record.id, entry: entry as Record<string, unknown>, ...(expose ? { expose } : {}) });
          this.entries.set(pointName, list);
          const id = (entry as { id?: unknown }).id;
          if (point.activationEventPrefix && typeof id === 'string') events.add(`${point.activationEventPrefix}:${id}`);
        });
      }
      record.activationEvents = [...events];
      if (invalid) {
        record.state = 'skipped';
        for (const dependent of this.registry.dependentsOf(record.id)) {
          this.registry.skip(dependent.id, {
            code: ErrorCodes.DEPENDENCY_FAILED,
            message: `${dependent.id} depends on ${record.id}, whose contributions are invalid`,
          });
        }
      }
    }
    // Entries from extensions skipped after validation must not be listed.
    for (const [name, list] of this.entries)
      this.entries.set(
        name,
        list.filter((c) => this.registry.get(c.extensionId)?.state !== 'skipped'),
      );
  }

  pointNames(): string[] {
    return [...KERNEL_POINTS, ...this.points.keys()];
  }

  point(name: string): Omit<PointInfo, 'validate'> | undefined {
    const p = this.points.get(name);
    return p && { name: p.name, owner: p.owner, activationEventPrefix: p.activationEventPrefix, description: p.description };
  }

  /** Every route served: the kernel's (extension id `kernel`), then those of extensions that were not skipped. */
  private routes(): StaticContribution[] {
    const kernel = this.kernelRoutes.map((route) => ({ extensionId: 'kernel', entry: { ...route } as Record<string, unknown> }));
    const contributed = this.registry
      .all()
      .filter((r) => r.state !== 'skipped')
      .flatMap((r) => (r.manifest.contributes?.routes ?? []).map((route) => ({ extensionId: r.id, entry: { ...route } as Record<string, unknown> })));
    return [...kernel, ...contributed];
  }

  /** Routes the kernel itself serves (`/healthz`, `/v1/extensions`), listed with the contributed ones. */
  addKernelRoutes(routes: RouteContribution[]): void {
    this.kernelRoutes.push(...routes);
  }

  list(point: string): StaticContribution[] {
    if (point === 'routes') return this.routes();
    const listed = this.entries.get(point) ?? [];
    const runtimeOnly = [...this.implementations.entries()]
      .filter(([key]) => key.startsWith(`${point}/`))
      .map(([key, impl]) => ({ extensionId: impl.extensionId, entry: { id: key.slice(point.length + 1) } }))
      .filter((c) => !listed.some((l) => l.entry.id === c.entry.id));
    return [...listed, ...runtimeOnly];
  }

  /** The extension whose manifest contributes entry `id` to `point`. */
  ownerOf(point: string, id: string): string | undefined {
    return this.entries.get(point)?.find((c) => c.entry.id === id)?.extensionId ?? this.implementations.get(`${point}/${id}`)?.extensionId;
  }

  activationEventFor(point: string, id: string): string | undefined {
    const prefix = this.points.get(point)?.activationEventPrefix;
    return prefix ? `${prefix}:${id}` : undefined;
  }

  /** False when `id` belongs to another extension: its manifest entry, or an implementation registered first. */
  setImplementation(point: string, id: string, impl: RuntimeImplementation): boolean {
    const owner = this.ownerOf(point, id);
    if (owner !== undefined && owner !== impl.extensionId) return false;
    this.implementations.set(`${point}/${id}`, impl);
    return true;
  }

  removeImplementation(point: string, id: string, extensionId: string): void {
    if (this.implementations.get(`${point}/${id}`)?.extensionId === extensionId) this.implementations.delete(`${point}/${id}`);
  }

  implementation(point: string, id: string): RuntimeImplementation | undefined {
    return this.implementations.get(`${point}/${id}`);
  }

  /** Forgets runtime state of extensions whose host went away. */
  forgetExtension(extensionId: string): void {
    for (const [key, impl] of this.implementations) if (impl.extensionId === extensionId) this.implementations.delete(key);
  }

  /** Contributions of one extension, as listed by `/v1/extensions`. */
  summaryFor(extensionId: string): Record<string, number> {
    const record = this.registry.get(extensionId);
    const out: Record<string, number> = {};
    for (const [key, value] of Object.entries(record?.manifest.contributes ?? {})) {
      if (key === 'configuration') continue;
      out[key] = Array.isArray(value) ? value.length : typeof value === 'object' && value ? Object.keys(value).length : 1;
    }
    return out;
  }
}
