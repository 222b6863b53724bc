import assert from 'node:assert/strict';
import { decide, noRouteError, routeHeader, type DecisionContext } from '../src/decision/decision.js';
import { HealthBook } from '../src/providers/health.js';
import type { PolicyDocument } from '../src/policies/policy.js';
import type { ProviderModel } from '../src/providers/providerTypes.js';
import type { CatalogProvider, RouteRequest } from '../src/types.js';

const model = (id: string, over: Partial<ProviderModel> = {}): ProviderModel => ({
  id,
  contextWindow: 8192,
  costPer1kInput: 0,
  costPer1kOutput: 0,
  capabilities: { chat: 0.6, code: 0.5, summarize: 0.6 },
  tools: true,
  streaming: true,
  ...over,
});

function providers(): CatalogProvider[] {
  return [
    {
      id: 'ollama',
      extensionId: 'aion.provider-ollama',
      displayName: 'Ollama',
      route: 'local',
      tier: 'local',
      residency: { scope: 'host' },
      models: [model('llama3.1', { tools: false }), model('qwen-coder', { capabilities: { chat: 0.4, code: 0.8 } })],
      availability: 'detected',
      maxConcurrency: 4,
    },
    {
      id: 'openai',
      extensionId: 'aion.provider-openai',
      displayName: 'OpenAI',
      route: 'api',
      tier: 'cloud-standard',
      residency: { scope: 'vendor', vendor: 'openai' },
      models: [
        model('gpt-4o-mini', {
          contextWindow: 128000,
          costPer1kInput: 0.00015,
          costPer1kOutput: 0.0006,
          capabilities: { chat: 0.75, code: 0.65, summarize: 0.75 },
        }),
        model('gpt-4o', { contextWindow: 128000, costPer1kInput: 0.0025, costPer1kOutput: 0.01, capabilities: { chat: 0.85, code: 0.8, summarize: 0.85 } }),
      ],
      availability: 'configured',
      maxConcurrency: 4,
    },
    {
      id: 'anthropic',
      extensionId: 'aion.provider-anthropic',
      displayName: 'Anthropic',
      route: 'api',
      tier: 'cloud-premium',
      residency: { scope: 'vendor', vendor: 'anthropic', region: 'us' },
      models: [model('claude', { contextWindow: 200000, costPer1kInput: 0.003, costPer1kOutput: 0.015, capabilities: { chat: 0.9, code: 0.9 } })],
      availability: 'unavailable',
      detail: 'PROVIDER_AUTH_FAILED',
      maxConcurrency: 4,
    },
  ];
}

function request(over: Partial<RouteRequest> = {}): RouteRequest {
  return { intent: 'chat', messages: [{ role: 'user', content: 'hello there' }], privacy: 'allow-api', priority: 'normal', metadata: {}, ...over };
}

function context(over: Partial<DecisionContext> = {}): DecisionContext {
  const list = over.providers ?? providers();
  const intents = new Set<string>();
  for (const p of list) for (const m of p.models) for (const k of Object.keys(m.capabilities)) intents.add(k);
  return {
    providers: list,
    policies: {},
    health: new HealthBook({ failureThreshold: 3, openMs: 1000, maxOpenMs: 8000 }),
    weights: { capability: 0.4, cost: 0.2, latency: 0.2, tier: 0.2 },
    outputTokens: 256,
    knownIntents: intents,
    ...over,
  };
}

const engines = (d: { candidates: Array<{ engine: string }> }) => d.candidates.map((c) => c.engine);
const filterOf = (d: { filtered: Array<{ engine: string; filter: string }> }, engine: string) => d.filtered.find((f) => f.engine === engine)?.filter;

describe('decision router: filters', () => {
  it('residency: local-only never lists an api provider, whatever else is asked', () => {
    const d = decide(request({ privacy: 'local-only', preferredEngine: 'openai/gpt-4o' }), context());
    assert.deepEqual(engines(d), ['ollama/llama3.1', 'ollama/qwen-coder']);
    assert.equal(filterOf(d, 'openai/gpt-4o'), 'residency');
    assert.equal(filterOf(d, 'openai/gpt-4o-mini'), 'residency');
    assert.equal(d.chosenBy, 'ai-router');
    assert.match(d.reason, /preferred openai\/gpt-4o was filtered \(residency/);
  });

  it('residency: a policy raises a request to local-only, never the other way', () => {
    const policies: PolicyDocument = { intents: { chat: { privacy: 'local-only' } } };
    const d = decide(request({ privacy: 'allow-api' }), context({ policies }));
    assert.equal(d.privacy, 'local-only');
    assert.ok(engines(d).every((e) => e.startsWith('ollama/')));
    const relaxed = decide(request({ privacy: 'local-only' }), context({ policies: { intents: { chat: { privacy: 'allow-api' } } } }));
    assert.equal(relaxed.privacy, 'local-only');
  });

  it('policy: allow and deny lists, engine globs and route/tier/vendor selectors', () => {
    const policies: PolicyDocument = {
      defaults: { deny: ['vendor:anthropic'] },
      intents: { code: { allow: ['ollama/qwen*', 'tier:cloud-standard'], deny: ['openai/gpt-4o'] } },
    };
    const d = decide(request({ intent: 'code' }), context({ policies }));
    assert.deepEqual(engines(d).sort(), ['ollama/qwen-coder', 'openai/gpt-4o-mini']);
    assert.equal(filterOf(d, 'ollama/llama3.1'), 'policy');
    assert.equal(filterOf(d, 'openai/gpt-4o'), 'policy');
    assert.equal(filterOf(d, 'anthropic/claude'), 'policy');
  });

  it('policy: a disabled tier is filtered', () => {
    const d = decide(request(), context({ policies: { tiers: { 'cloud-standard': { enabled: false } } } }));
    assert.equal(filterOf(d, 'openai/gpt-4o-mini'), 'policy');
    assert.ok(engines(d).every((e) => e.startsWith('ollama/')));
  });

  it('availability: providers that did not answer their probe are filtered with the reason', () => {
    const d = decide(request(), context());
    const f = d.filtered.find((x) => x.engine === 'anthropic/claude')!;
    assert.equal(f.filter, 'availability');
    assert.match(f.detail, /unavailable: PROVIDER_AUTH_FAILED/);
  });

  it('capability: models not rated for the intent, or below the policy minimum, are filtered', () => {
    const d = decide(request({ intent: 'code' }), context({ policies: { intents: { code: { min_capability: 0.6 } } } }));
    assert.deepEqual(engines(d).sort(), ['ollama/qwen-coder', 'openai/gpt-4o', 'openai/gpt-4o-mini']);
    assert.equal(filterOf(d, 'ollama/llama3.1'), 'capability');
    const summarize = decide(request({ intent: 'summarize' }), context());
    assert.equal(filterOf(summarize, 'ollama/qwen-coder'), 'capability');
    // An intent no provider rates is scored as chat rather than refused everywhere.
    assert.ok(decide(request({ intent: 'poetry' }), context()).candidates.length > 0);
  });

  it('tools: a request with tools skips models that cannot call them', () => {
    const d = decide(request({ tools: [{ name: 'lookup', parameters: { type: 'object' } }] }), context());
    assert.equal(filterOf(d, 'ollama/llama3.1'), 'tools');
    assert.ok(engines(d).includes('openai/gpt-4o-mini'));
  });

  it('context: prompts longer than a model takes are filtered', () => {
    const long = 'x'.repeat(8192 * 4);
    const d = decide(request({ messages: [{ role: 'user', content: long }] }), context());
    assert.equal(filterOf(d, 'ollama/llama3.1'), 'context');
    assert.deepEqual(engines(d).sort(), ['openai/gpt-4o', 'openai/gpt-4o-mini']);
  });

  it('budget: engines whose estimated cost exceeds the budget are filtered (request, policy and tier caps)', () => {
    const text = 'y'.repeat(40_000);
    const d = decide(request({ messages: [{ role: 'user', content: text }], budgetUsd: 0.005 }), context());
    assert.equal(filterOf(d, 'openai/gpt-4o'), 'budget');
    assert.ok(engines(d).includes('openai/gpt-4o-mini'));
    const capped = decide(
      request({ messages: [{ role: 'user', content: text }] }),
      context({ policies: { tiers: { 'cloud-standard': { max_budget_usd: 0.0001 } } } }),
    );
    assert.equal(filterOf(capped, 'openai/gpt-4o-mini'), 'budget');
  });

  it('circuit: an open circuit filters its engine until the probe time', () => {
    const ctx = context();
    const h = ctx.health.get('openai/gpt-4o-mini');
    for (let i = 0; i < 3; i++) h.breaker.failure();
    const d = decide(request(), ctx);
    const f = d.filtered.find((x) => x.engine === 'openai/gpt-4o-mini')!;
    assert.equal(f.filter, 'circuit');
    assert.match(f.detail, /circuit open after 3 failures/);
  });
});

describe('decision router: scores and order', () => {
  it('hybrid runs local first and keeps cloud for fallback', () => {
    const ctx = context();
    for (let i = 0; i < 20; i++) {
      ctx.health.get('openai/gpt-4o-mini').latency.add(100);
      ctx.health.get('ollama/llama3.1').latency.add(9000);
    }
    const d = decide(request({ privacy: 'hybrid', p95Ms: 1000 }), ctx);
    assert.equal(d.candidates[0]!.route, 'local');
    assert.match(d.reason, /hybrid: local first/);
    const routes = d.candidates.map((c) => c.route);
    assert.deepEqual(
      routes,
      [...routes].sort((a, b) => (a === b ? 0 : a === 'local' ? -1 : 1)),
    );
  });

  it('allow-api picks the best score, then falls back local before cloud', () => {
    const ctx = context();
    // gpt-4o-mini is fast, the local models slow: the SLA makes the cloud engine the best.
    for (let i = 0; i < 20; i++) {
      ctx.health.get('openai/gpt-4o-mini').latency.add(100);
      ctx.health.get('ollama/llama3.1').latency.add(9000);
      ctx.health.get('ollama/qwen-coder').latency.add(9000);
    }
    const d = decide(request({ privacy: 'allow-api', p95Ms: 1000 }), ctx);
    assert.equal(d.candidates[0]!.engine, 'openai/gpt-4o-mini');
    assert.deepEqual(
      d.candidates.slice(1).map((c) => c.route),
      ['local', 'local', 'api'],
    );
    assert.equal(d.candidates[0]!.scores.latency, 1);
    assert.ok(d.candidates.find((c) => c.engine === 'ollama/llama3.1')!.scores.latency < 0.2);
  });

  it('cost weighs in: the cheaper of two equal cloud models scores higher', () => {
    const d = decide(
      request({ privacy: 'allow-api' }),
      context({ providers: providers().filter((p) => p.id === 'openai'), weights: { capability: 0, cost: 1, latency: 0, tier: 0 } }),
    );
    assert.deepEqual(engines(d), ['openai/gpt-4o-mini', 'openai/gpt-4o']);
    assert.equal(d.candidates[0]!.scores.cost, 1);
    assert.equal(d.candidates[1]!.scores.cost, 0);
  });

  it('a preferred engine that passes the filters goes first', () => {
    const d = decide(request({ privacy: 'allow-api', preferredEngine: 'openai/gpt-4o' }), context());
    assert.equal(d.candidates[0]!.engine, 'openai/gpt-4o');
    assert.equal(d.chosenBy, 'preferred');
    const byProvider = decide(request({ privacy: 'allow-api', preferredEngine: 'openai' }), context());
    assert.equal(byProvider.candidates[0]!.provider, 'openai');
  });

  it('a policy override wins over the preference; fallback: false leaves no other engine', () => {
    const policies: PolicyDocument = {
      overrides: [{ name: 'summaries-local', match: { intent: 'summarize' }, engine: 'ollama/llama3.1', fallback: false, reason: 'summaries stay on the box' }],
    };
    const d = decide(request({ intent: 'summarize', preferredEngine: 'openai/gpt-4o' }), context({ policies }));
    assert.deepEqual(engines(d), ['ollama/llama3.1']);
    assert.equal(d.chosenBy, 'policy-override');
    assert.match(d.reason, /summaries stay on the box/);
  });

  it('overrides match on tenant and metadata', () => {
    const policies: PolicyDocument = { overrides: [{ match: { tenant: 'acme', metadata: { team: 'research' } }, engine: 'openai/gpt-4o' }] };
    assert.equal(decide(request({ tenantId: 'acme', metadata: { team: 'research' } }), context({ policies })).chosenBy, 'policy-override');
    assert.equal(decide(request({ tenantId: 'acme', metadata: { team: 'sales' } }), context({ policies })).chosenBy, 'ai-router');
  });

  it('explains itself in one header line', () => {
    const d = decide(request({ privacy: 'local-only' }), context());
    const h = routeHeader(d, [{ engine: 'ollama/llama3.1', outcome: 'failed', code: 'PROVIDER_UNAVAILABLE' }]);
    assert.match(h, /^chosen_by=ai-router; privacy=local-only; candidates=ollama\/llama3\.1\(\d/);
    assert.match(h, /filtered=.*openai\/gpt-4o\(residency\)/);
    assert.match(h, /attempts=ollama\/llama3\.1\(PROVIDER_UNAVAILABLE\)/);
    assert.doesNotMatch(h, /[\r\n]/);
  });
});

describe('decision router: nothing to run', () => {
  it('with no provider at all, says how to add one', () => {
    const err = noRouteError(decide(request(), context({ providers: [] })), []);
    assert.equal(err.code, 'NO_PROVIDER');
    assert.equal(err.httpStatus, 503);
    assert.match(err.message, /OPENAI_API_KEY/);
    assert.match(err.message, /11434/);
  });

  it('when every engine is filtered, names the filters', () => {
    const list = providers();
    const d = decide(request({ privacy: 'local-only', tools: [{ name: 't', parameters: {} }], intent: 'summarize' }), context({ providers: list }));
    const err = noRouteError(d, list);
    assert.equal(err.code, 'NO_ROUTE');
    assert.equal(err.httpStatus, 422);
    assert.match(err.message, /privacy local-only/);
    assert.match(err.message, /by residency/);
  });
});
