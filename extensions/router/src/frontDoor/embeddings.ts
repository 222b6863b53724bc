import { AionError, ErrorCodes, isAionError, type CancellationToken } from '@aion/extension-api';
import type { ProviderCatalog } from '../providers/catalog.js';
import { matchesEngine, noRouteError, sameModel } from '../decision/decision.js';
import type { ExecutionResult } from '../tasks/engine.js';
import type { HealthBook } from '../providers/health.js';
import type { ConcurrencyLimiter } from '../decision/limiter.js';
import { effectivePolicy, engineMatches, stricterPrivacy, type PolicyStore } from '../policies/policy.js';
import type { EmbedResult } from '../providers/providerTypes.js';
import type { RouterTelemetry } from '../telemetry.js';
import type { Candidate, Decision, Filtered, Privacy } from '../types.js';

/** The intent embeddings are routed under: policies name it (`intents.embed`) like any other. */
export const EMBED_INTENT = 'embed';

export interface EmbeddingRequest {
  input: string[];
  dimensions?: number;
  privacy: Privacy;
  /** `provider/model` of an embedding model, when the client named one. */
  preferredEngine?: string;
  tenantId?: string;
  metadata: Record<string, unknown>;
}

export interface EmbeddingResult extends ExecutionResult {
  embeddings: number[][];
}

export interface EmbeddingRouterOptions {
  catalog: ProviderCatalog;
  policies: PolicyStore;
  health: HealthBook;
  limiter: ConcurrencyLimiter;
  telemetry?: RouterTelemetry;
}

/** Failures that say nothing about the upstream's health, and that another engine would answer the same. */
const REQUEST_FAULTS = new Set(['PROVIDER_BAD_REQUEST', 'CANCELLED']);

/**
 * Routes embeddings to providers' embedding models (`embed: true`) under the same residency rules as
 * chat: `local-only` never lists an `api` provider, policies allow and deny by engine, open circuits
 * are skipped. The order is the named engine, then local engines, then the cheapest; a failure of the
 * upstream falls back to the next one.
 */
export class EmbeddingRouter {
  constructor(private readonly o: EmbeddingRouterOptions) {}

  /** `provider/model`, a bare id of an embedding model, or undefined for `aion/*`; 404 for what nothing serves. */
  resolveModel(model: string): { preferred?: string; privacy?: Privacy } {
    if (model === 'aion/auto' || model === 'auto') return {};
    if (model === 'aion/local') return { privacy: 'local-only' };
    const slash = model.indexOf('/');
    const providers = this.o.catalog.providers;
    const p = slash > 0 ? providers.find((x) => x.id === model.slice(0, slash)) : undefined;
    const matches = p
      ? p.models.filter((m) => sameModel(m.id, model.slice(slash + 1))).map((m) => ({ p, m }))
      : providers.flatMap((x) => x.models.filter((m) => sameModel(m.id, model)).map((m) => ({ p: x, m })));
    const found = matches.find(({ m }) => m.embed) ?? matches[0];
    if (!found)
      throw new AionError(
        'MODEL_NOT_FOUND',
        `the model ${model} is not served here; use an embedding model of GET /v1/models (aion.embed: true), aion/auto or aion/local`,
        { status: 404, details: { param: 'model' } },
      );
    if (!found.m.embed)
      throw new AionError(
        ErrorCodes.VALIDATION_FAILED,
        `${found.p.id}/${found.m.id} is a chat model, not an embedding model; GET /v1/models marks embedding models with aion.embed: true`,
        { details: { param: 'model' } },
      );
    return { preferred: `${found.p.id}/${found.m.id}` };
  }

  decide(request: EmbeddingRequest): Decision {
    const policy = effectivePolicy(this.o.policies.policies, {
      intent: EMBED_INTENT,
      tenantId: request.tenantId,
      privacy: request.privacy,
      metadata: request.metadata,
    });
    const privacy = stricterPrivacy(request.privacy, policy.privacy);
    const filtered: Filtered[] = [];
    const survivors: Candidate[] = [];
    const tokens = request.input.reduce((n, t) => n + Math.ceil(t.length / 4), 0);
    for (const p of this.o.catalog.providers) {
      for (const m of p.models) {
        if (!m.embed) continue;
        const engine = `${p.id}/${m.id}`;
        const facts = { provider: p.id, model: m.id, route: p.route, tier: p.tier, residency: p.residency };
        const denied =
          policy.tiers[p.tier]?.enabled === false ||
          policy.deny.some((d) => engineMatches(d, facts)) ||
          (policy.allow && !policy.allow.some((a) => engineMatches(a, facts)));
        const breaker = this.o.health.peek(engine)?.breaker;
        let why: Omit<Filtered, 'engine'> | undefined;
        if (denied) why = { filter: 'policy', detail: `not allowed by policy for intent ${EMBED_INTENT}` };
        else if (privacy === 'local-only' && p.route !== 'local')
          why = {
            filter: 'residency',
            detail: `privacy local-only: ${p.route} providers are never used (residency ${p.residency.scope}${p.residency.vendor ? ` ${p.residency.vendor}` : ''})`,
          };
        else if (p.availability !== 'configured' && p.availability !== 'detected')
          why = { filter: 'availability', detail: `provider ${p.id} is ${p.availability}${p.detail ? `: ${p.detail}` : ''}` };
        else if (breaker && !breaker.admits) why = { filter: 'circuit', detail: `circuit open; next probe in ${Math.ceil(breaker.retryInMs / 1000)} s` };
        if (why) {
          filtered.push({ engine, ...why });
          continue;
        }
        const cost = (tokens / 1000) * m.costPer1kInput;
        survivors.push({
          engine,
          provider: p.id,
          model: m.id,
          route: p.route,
          tier: p.tier,
          residency: p.residency,
          estimatedCostUsd: cost,
          costPer1kInput: m.costPer1kInput,
          costPer1kOutput: 0,
          score: 0,
          scores: { capability: 1, cost: 0, latency: 0, tier: 0 },
        });
      }
    }
    // Local before cloud (in every privacy mode: nothing leaves the machine when it need not), then the cheapest.
    survivors.sort(
      (a, b) => (a.route === b.route ? 0 : a.route === 'local' ? -1 : 1) || a.estimatedCostUsd - b.estimatedCostUsd || (a.engine < b.engine ? -1 : 1),
    );
    const decision: Decision = { candidates: survivors, filtered, chosenBy: 'ai-router', reason: '', privacy };
    const override = policy.override ? survivors.find((c) => matchesEngine(policy.override!.engine, c.engine)) : undefined;
    const preferred = request.preferredEngine ? survivors.find((c) => matchesEngine(request.preferredEngine!, c.engine)) : undefined;
    if (override) {
      decision.candidates = policy.override!.fallback === false ? [override] : [override, ...survivors.filter((c) => c !== override)];
      decision.chosenBy = 'policy-override';
      decision.reason = `policy override${policy.override!.name ? ` ${policy.override!.name}` : ''} puts ${override.engine} first${policy.override!.reason ? `: ${policy.override!.reason}` : ''}`;
    } else if (preferred) {
      decision.candidates = [preferred, ...survivors.filter((c) => c !== preferred)];
      decision.chosenBy = 'preferred';
      decision.reason = `preferred engine ${preferred.engine} passed every filter`;
    } else if (survivors[0]) {
      const note = request.preferredEngine
        ? `; preferred ${request.preferredEngine} was filtered (${filtered.find((f) => f.engine === request.preferredEngine)?.filter ?? 'unknown'})`
        : '';
      decision.reason = `${survivors[0].route === 'local' ? 'local' : 'cheapest'} embedding model among ${survivors.length}${filtered.length ? `; ${filtered.length} filtered` : ''}${note}`;
    }
    this.o.telemetry?.decision(decision.candidates[0]?.route ?? 'none', decision.candidates.length ? decision.chosenBy : 'no-route');
    if (decision.candidates.length === 0) {
      if (!this.o.catalog.providers.some((p) => p.models.some((m) => m.embed)))
        throw new AionError(
          'NO_ROUTE',
          'no provider here has an embedding model: add one to a provider\'s models with "embed": true (e.g. text-embedding-3-small for OpenAI, nomic-embed-text for Ollama)',
          { status: 422 },
        );
      throw noRouteError(decision, this.o.catalog.providers);
    }
    return decision;
  }

  /** Calls the candidates in order until one answers; a bad request ends the call, other failures fall back. */
  async execute(decision: Decision, request: EmbeddingRequest, token: CancellationToken): Promise<EmbeddingResult> {
    const started = performance.now();
    const result: EmbeddingResult = {
      status: 'ERROR',
      text: '',
      toolCalls: [],
      inputTokens: 0,
      outputTokens: 0,
      costUsd: 0,
      latencyMs: 0,
      attempts: [],
      embeddings: [],
    };
    let last: { code: string; message: string; status?: number; retryAfterMs?: number } | undefined;
    for (const c of decision.candidates) {
      if (token.isCancellationRequested) break;
      if (decision.privacy === 'local-only' && c.route !== 'local') continue;
      const health = this.o.health.get(c.engine);
      if (!health.breaker.tryAcquire()) {
        result.attempts.push({ engine: c.engine, outcome: 'skipped', code: 'CIRCUIT_OPEN', message: 'circuit open' });
        continue;
      }
      const limit = this.o.catalog.get(c.provider)?.maxConcurrency ?? Infinity;
      if (!this.o.limiter.tryAcquire(c.provider, limit)) {
        health.breaker.release();
        result.attempts.push({ engine: c.engine, outcome: 'skipped', code: 'SATURATED', message: `${limit} calls in flight` });
        last ??= { code: 'SATURATED', message: `every candidate provider is at its concurrency limit; retry shortly`, status: 503 };
        continue;
      }
      result.candidate = c;
      const t0 = performance.now();
      let answer: EmbedResult | undefined;
      let failure: { code: string; message: string; status?: number; retryAfterMs?: number } | undefined;
      try {
        const impl = await this.o.catalog.implementation(c.provider);
        if (!impl.embed)
          throw new AionError('PROVIDER_BAD_REQUEST', `provider ${c.provider} lists ${c.model} as an embedding model but does not implement embed`, {
            status: 501,
          });
        answer = await impl.embed({ model: c.model, input: request.input, dimensions: request.dimensions }, token);
        if (!Array.isArray(answer?.embeddings) || answer.embeddings.length !== request.input.length)
          throw new AionError('PROVIDER_BAD_RESPONSE', `${c.engine} answered ${answer?.embeddings?.length ?? 0} embeddings for ${request.input.length} inputs`);
      } catch (err) {
        const code = isAionError(err) ? String(err.code) : 'PROVIDER_UNAVAILABLE';
        const details = isAionError(err) ? (err.details as { status?: number; retryAfterMs?: number } | undefined) : undefined;
        failure = {
          code: token.isCancellationRequested ? 'CANCELLED' : code,
          message: `${c.engine}: ${(err as Error).message}`,
          status: isAionError(err) ? err.httpStatus : undefined,
          retryAfterMs: details?.retryAfterMs,
        };
      } finally {
        this.o.limiter.release(c.provider);
      }
      const latency = Math.round((performance.now() - t0) * 100) / 100;
      if (answer && !failure) {
        health.breaker.success();
        health.latency.add(latency);
        result.attempts.push({ engine: c.engine, outcome: 'ok', latency_ms: latency });
        this.o.telemetry?.call(c.engine, 'ok', latency);
        result.status = 'OK';
        result.embeddings = answer.embeddings;
        result.inputTokens = answer.inputTokens || request.input.reduce((n, t) => n + Math.ceil(t.length / 4), 0);
        result.costUsd = Math.round((result.inputTokens / 1000) * c.costPer1kInput * 1e8) / 1e8;
        this.o.telemetry?.usage(c.engine, result.inputTokens, 0, result.costUsd);
        break;
      }
      last = failure!;
      if (REQUEST_FAULTS.has(last.code)) health.breaker.release();
      else health.breaker.failure(last.retryAfterMs);
      result.attempts.push({ engine: c.engine, outcome: 'failed', code: last.code, message: last.message, latency_ms: latency });
      this.o.telemetry?.call(c.engine, last.code === 'CANCELLED' ? 'cancelled' : 'error', latency, last.code);
      if (REQUEST_FAULTS.has(last.code)) break;
    }
    result.latencyMs = Math.round((performance.now() - started) * 100) / 100;
    if (result.status !== 'OK') result.error = last ?? { code: 'PROVIDERS_UNAVAILABLE', message: 'no candidate could be called', status: 503 };
    return result;
  }
}

/** A vector as OpenAI's `encoding_format: "base64"` sends it: little-endian float32, base64. */
export function base64Embedding(vector: number[]): string {
  return Buffer.from(new Float32Array(vector).buffer).toString('base64');
}
