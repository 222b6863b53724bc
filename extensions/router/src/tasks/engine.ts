import type { RouterTelemetry } from '../telemetry.js';
import * as aion from '@aion/extension-api';
import { AionError, forEachItem, isAionError, type CancellationToken } from '@aion/extension-api';
import type { ProviderCatalog } from '../providers/catalog.js';
import { candidateOf, decide, mayUseModel, estimateCostUsd, estimateInputTokens, noRouteError, type ScoringWeights } from '../decision/decision.js';
import type { HealthBook } from '../providers/health.js';
import type { ConcurrencyLimiter } from '../decision/limiter.js';
import type { PolicyStore } from '../policies/policy.js';
import { PROVIDER_ERROR_STATUS as PROVIDER_KIT_STATUS, isProviderErrorCode } from '@aion/provider-kit';
import type { ChatRequest, FinishReason, ProviderEvent, ToolCall } from '../providers/providerTypes.js';
import type { Attempt, Candidate, ChosenBy, Decision, EngineInfo, RouteRequest } from '../types.js';

/** Why an execution was stopped from outside. */
export interface Abort {
  token: CancellationToken;
  /** Set before the token is cancelled. */
  reason?: 'cancel' | 'timeout' | 'disconnect';
}

/** Receives the answer as it is produced. */
export interface ExecutionObserver {
  attempt?(candidate: Candidate, index: number, previous?: Attempt): void;
  token?(text: string): void;
  toolCall?(call: ToolCall): void;
}

export type FinalStatus = 'OK' | 'ERROR' | 'TIMEOUT' | 'CANCELED';

export interface ExecutionResult {
  status: FinalStatus;
  /** The engine that answered, or the last one tried. */
  candidate?: Candidate;
  text: string;
  toolCalls: ToolCall[];
  finishReason?: FinishReason;
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
  latencyMs: number;
  firstTokenMs?: number;
  error?: { code: string; message: string; status?: number; retryAfterMs?: number };
  attempts: Attempt[];
}

/** HTTP status of a failure that reaches a client: provider-kit's table for provider failures, plus the router's own. */
export const PROVIDER_ERROR_STATUS: Record<string, number> = { ...PROVIDER_KIT_STATUS, SATURATED: 503, TIMEOUT: 504 };

/** What the engine that continues a cut answer is asked, after the partial answer as its own turn. */
const RESUME_INSTRUCTION =
  'Your previous answer was cut off. Continue it exactly where it stopped, without repeating anything or commenting on the interruption.';

/** Failures that say nothing about the upstream's health. */
const NOT_UPSTREAM_FAULTS = new Set<string>(['PROVIDER_BAD_REQUEST', 'CANCELLED']);

interface Outcome {
  ok: boolean;
  code?: string;
  message?: string;
  status?: number;
  retryAfterMs?: number;
  /** Output reached the caller before the failure: no silent fallback. */
  afterFirstToken: boolean;
  /** Another engine may answer. */
  fallback: boolean;
}

export interface EngineOptions {
  catalog: ProviderCatalog;
  policies: PolicyStore;
  health: HealthBook;
  limiter: ConcurrencyLimiter;
  weights: () => ScoringWeights;
  outputTokens: () => number;
  retryAfterSeconds: () => number;
  /** Decisions, provider calls, tokens and cost, for `router.telemetry`. */
  telemetry?: RouterTelemetry;
}

interface HookCandidate {
  engine: string;
  score?: number;
}

/**
 * Decides (filters, scores, the `router.beforeRoute` hook) and executes with fallback down the
 * ordered list, feeding the circuit breakers and latency windows.
 */
export class RouterEngine {
  constructor(private readonly o: EngineOptions) {}

  /** The decision for `request`, after policy and `router.beforeRoute`; throws when nothing may run. */
  async route(request: RouteRequest, who?: { sub?: string; tenant_id?: string }): Promise<Decision> {
    await this.o.catalog.load();
    const providers = this.o.catalog.providers;
    let decision = decide(request, {
      providers,
      policies: this.o.policies.policies,
      health: this.o.health,
      weights: this.o.weights(),
      outputTokens: this.o.outputTokens(),
      knownIntents: this.o.catalog.knownIntents,
    });
    decision = await this.applyHook(request, decision, who);
    const reason = decision.deny ? 'denied' : decision.candidates.length === 0 ? 'no-route' : decision.chosenBy;
    this.o.telemetry?.decision(decision.candidates[0]?.route ?? 'none', reason);
    if (decision.deny) throw new AionError(decision.deny.code ?? 'ROUTE_DENIED', decision.deny.message, { status: 403 });
    if (decision.candidates.length === 0) throw noRouteError(decision, providers);
    return decision;
  }

  private async applyHook(request: RouteRequest, decision: Decision, who?: { sub?: string; tenant_id?: string }): Promise<Decision> {
    const payload = {
      request: {
        intent: request.intent,
        privacy: decision.privacy,
        preferred_engine: request.preferredEngine ?? null,
        budget_usd: request.budgetUsd ?? null,
        p95_ms: request.p95Ms ?? null,
        priority: request.priority,
        metadata: request.metadata,
        tenant_id: who?.tenant_id ?? null,
        sub: who?.sub ?? null,
      },
      decision: {
        chosen_by: decision.chosenBy,
        reason: decision.reason,
        candidates: decision.candidates.map((c) => ({
          engine: c.engine,
          route: c.route,
          tier: c.tier,
          score: c.score,
          estimated_cost_usd: c.estimatedCostUsd,
        })),
        filtered: decision.filtered,
        deny: null as null | { code?: string; message: string },
      },
    };
    const answer = (await aion.hooks.call<typeof payload | null>('router.beforeRoute', payload)) ?? payload;
    const d = answer?.decision;
    if (!d || typeof d !== 'object') return decision;
    if (d.deny && typeof d.deny.message === 'string')
      return { ...decision, deny: { code: typeof d.deny.code === 'string' ? d.deny.code : undefined, message: d.deny.message } };
    if (!Array.isArray(d.candidates)) return decision;
    const before = decision.candidates.map((c) => c.engine).join(',');
    const after = (d.candidates as HookCandidate[]).map((c) => c?.engine).join(',');
    if (before === after) return decision;
    // A tap may reorder, drop, or bring back a filtered engine; residency still holds.
    const byEngine = new Map(decision.candidates.map((c) => [c.engine, c]));
    const next: Candidate[] = [];
    for (const c of d.candidates as HookCandidate[]) {
      if (typeof c?.engine !== 'string') continue;
      const known = byEngine.get(c.engine) ?? this.candidateFor(c.engine, request);
      if (!known) continue;
      if (decision.privacy === 'local-only' && known.route !== 'local') continue;
      next.push(known);
    }
    const chosenBy: ChosenBy =
      d.chosen_by === 'policy-override' || d.chosen_by === 'preferred' || d.chosen_by === 'ai-router' ? d.chosen_by : decision.chosenBy;
    const reason = typeof d.reason === 'string' && d.reason !== decision.reason ? d.reason : `${decision.reason}; changed by router.beforeRoute`;
    return { ...decision, candidates: next, chosenBy, reason };
  }

  private candidateFor(engine: string, request: RouteRequest): Candidate | undefined {
    const slash = engine.indexOf('/');
    const p = this.o.catalog.get(engine.slice(0, slash));
    const m = p?.models.find((x) => x.id === engine.slice(slash + 1));
    if (!p || !m || m.embed) return undefined;
    const input = estimateInputTokens(request.messages, request.tools);
    const output = request.maxTokens ?? this.o.outputTokens();
    return candidateOf(p, m, request.intent, estimateCostUsd(m, input, output));
  }

  /** Runs the candidates in order until one answers; retryable failures before the first token fall back. */
  async execute(decision: Decision, request: RouteRequest, abort: Abort, observer: ExecutionObserver = {}, stream = true): Promise<ExecutionResult> {
    const started = performance.now();
    const result: ExecutionResult = { status: 'ERROR', text: '', toolCalls: [], inputTokens: 0, outputTokens: 0, costUsd: 0, latencyMs: 0, attempts: [] };
    const failures: Outcome[] = [];
    let saturated = 0;
    let previous: Attempt | undefined;
    /** Characters of the answer given before a cut, when the next engine is to continue it. */
    let resumeFrom: number | undefined;
    let chatRequest: ChatRequest = {
      model: '',
      messages: request.messages,
      tools: request.tools,
      toolChoice: request.toolChoice,
      temperature: request.temperature,
      maxTokens: request.maxTokens,
      stop: request.stop,
      stream,
    };
    for (let i = 0; i < decision.candidates.length; i++) {
      const c = decision.candidates[i]!;
      if (abort.token.isCancellationRequested) break;
      // Residency above all: nothing but a local engine runs a local-only request, whatever changed the list.
      if (decision.privacy === 'local-only' && c.route !== 'local') {
        result.attempts.push({ engine: c.engine, outcome: 'skipped', code: 'RESIDENCY', message: 'privacy local-only' });
        continue;
      }
      // Nor does another user's device, whatever a decision tap put back.
      if (c.owner && !mayUseModel(c, request)) {
        result.attempts.push({ engine: c.engine, outcome: 'skipped', code: 'OWNER', message: "another user's model" });
        continue;
      }
      const health = this.o.health.get(c.engine);
      if (!health.breaker.tryAcquire()) {
        result.attempts.push({
          engine: c.engine,
          outcome: 'skipped',
          code: 'CIRCUIT_OPEN',
          message: `circuit open; next probe in ${Math.ceil(health.breaker.retryInMs / 1000)} s`,
        });
        continue;
      }
      const limit = this.o.catalog.get(c.provider)?.maxConcurrency ?? Infinity;
      if (!this.o.limiter.tryAcquire(c.provider, limit)) {
        health.breaker.release();
        saturated++;
        result.attempts.push({ engine: c.engine, outcome: 'skipped', code: 'SATURATED', message: `${limit} calls in flight` });
        continue;
      }
      result.candidate = c;
      observer.attempt?.(c, i, previous);
      if (resumeFrom !== undefined) {
        // The previous engine was cut mid-answer: this one continues it, seeing what was already said.
        chatRequest = {
          ...chatRequest,
          messages: [...request.messages, { role: 'assistant', content: result.text }, { role: 'user', content: RESUME_INSTRUCTION }],
        };
      }
      const t0 = performance.now();
      let outcome: Outcome;
      try {
        // Only a model with an owner learns whom the request is for, and checks it again.
        const caller = c.owner ? { caller: { tenant_id: request.tenantId ?? 'default', user_id: request.userId ?? '' } } : {};
        outcome = await this.call(c, { ...chatRequest, model: c.model, ...caller }, abort, observer, result, t0);
      } finally {
        this.o.limiter.release(c.provider);
      }
      const latency = Math.round((performance.now() - t0) * 100) / 100;
      if (outcome.ok) {
        health.breaker.success();
        health.latency.add(latency);
        if (result.firstTokenMs !== undefined) health.firstToken.add(result.firstTokenMs);
        result.attempts.push({
          engine: c.engine,
          outcome: 'ok',
          latency_ms: latency,
          ...(resumeFrom !== undefined ? { resumed_after_chars: resumeFrom } : {}),
        });
        this.o.telemetry?.call(c.engine, 'ok', latency);
        result.status = 'OK';
        break;
      }
      if (outcome.code === 'CANCELLED' && abort.token.isCancellationRequested) {
        health.breaker.release();
        result.attempts.push({ engine: c.engine, outcome: 'failed', code: 'CANCELLED', latency_ms: latency });
        this.o.telemetry?.call(c.engine, 'cancelled', latency, 'CANCELLED');
        break;
      }
      if (NOT_UPSTREAM_FAULTS.has(outcome.code ?? '')) health.breaker.release();
      else health.breaker.failure(outcome.retryAfterMs);
      previous = { engine: c.engine, outcome: 'failed', code: outcome.code, message: outcome.message, latency_ms: latency };
      result.attempts.push(previous);
      this.o.telemetry?.call(c.engine, 'error', latency, outcome.code ?? 'PROVIDER_UNAVAILABLE');
      failures.push(outcome);
      // A cut answer goes on with the next engine only when the client asked for it, and only text (a
      // half-made tool call cannot be continued).
      const resumable = request.failover === 'resume' && outcome.afterFirstToken && result.toolCalls.length === 0 && outcome.code !== 'CANCELLED';
      if (resumable) {
        resumeFrom = result.text.length;
        continue;
      }
      if (!outcome.fallback || outcome.afterFirstToken) break;
    }
    result.latencyMs = Math.round((performance.now() - started) * 100) / 100;
    if (result.status === 'OK') {
      const c = result.candidate!;
      if (result.inputTokens === 0) result.inputTokens = estimateInputTokens(request.messages, request.tools);
      if (result.outputTokens === 0) result.outputTokens = Math.ceil((result.text.length + result.toolCalls.reduce((n, t) => n + t.arguments.length, 0)) / 4);
      result.costUsd = Math.round(((result.inputTokens / 1000) * c.costPer1kInput + (result.outputTokens / 1000) * c.costPer1kOutput) * 1e8) / 1e8;
      this.o.telemetry?.usage(c.engine, result.inputTokens, result.outputTokens, result.costUsd);
      return result;
    }
    if (abort.token.isCancellationRequested) {
      result.status = abort.reason === 'timeout' ? 'TIMEOUT' : 'CANCELED';
      result.error =
        abort.reason === 'timeout'
          ? { code: 'TIMEOUT', message: 'the task did not finish within its timeout; the provider call was aborted' }
          : { code: 'CANCELLED', message: 'the task was cancelled; the provider call was aborted' };
      return result;
    }
    const last = failures[failures.length - 1];
    if (!last) {
      const skipped = result.attempts.map((a) => `${a.engine}: ${a.code}`).join('; ');
      result.error =
        saturated > 0
          ? {
              code: 'SATURATED',
              message: `every candidate provider is at its concurrency limit (${skipped}); retry shortly`,
              status: 503,
              retryAfterMs: this.o.retryAfterSeconds() * 1000,
            }
          : { code: 'PROVIDERS_UNAVAILABLE', message: `no candidate could be called (${skipped})`, status: 503, retryAfterMs: 5000 };
      return result;
    }
    const tried = result.attempts.filter((a) => a.outcome === 'failed');
    const message =
      tried.length > 1
        ? `all ${tried.length} engines tried failed: ${tried.map((a) => `${a.engine}: ${a.code} (${a.message})`).join('; ')}`
        : `${tried[0]?.engine}: ${last.message}`;
    result.error = { code: last.code ?? 'PROVIDER_UNAVAILABLE', message, status: last.status, retryAfterMs: last.retryAfterMs };
    return result;
  }

  private async call(c: Candidate, request: ChatRequest, abort: Abort, observer: ExecutionObserver, result: ExecutionResult, t0: number): Promise<Outcome> {
    let produced = false;
    /** Stops reading the provider's stream (set while it is read). */
    let stopReading: (() => void) | undefined;
    const stop = abort.token.onCancellationRequested(() => stopReading?.());
    /** Takes one event into the result; the outcome once the answer is over. */
    const take = (e: ProviderEvent): Outcome | undefined => {
      switch (e.type) {
        case 'token':
          if (!produced) result.firstTokenMs = Math.round((performance.now() - t0) * 100) / 100;
          produced = true;
          result.text += e.text;
          observer.token?.(e.text);
          return undefined;
        case 'tool_call':
          if (!produced) result.firstTokenMs = Math.round((performance.now() - t0) * 100) / 100;
          produced = true;
          result.toolCalls.push(e.call);
          observer.toolCall?.(e.call);
          return undefined;
        case 'usage':
          result.inputTokens = e.inputTokens;
          result.outputTokens = e.outputTokens;
          return undefined;
        case 'done':
          result.finishReason = e.finishReason;
          return { ok: true, afterFirstToken: produced, fallback: false };
        case 'error':
          return {
            ok: false,
            code: e.code,
            message: e.message,
            status: e.status,
            retryAfterMs: e.retryAfterMs,
            afterFirstToken: produced || e.afterFirstToken,
            // 404: this engine lacks the model; another may have it.
            fallback: e.code === 'PROVIDER_BAD_REQUEST' ? e.status === 404 : e.code !== 'CANCELLED',
          };
      }
      return undefined;
    };
    try {
      const impl = await this.o.catalog.implementation(c.provider);
      if (request.stream === false && typeof impl.complete === 'function') {
        // A whole answer from a provider that gives one at once: no stream to pull event by event.
        const events = await impl.complete(request, abort.token);
        for (const e of events) {
          const outcome = take(e);
          if (outcome) return outcome;
        }
      } else {
        const events = (await impl.chat(request, abort.token)) as AsyncIterable<ProviderEvent>;
        // Taken as they come: a queue (what provider-kit's providers answer) hands its events over by
        // push, without a promise per event; any other stream is pulled. The outcome settles at `done`
        // or `error`; a stream that goes on after it is read to its end, so its connection is released.
        const outcome = await new Promise<Outcome | undefined>((resolve, reject) => {
          let settled = false;
          const settle = (o: Outcome | undefined) => {
            if (settled) return;
            settled = true;
            resolve(o);
          };
          stopReading = () => {
            stopEach();
            settle(undefined);
          };
          const stopEach = forEachItem(
            events,
            (e) => {
              if (settled) return;
              const done = take(e);
              if (done) settle(done);
            },
            (err) => {
              if (settled) return;
              settled = true;
              if (err === undefined) resolve(undefined);
              else reject(err);
            },
          );
          if (abort.token.isCancellationRequested) stopReading();
        });
        if (outcome) return outcome;
      }
      if (abort.token.isCancellationRequested) return { ok: false, code: 'CANCELLED', message: 'cancelled', afterFirstToken: produced, fallback: false };
      return {
        ok: false,
        code: 'PROVIDER_STREAM_CUT',
        message: 'the provider stream ended without finishing the answer',
        afterFirstToken: produced,
        fallback: true,
      };
    } catch (err) {
      if (abort.token.isCancellationRequested) return { ok: false, code: 'CANCELLED', message: 'cancelled', afterFirstToken: produced, fallback: false };
      const code = isAionError(err) ? String(err.code) : 'PROVIDER_UNAVAILABLE';
      if (code === 'CONTRIBUTION_NOT_FOUND' || code === 'EXTENSION_HOST_CRASHED') this.o.catalog.forget(c.provider);
      return {
        ok: false,
        code: isProviderErrorCode(code) ? code : 'PROVIDER_UNAVAILABLE',
        message: `${code}: ${(err as Error).message}`,
        afterFirstToken: produced,
        fallback: code !== 'CANCELLED',
      };
    } finally {
      stop.dispose();
    }
  }

  engineInfo(decision: Decision | undefined, result?: Pick<ExecutionResult, 'candidate' | 'attempts' | 'status'>): EngineInfo {
    const c = result?.candidate ?? decision?.candidates[0];
    let reason = decision?.reason ?? '';
    const fellBack = result?.attempts.filter((a) => a.outcome !== 'ok') ?? [];
    if (result?.status === 'OK' && fellBack.length > 0) reason += `; fell back after ${fellBack.map((a) => `${a.engine} ${a.code}`).join(', ')}`;
    return { route: c?.route ?? null, provider: c?.provider ?? null, model: c?.model ?? null, chosen_by: decision?.chosenBy ?? 'ai-router', reason };
  }
}
