import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Ajv } from 'ajv';
import { watch, type FSWatcher } from 'chokidar';
import picomatch from 'picomatch';
import { AionError, Emitter, type Disposable } from '@aion/extension-api';
import type { ProviderResidency, ProviderRoute, ProviderTier } from '../providers/providerTypes.js';
import type { Privacy } from '../types.js';
import { jsonPath } from '../frontDoor/input.js';

/** Rules for one intent, or the defaults every intent starts from. */
export interface IntentPolicy {
  /** Engines allowed (`provider`, `provider/model`, picomatch globs, `route:local`, `tier:cloud-premium`, `vendor:openai`); absent: all. */
  allow?: string[];
  /** Engines refused; the defaults' and the intent's lists both apply. */
  deny?: string[];
  /** The least strict privacy a request may run with: a request asking for less is raised to this. */
  privacy?: Privacy;
  /** The tier to prefer when scoring. */
  tier?: ProviderTier;
  /** Caps the request's budget. */
  budget_usd?: number;
  /** Models rated below this for the intent are filtered (default: anything above 0 passes). */
  min_capability?: number;
}

export interface TierPolicy {
  enabled?: boolean;
  /** Tasks on this tier may not be estimated above this cost. */
  max_budget_usd?: number;
}

export interface PolicyOverride {
  name?: string;
  match: { intent?: string | string[]; tenant?: string | string[]; privacy?: Privacy | Privacy[]; metadata?: Record<string, string | number | boolean> };
  /** `provider/model` or `provider` put first. */
  engine: string;
  /** false: only that engine, no fallback. Default true. */
  fallback?: boolean;
  reason?: string;
}

export interface PolicyDocument {
  version?: 1;
  defaults?: IntentPolicy;
  tiers?: Partial<Record<ProviderTier, TierPolicy>>;
  intents?: Record<string, IntentPolicy>;
  overrides?: PolicyOverride[];
}

const privacyEnum = { enum: ['local-only', 'allow-api', 'hybrid'] };
const tierEnum = { enum: ['local', 'cloud-standard', 'cloud-premium'] };
const stringOrList = (item: object) => ({ anyOf: [item, { type: 'array', items: item }] });
const intentSchema = {
  type: 'object',
  properties: {
    allow: { type: 'array', items: { type: 'string', minLength: 1 } },
    deny: { type: 'array', items: { type: 'string', minLength: 1 } },
    privacy: privacyEnum,
    tier: tierEnum,
    budget_usd: { type: 'number', minimum: 0 },
    min_capability: { type: 'number', minimum: 0, maximum: 1 },
  },
  additionalProperties: false,
};

/** JSON schema of the policy file. */
export const policySchema = {
  type: 'object',
  properties: {
    version: { const: 1 },
    defaults: intentSchema,
    tiers: {
      type: 'object',
      propertyNames: tierEnum,
      additionalProperties: {
        type: 'object',
        properties: { enabled: { type: 'boolean' }, max_budget_usd: { type: 'number', minimum: 0 } },
        additionalProperties: false,
      },
    },
    intents: { type: 'object', additionalProperties: intentSchema },
    overrides: {
      type: 'array',
      items: {
        type: 'object',
        required: ['match', 'engine'],
        properties: {
          name: { type: 'string' },
          match: {
            type: 'object',
            properties: {
              intent: stringOrList({ type: 'string' }),
              tenant: stringOrList({ type: 'string' }),
              privacy: stringOrList(privacyEnum),
              metadata: { type: 'object', additionalProperties: { type: ['string', 'number', 'boolean'] } },
            },
            additionalProperties: false,
          },
          engine: { type: 'string', minLength: 1 },
          fallback: { type: 'boolean' },
          reason: { type: 'string' },
        },
        additionalProperties: false,
      },
    },
  },
  additionalProperties: false,
} as const;

let validator: ReturnType<Ajv['compile']> | undefined;

/** Validates a policy document; the error names each bad JSON path. */
export function parsePolicies(value: unknown, source: string): PolicyDocument {
  validator ??= new Ajv({ allErrors: true, allowUnionTypes: true }).compile(policySchema);
  if (!validator(value)) {
    const problems = (validator.errors ?? []).map((e) => `${jsonPath(e.instancePath)}: ${e.message ?? 'is invalid'}`);
    throw new AionError('POLICY_INVALID', `${source} is not a valid policy document: ${problems.join('; ')}`, { status: 422, details: problems });
  }
  return value as PolicyDocument;
}

const privacyRank: Record<Privacy, number> = { 'allow-api': 0, hybrid: 1, 'local-only': 2 };

export function stricterPrivacy(a: Privacy, b: Privacy | undefined): Privacy {
  return b !== undefined && privacyRank[b] > privacyRank[a] ? b : a;
}

/** What an engine pattern is matched against. */
export interface EngineFacts {
  provider: string;
  model: string;
  route: ProviderRoute;
  tier: ProviderTier;
  residency: ProviderResidency;
}

// Matchers are compiled once per pattern: policies are matched against every candidate of every request.
const globCache = new Map<string, { test(value: string): boolean }>();
function glob(pattern: string): { test(value: string): boolean } {
  let matcher = globCache.get(pattern);
  if (!matcher) {
    const isMatch = picomatch(pattern, { dot: true });
    matcher = { test: (value) => isMatch(value) };
    globCache.set(pattern, matcher);
  }
  return matcher;
}

/** `openai`, `openai/*`, `ollama/llama3*`, `route:api`, `tier:cloud-premium`, `vendor:openai`, `*`. */
export function engineMatches(pattern: string, e: EngineFacts): boolean {
  const colon = pattern.indexOf(':');
  if (colon > 0 && !pattern.includes('/')) {
    const kind = pattern.slice(0, colon);
    const value = pattern.slice(colon + 1);
    if (kind === 'route') return glob(value).test(e.route);
    if (kind === 'tier') return glob(value).test(e.tier);
    if (kind === 'vendor') return e.residency.vendor !== undefined && glob(value).test(e.residency.vendor);
    if (kind === 'scope') return glob(value).test(e.residency.scope);
  }
  const slash = pattern.indexOf('/');
  if (slash < 0) return glob(pattern).test(e.provider);
  return glob(pattern.slice(0, slash)).test(e.provider) && glob(pattern.slice(slash + 1)).test(e.model);
}

/** The rules that apply to one request, merged from defaults and its intent. */
export interface EffectivePolicy {
  allow?: string[];
  deny: string[];
  privacy?: Privacy;
  tier?: ProviderTier;
  budgetUsd?: number;
  minCapability: number;
  tiers: Partial<Record<ProviderTier, TierPolicy>>;
  override?: PolicyOverride;
}

const asList = <T>(v: T | T[] | undefined): T[] | undefined => (v === undefined ? undefined : Array.isArray(v) ? v : [v]);

export function effectivePolicy(
  doc: PolicyDocument,
  request: { intent: string; tenantId?: string; privacy: Privacy; metadata: Record<string, unknown> },
): EffectivePolicy {
  const d = doc.defaults ?? {};
  const i = doc.intents?.[request.intent] ?? {};
  const budgets = [d.budget_usd, i.budget_usd].filter((b): b is number => b !== undefined);
  const override = doc.overrides?.find((o) => {
    const m = o.match;
    if (m.intent !== undefined && !asList(m.intent)!.includes(request.intent)) return false;
    if (m.tenant !== undefined && (request.tenantId === undefined || !asList(m.tenant)!.includes(request.tenantId))) return false;
    if (m.privacy !== undefined && !asList(m.privacy)!.includes(request.privacy)) return false;
    for (const [k, v] of Object.entries(m.metadata ?? {})) if (request.metadata[k] !== v) return false;
    return true;
  });
  return {
    allow: i.allow ?? d.allow,
    deny: [...(d.deny ?? []), ...(i.deny ?? [])],
    privacy: stricterPrivacy(d.privacy ?? 'allow-api', i.privacy),
    tier: i.tier ?? d.tier,
    budgetUsd: budgets.length ? Math.min(...budgets) : undefined,
    minCapability: i.min_capability ?? d.min_capability ?? 0,
    tiers: doc.tiers ?? {},
    override,
  };
}

/**
 * The policies in force: from a file (watched, reloaded on change; a bad file keeps the previous
 * policies and reports why) or inline from the configuration.
 */
export class PolicyStore implements Disposable {
  private current: PolicyDocument;
  private watcher?: FSWatcher;
  private debounce?: NodeJS.Timeout;
  readonly file?: string;
  loadedAt = new Date().toISOString();
  lastError?: string;
  private readonly changed = new Emitter<PolicyDocument>();
  readonly onDidChange = this.changed.event;

  constructor(options: { file?: string; inline?: unknown; log?: (level: 'info' | 'error', message: string) => void }) {
    this.file = options.file ? resolve(options.file) : undefined;
    this.log = options.log ?? (() => undefined);
    this.current = options.inline !== undefined && !this.file ? parsePolicies(options.inline, 'the policies configuration') : {};
  }

  private readonly log: (level: 'info' | 'error', message: string) => void;

  get policies(): PolicyDocument {
    return this.current;
  }

  get source(): string {
    return this.file ?? 'configuration';
  }

  /** Loads the file (when there is one) and starts watching its folder, so editors that replace the file are seen too. */
  async start(): Promise<void> {
    if (!this.file) return;
    await this.reload();
    try {
      // chokidar follows the file through editors that write a new file and rename it over the old one.
      this.watcher = watch(this.file, { ignoreInitial: true }).on('all', () => {
        clearTimeout(this.debounce);
        this.debounce = setTimeout(() => void this.reload().catch(() => undefined), 50);
      });
      this.watcher.on('error', (err) =>
        this.log('error', `watching ${this.file} failed (${(err as Error).message}); reload with POST /v1/router/policies/reload`),
      );
      // Changes are seen once the watcher is ready: start() does not return before.
      await new Promise<void>((ready) => this.watcher!.once('ready', () => ready()));
    } catch (err) {
      this.log('error', `cannot watch ${this.file} for changes (${(err as Error).message}); reload with POST /v1/router/policies/reload`);
    }
  }

  /** Reads the file again; on error the previous policies stay in force and the error is kept and thrown. */
  async reload(): Promise<PolicyDocument> {
    if (!this.file) return this.current;
    try {
      let text: string;
      try {
        text = await readFile(this.file, 'utf8');
      } catch (err) {
        throw new AionError('POLICY_INVALID', `cannot read the policy file ${this.file}: ${(err as Error).message}`, { status: 422 });
      }
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (err) {
        throw new AionError('POLICY_INVALID', `the policy file ${this.file} is not valid JSON: ${(err as Error).message}`, { status: 422 });
      }
      this.current = parsePolicies(value, `the policy file ${this.file}`);
      this.loadedAt = new Date().toISOString();
      this.lastError = undefined;
      this.log('info', `policies loaded from ${this.file}`);
      this.changed.fire(this.current);
      return this.current;
    } catch (err) {
      this.lastError = (err as Error).message;
      this.log('error', `${this.lastError}; the previous policies stay in force`);
      throw err;
    }
  }

  dispose(): void {
    clearTimeout(this.debounce);
    void this.watcher?.close();
    this.changed.dispose();
  }
}
