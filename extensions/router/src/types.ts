import type { ChatRequest, ModelOwner, ProviderModel, ProviderResidency, ProviderRoute, ProviderTier } from './providers/providerTypes.js';

export type Privacy = 'local-only' | 'allow-api' | 'hybrid';
export type Priority = 'low' | 'normal' | 'high';
export type ChosenBy = 'ai-router' | 'policy-override' | 'preferred';

/** What the router decides on: the request, normalised, plus who asks. */
/** The chat parts are a provider request's own (`ChatRequest`), so the two never drift apart. */
export interface RouteRequest extends Pick<ChatRequest, 'messages' | 'tools' | 'toolChoice' | 'temperature' | 'maxTokens' | 'stop'> {
  intent: string;
  /** `provider/model`, `provider`, `aion/auto` or `aion/local`. */
  preferredEngine?: string;
  privacy: Privacy;
  budgetUsd?: number;
  p95Ms?: number;
  priority: Priority;
  metadata: Record<string, unknown>;
  /**
   * `resume`: when an engine's stream is cut after some of the answer, the next engine continues it
   * (the partial answer goes back as an assistant turn) instead of the task failing.
   */
  failover?: 'resume';
  tenantId?: string;
  /** The user the request acts for (`Caller.user`): a model with an `owner` is a candidate for that user only. */
  userId?: string;
}

/** A provider as the router sees it: the contributed entry, the operator's overrides, and whether it answers. */
export interface CatalogProvider {
  id: string;
  extensionId: string;
  displayName: string;
  route: ProviderRoute;
  tier: ProviderTier;
  residency: ProviderResidency;
  models: ProviderModel[];
  /** `configured`: enabled by the operator; `detected`: answered a probe; `unavailable`: did not (see `detail`); `disabled`: turned off. */
  availability: 'configured' | 'detected' | 'unavailable' | 'disabled' | 'probing';
  detail?: string;
  maxConcurrency: number;
  /** The manifest declares no models: the provider lists them at run time, and may list none. */
  listsModels?: boolean;
  /** Set when the provider needs a GPU this server does not have: it stays unavailable, whatever its probe says. */
  noAccelerator?: string;
}

export type FilterName = 'policy' | 'residency' | 'availability' | 'capability' | 'tools' | 'context' | 'budget' | 'circuit';

export interface Scores {
  capability: number;
  cost: number;
  latency: number;
  tier: number;
}

export interface Candidate {
  /** `provider/model` */
  engine: string;
  provider: string;
  model: string;
  route: ProviderRoute;
  tier: ProviderTier;
  residency: ProviderResidency;
  /** The one user this engine serves (a model on that user's device). */
  owner?: ModelOwner;
  estimatedCostUsd: number;
  costPer1kInput: number;
  costPer1kOutput: number;
  score: number;
  scores: Scores;
}

export interface Filtered {
  engine: string;
  filter: FilterName;
  detail: string;
}

export interface Decision {
  candidates: Candidate[];
  filtered: Filtered[];
  chosenBy: ChosenBy;
  reason: string;
  /** Set by policy or a `router.beforeRoute` tap: the request must not run. */
  deny?: { code?: string; message: string };
  /** The privacy mode in force after policy (policy may only make it stricter). */
  privacy: Privacy;
  /** When engines were filtered only by open circuits: how soon the first one lets a probe through. */
  retryAfterMs?: number;
}

/** `engine` of the canonical result. */
export interface EngineInfo {
  route: ProviderRoute | null;
  provider: string | null;
  model: string | null;
  chosen_by: ChosenBy;
  reason: string;
}

export interface Attempt {
  engine: string;
  outcome: 'ok' | 'failed' | 'skipped';
  code?: string;
  message?: string;
  latency_ms?: number;
  /** In the tool loop: the model call this attempt belongs to. */
  step?: number;
  /** `x-aion-failover: resume`: this engine continued an answer the previous one was cut in, after these characters. */
  resumed_after_chars?: number;
}
