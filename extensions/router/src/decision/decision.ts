import { AionError } from '@aion/extension-api';
import type { HealthBook } from '../providers/health.js';
import { effectivePolicy, engineMatches, stricterPrivacy, type EffectivePolicy, type PolicyDocument } from '../policies/policy.js';
import type { ChatMessage, ProviderModel, ProviderTier } from '../providers/providerTypes.js';
import type { Candidate, CatalogProvider, Decision, Filtered, Privacy, RouteRequest, Scores } from '../types.js';

export interface ScoringWeights {
  capability: number;
  cost: number;
  latency: number;
  tier: number;
}

export interface DecisionContext {
  providers: readonly CatalogProvider[];
  policies: PolicyDocument;
  health: HealthBook;
  weights: ScoringWeights;
  /** Output tokens assumed when the request sets no maxTokens. */
  outputTokens: number;
  /** Intents some provider rates; an intent outside it is scored as `chat`. */
  knownIntents: ReadonlySet<string>;
}

const TIER_SCORE: Record<ProviderTier, number> = { local: 1, 'cloud-standard': 0.6, 'cloud-premium': 0.3 };
/** Latency SLA assumed when a request sets no p95_ms. */
const DEFAULT_SLA_MS = 2_000;
/** Score of an engine with no observed latency yet: below a fast one, above a slow one. */
const UNKNOWN_LATENCY_SCORE = 0.75;

/** A rough token count (4 characters a token), enough for context and cost limits. */
export function estimateInputTokens(messages: readonly ChatMessage[], tools?: readonly unknown[]): number {
  let chars = 0;
  for (const m of messages) {
    chars += (m.content?.length ?? 0) + 16;
    if (m.toolCalls) for (const c of m.toolCalls) chars += c.name.length + c.arguments.length;
  }
  if (tools?.length) chars += JSON.stringify(tools).length;
  return Math.ceil(chars / 4);
}

export function estimateCostUsd(model: Pick<ProviderModel, 'costPer1kInput' | 'costPer1kOutput'>, inputTokens: number, outputTokens: number): number {
  return (inputTokens / 1000) * model.costPer1kInput + (outputTokens / 1000) * model.costPer1kOutput;
}

/** A provider's model as a candidate of one decision, before scoring: the one place a candidate is built. */
export function candidateOf(
  p: { id: string; route: Candidate['route']; tier: Candidate['tier']; residency: Candidate['residency'] },
  m: ProviderModel,
  intent: string,
  estimatedCostUsd: number,
): Candidate {
  return {
    engine: `${p.id}/${m.id}`,
    provider: p.id,
    model: m.id,
    route: p.route,
    tier: p.tier,
    residency: m.residency ?? p.residency,
    ...(m.owner ? { owner: m.owner } : {}),
    estimatedCostUsd,
    costPer1kInput: m.costPer1kInput,
    costPer1kOutput: m.costPer1kOutput,
    score: 0,
    scores: { capability: m.capabilities[intent] ?? 0, cost: 0, latency: 0, tier: 0 },
  };
}

const round = (n: number, digits = 3) => Math.round(n * 10 ** digits) / 10 ** digits;

/** A model with an owner serves that user only; every other model serves anyone. */
export function mayUseModel(m: Pick<ProviderModel, 'owner'>, request: Pick<RouteRequest, 'tenantId' | 'userId'>): boolean {
  return !m.owner || (m.owner.tenant_id === request.tenantId && m.owner.user_id === request.userId);
}

/** `ollama/llama3.1` names `ollama/llama3.1:latest` too. */
export function sameModel(a: string, b: string): boolean {
  return a === b || a.replace(/:latest$/, '') === b.replace(/:latest$/, '');
}

/** `provider/model` or `provider` against an engine id. */
export function matchesEngine(spec: string, engine: string): boolean {
  const slash = spec.indexOf('/');
  const at = engine.indexOf('/');
  if (slash < 0) return engine.slice(0, at) === spec;
  return engine.slice(0, at) === spec.slice(0, slash) && sameModel(engine.slice(at + 1), spec.slice(slash + 1));
}

function describeScores(s: Scores): string {
  return `capability ${round(s.capability, 2)}, cost ${round(s.cost, 2)}, latency ${round(s.latency, 2)}, tier ${round(s.tier, 2)}`;
}

/**
 * Hard filters first (policy, residency, availability, capability, tools, context, budget, open
 * circuits), then a score from capability, cost, observed latency against the SLA, and tier. The
 * list is ordered for fallback: the first choice, then local engines before cloud ones.
 */
export function decide(request: RouteRequest, ctx: DecisionContext): Decision {
  const policy = effectivePolicy(ctx.policies, request);
  const privacy: Privacy = stricterPrivacy(request.privacy, policy.privacy);
  const intent = ctx.knownIntents.has(request.intent) ? request.intent : 'chat';
  const inputTokens = estimateInputTokens(request.messages, request.tools);
  const outputTokens = request.maxTokens ?? ctx.outputTokens;
  const budgets = [request.budgetUsd, policy.budgetUsd].filter((b): b is number => b !== undefined);
  const budget = budgets.length ? Math.min(...budgets) : undefined;
  const filtered: Filtered[] = [];
  const survivors: Candidate[] = [];
  let retryAfterMs: number | undefined;

  const limits: FilterLimits = {
    policy,
    privacy,
    intent,
    inputTokens,
    outputTokens,
    budget,
    health: ctx.health,
    requestIntent: request.intent,
    needsTools: !!request.tools?.length,
  };
  for (const p of ctx.providers) {
    for (const m of p.models) {
      // Embedding models answer /v1/embeddings only; another user's device is not even named in the explanation.
      if (m.embed || !mayUseModel(m, request)) continue;
      const engine = `${p.id}/${m.id}`;
      const cost = estimateCostUsd(m, inputTokens, outputTokens);
      const why = firstFilter(p, m, engine, cost, limits);
      if (why) {
        filtered.push({ engine, ...why });
        continue;
      }
      survivors.push(candidateOf(p, m, intent, cost));
    }
  }

  for (const f of filtered) {
    if (f.filter !== 'circuit') continue;
    const wait = ctx.health.peek(f.engine)?.breaker.retryInMs ?? 0;
    retryAfterMs = retryAfterMs === undefined ? wait : Math.min(retryAfterMs, wait);
  }
  score(survivors, request, policy, ctx);
  survivors.sort((a, b) => b.score - a.score || (a.engine < b.engine ? -1 : 1));

  const decision: Decision = { candidates: [], filtered, chosenBy: 'ai-router', reason: '', privacy, retryAfterMs };
  let first: Candidate | undefined;
  let onlyFirst = false;
  const override = policy.override;
  const preferred = request.preferredEngine && !request.preferredEngine.startsWith('aion/') ? request.preferredEngine : undefined;
  if (override) {
    first = survivors.find((c) => matchesEngine(override.engine, c.engine));
    if (first) {
      decision.chosenBy = 'policy-override';
      decision.reason = `policy override${override.name ? ` ${override.name}` : ''} puts ${first.engine} first${override.reason ? `: ${override.reason}` : ''}`;
      onlyFirst = override.fallback === false;
    }
  }
  if (!first && preferred) {
    first = survivors.find((c) => matchesEngine(preferred, c.engine));
    if (first) {
      decision.chosenBy = 'preferred';
      decision.reason = `preferred engine ${preferred} passed every filter (score ${round(first.score)})`;
    }
  }
  if (!first) {
    first = privacy === 'hybrid' ? (survivors.find((c) => c.route === 'local') ?? survivors[0]) : survivors[0];
    if (first) {
      const notes: string[] = [];
      if (override) notes.push(`policy override ${override.engine} was filtered out`);
      if (preferred) {
        const why = filtered.find((f) => matchesEngine(preferred, f.engine));
        notes.push(why ? `preferred ${preferred} was filtered (${why.filter}: ${why.detail})` : `preferred ${preferred} is not a known engine`);
      }
      const hybridNote =
        privacy === 'hybrid' && first.route === 'local' && survivors[0] !== first
          ? ' (hybrid: local first)'
          : privacy === 'hybrid' && first.route === 'api'
            ? ' (hybrid: no local engine passed the filters)'
            : '';
      decision.reason = `best score ${round(first.score)} (${describeScores(first.scores)}) among ${survivors.length} candidate${survivors.length === 1 ? '' : 's'}${hybridNote}${filtered.length ? `; ${filtered.length} filtered` : ''}${notes.length ? `; ${notes.join('; ')}` : ''}`;
    }
  }
  if (first) {
    // Fallback order: local before cloud, each by score.
    const rest = onlyFirst ? [] : survivors.filter((c) => c !== first);
    rest.sort((a, b) => (a.route === b.route ? 0 : a.route === 'local' ? -1 : 1) || b.score - a.score);
    decision.candidates = [first, ...rest];
  }
  return decision;
}

interface FilterLimits {
  policy: EffectivePolicy;
  privacy: Privacy;
  intent: string;
  requestIntent: string;
  inputTokens: number;
  outputTokens: number;
  budget?: number;
  health: HealthBook;
  needsTools: boolean;
}

/** The first hard filter an engine fails, in the order the router applies them. */
function firstFilter(p: CatalogProvider, m: ProviderModel, engine: string, cost: number, l: FilterLimits): Omit<Filtered, 'engine'> | undefined {
  const residency = m.residency ?? p.residency;
  const facts = { provider: p.id, model: m.id, route: p.route, tier: p.tier, residency };
  const tierRule = l.policy.tiers[p.tier];
  if (tierRule?.enabled === false) return { filter: 'policy', detail: `tier ${p.tier} is disabled by policy` };
  const denied = l.policy.deny.find((d) => engineMatches(d, facts));
  if (denied) return { filter: 'policy', detail: `denied by policy (${denied}) for intent ${l.requestIntent}` };
  if (l.policy.allow && !l.policy.allow.some((a) => engineMatches(a, facts)))
    return { filter: 'policy', detail: `not in the policy's allow list for intent ${l.requestIntent}` };
  if (l.privacy === 'local-only' && p.route !== 'local') {
    return {
      filter: 'residency',
      detail: `privacy local-only: ${p.route} providers are never used (residency ${residency.scope}${residency.vendor ? ` ${residency.vendor}` : ''})`,
    };
  }
  if (p.availability === 'unavailable' || p.availability === 'disabled' || p.availability === 'probing') {
    return { filter: 'availability', detail: `provider ${p.id} is ${p.availability}${p.detail ? `: ${p.detail}` : ''}` };
  }
  const capability = m.capabilities[l.intent];
  if (capability === undefined || capability <= 0) return { filter: 'capability', detail: `not rated for intent ${l.intent}` };
  if (capability < l.policy.minCapability)
    return { filter: 'capability', detail: `rated ${capability} for intent ${l.intent}, policy requires ${l.policy.minCapability}` };
  if (l.needsTools && !m.tools) return { filter: 'tools', detail: 'does not call tools' };
  if (l.inputTokens + l.outputTokens > m.contextWindow)
    return { filter: 'context', detail: `~${l.inputTokens}+${l.outputTokens} tokens exceed the ${m.contextWindow}-token context` };
  const cap = tierRule?.max_budget_usd !== undefined ? Math.min(l.budget ?? Infinity, tierRule.max_budget_usd) : l.budget;
  if (cap !== undefined && cost > cap) return { filter: 'budget', detail: `estimated $${cost.toPrecision(3)} exceeds the $${cap} budget` };
  const health = l.health.peek(engine);
  if (health && !health.breaker.admits)
    return {
      filter: 'circuit',
      detail: `circuit open after ${health.breaker.consecutiveFailures} failures; next probe in ${Math.ceil(health.breaker.retryInMs / 1000)} s`,
    };
  return undefined;
}

function score(candidates: Candidate[], request: RouteRequest, policy: EffectivePolicy, ctx: DecisionContext): void {
  if (candidates.length === 0) return;
  let minCost = Infinity;
  let maxCost = 0;
  for (const c of candidates) {
    if (c.estimatedCostUsd < minCost) minCost = c.estimatedCostUsd;
    if (c.estimatedCostUsd > maxCost) maxCost = c.estimatedCostUsd;
  }
  const w = { ...ctx.weights };
  if (request.priority === 'high') {
    w.latency *= 1.5;
    w.capability *= 1.25;
    w.cost *= 0.5;
  } else if (request.priority === 'low') {
    w.cost *= 1.5;
    w.latency *= 0.5;
  }
  const total = w.capability + w.cost + w.latency + w.tier || 1;
  const sla = request.p95Ms ?? DEFAULT_SLA_MS;
  for (const c of candidates) {
    const s = c.scores;
    s.cost = maxCost === minCost ? 1 : 1 - (c.estimatedCostUsd - minCost) / (maxCost - minCost);
    const p95 = ctx.health.peek(c.engine)?.latency.p95;
    s.latency = p95 === undefined ? UNKNOWN_LATENCY_SCORE : p95 <= sla ? 1 : sla / p95;
    s.tier = policy.tier ? (c.tier === policy.tier ? 1 : TIER_SCORE[c.tier] * 0.5) : TIER_SCORE[c.tier];
    c.score = round((w.capability * s.capability + w.cost * s.cost + w.latency * s.latency + w.tier * s.tier) / total);
  }
}

/** Why nothing can run, in words that say what to do. */
export function noRouteError(decision: Decision, providers: readonly CatalogProvider[]): AionError {
  if (providers.length === 0) {
    return new AionError(
      'NO_PROVIDER',
      'no model provider is installed: add a provider extension (aion.provider-openai, aion.provider-ollama, aion.provider-anthropic), then set OPENAI_API_KEY, start Ollama on 127.0.0.1:11434, or enable one under extensions["aion.router"].providers',
      { status: 503 },
    );
  }
  const usable = providers.filter((p) => p.availability === 'configured' || p.availability === 'detected');
  if (usable.length === 0) {
    const why = providers.map((p) => `${p.id}: ${p.availability}${p.detail ? ` (${p.detail})` : ''}`).join('; ');
    return new AionError(
      'NO_PROVIDER',
      `no model provider is available (${why}): set OPENAI_API_KEY, start Ollama on 127.0.0.1:11434, or configure a provider's baseUrl and enable it under extensions["aion.router"].providers`,
      { status: 503, details: { providers: providers.map((p) => ({ id: p.id, availability: p.availability, detail: p.detail })) } },
    );
  }
  const counts = new Map<string, number>();
  for (const f of decision.filtered) counts.set(f.filter, (counts.get(f.filter) ?? 0) + 1);
  const summary = [...counts].map(([k, n]) => `${n} by ${k}`).join(', ');
  const examples = decision.filtered
    .slice(0, 6)
    .map((f) => `${f.engine} (${f.filter}: ${f.detail})`)
    .join('; ');
  // An engine filtered by its circuit passed every other filter: the request can run once it closes.
  if (decision.retryAfterMs !== undefined) {
    const seconds = String(Math.max(1, Math.ceil(decision.retryAfterMs / 1000)));
    return new AionError('PROVIDERS_UNAVAILABLE', `every engine that could serve this request is failing (${summary}): ${examples}`, {
      status: 503,
      headers: { 'Retry-After': seconds },
      details: { filtered: decision.filtered },
    });
  }
  return new AionError('NO_ROUTE', `no engine satisfies this request (privacy ${decision.privacy}; ${summary}): ${examples}`, {
    status: 422,
    details: { filtered: decision.filtered },
  });
}

/** The `x-aion-route` header: decision, candidates with scores, filters, attempts. ASCII, one line. */
export function routeHeader(decision: Decision, attempts?: ReadonlyArray<{ engine: string; outcome: string; code?: string }>): string {
  const parts = [
    `chosen_by=${decision.chosenBy}`,
    `privacy=${decision.privacy}`,
    `candidates=${decision.candidates.map((c) => `${c.engine}(${c.score})`).join(',') || 'none'}`,
  ];
  if (decision.filtered.length) parts.push(`filtered=${decision.filtered.map((f) => `${f.engine}(${f.filter})`).join(',')}`);
  if (attempts?.length) parts.push(`attempts=${attempts.map((a) => `${a.engine}(${a.code ?? a.outcome})`).join(',')}`);
  return parts
    .join('; ')
    .replace(/[^\x20-\x7e]/g, '?')
    .slice(0, 4000);
}
