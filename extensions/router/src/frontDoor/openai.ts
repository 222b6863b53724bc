import { randomUUID } from 'node:crypto';
import { Ajv } from 'ajv';
import {
  AionError,
  AsyncQueue,
  CancellationTokenSource,
  ErrorCodes,
  type CancellationToken,
  type HttpRequestData,
  type HttpResponseData,
  type ServerSentEvent,
} from '@aion/extension-api';
import type { ProviderCatalog } from '../providers/catalog.js';
import type { Caller } from '../caller.js';
import { mayUseModel, routeHeader, sameModel } from '../decision/decision.js';
import { PROVIDER_ERROR_STATUS, type Abort, type ExecutionResult, type RouterEngine } from '../tasks/engine.js';
import { failoverHeader, jsonPath, toTools, toToolChoice, type RouteDefaults } from './input.js';
import type { ConcurrencyLimiter } from '../decision/limiter.js';
import type { ChatMessage } from '../providers/providerTypes.js';
import { mergeTools, skillSelectionSchema, type SkillSelection, type SkillTools } from '../tools/skillTools.js';
import { runToolLoop, type LoopObserver, type LoopResult } from '../tools/toolLoop.js';
import { base64Embedding, EMBED_INTENT, type EmbeddingRouter } from './embeddings.js';
import type { CatalogProvider, Decision, Priority, Privacy, RouteRequest } from '../types.js';

type Run = (observer: LoopObserver, stream: boolean) => Promise<ExecutionResult>;

/** The tool loop's steps and transcript, for a response's `aion` field. */
function loopOf(result: ExecutionResult): { steps?: LoopResult['steps']; transcript?: LoopResult['transcript'] } {
  const loop = result as Partial<LoopResult>;
  return loop.steps ? { steps: loop.steps, transcript: loop.transcript } : {};
}

/** Router aliases a client may send as `model`. */
export const ALIASES = {
  'aion/auto': 'the router picks the engine (privacy from the request or the server default)',
  'aion/local': 'the router picks a local engine; nothing leaves this machine or LAN',
} as const;

interface OpenAIMessage {
  role: string;
  content?: string | null | Array<{ type: string; text?: string }>;
  name?: string;
  tool_calls?: Array<{ id: string; type?: string; function: { name: string; arguments: string } }>;
  tool_call_id?: string;
}

interface ChatCompletionBody {
  model: string;
  messages: OpenAIMessage[];
  tools?: unknown[];
  tool_choice?: unknown;
  temperature?: number;
  max_tokens?: number;
  max_completion_tokens?: number;
  stop?: string | string[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  n?: number;
  metadata?: Record<string, unknown>;
  aion?: {
    intent?: string;
    privacy?: Privacy;
    budget_usd?: number;
    p95_ms?: number;
    priority?: Priority;
    metadata?: Record<string, unknown>;
    skills?: SkillSelection;
    max_steps?: number;
  };
}

const bodySchema = {
  type: 'object',
  required: ['model', 'messages'],
  properties: {
    model: { type: 'string', minLength: 1 },
    messages: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['role'],
        properties: {
          role: { enum: ['system', 'developer', 'user', 'assistant', 'tool', 'function'] },
          content: { anyOf: [{ type: 'string' }, { type: 'null' }, { type: 'array', items: { type: 'object', required: ['type'] } }] },
          tool_calls: {
            type: 'array',
            items: { type: 'object', required: ['id', 'function'], properties: { function: { type: 'object', required: ['name'] } } },
          },
        },
      },
    },
    tools: { type: 'array', items: { type: 'object' } },
    temperature: { type: 'number', minimum: 0, maximum: 2 },
    max_tokens: { type: ['integer', 'null'], minimum: 1 },
    max_completion_tokens: { type: ['integer', 'null'], minimum: 1 },
    stop: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }, { type: 'null' }] },
    stream: { type: ['boolean', 'null'] },
    n: { type: ['integer', 'null'], minimum: 1, maximum: 1 },
    aion: {
      type: 'object',
      properties: {
        intent: { type: 'string' },
        privacy: { enum: ['local-only', 'allow-api', 'hybrid'] },
        budget_usd: { type: 'number', minimum: 0 },
        p95_ms: { type: 'integer', minimum: 1 },
        priority: { enum: ['low', 'normal', 'high'] },
        metadata: { type: 'object' },
        skills: skillSelectionSchema,
        max_steps: { type: 'integer', minimum: 1 },
      },
      additionalProperties: false,
    },
  },
};

const aionSchema = bodySchema.properties.aion;

/** Most inputs one embeddings request may carry, as OpenAI's API allows. */
export const MAX_EMBEDDING_INPUTS = 2048;

const embeddingsSchema = {
  type: 'object',
  required: ['model', 'input'],
  properties: {
    model: { type: 'string', minLength: 1 },
    input: {
      anyOf: [
        { type: 'string', minLength: 1 },
        { type: 'array', minItems: 1, maxItems: MAX_EMBEDDING_INPUTS, items: { type: 'string', minLength: 1 } },
      ],
    },
    encoding_format: { enum: ['float', 'base64'] },
    dimensions: { type: 'integer', minimum: 1 },
    user: { type: 'string' },
    aion: { type: 'object', properties: { privacy: aionSchema.properties.privacy, metadata: { type: 'object' } }, additionalProperties: false },
  },
};

const inputText = { type: 'object', required: ['type'], properties: { type: { enum: ['input_text', 'output_text'] }, text: { type: 'string' } } };
const responsesSchema = {
  type: 'object',
  required: ['model', 'input'],
  properties: {
    model: { type: 'string', minLength: 1 },
    instructions: { type: ['string', 'null'] },
    input: {
      anyOf: [
        { type: 'string', minLength: 1 },
        {
          type: 'array',
          minItems: 1,
          items: {
            type: 'object',
            required: ['role', 'content'],
            properties: {
              type: { const: 'message' },
              role: { enum: ['system', 'developer', 'user', 'assistant'] },
              content: { anyOf: [{ type: 'string' }, { type: 'array', items: inputText }] },
            },
          },
        },
      ],
    },
    stream: { type: ['boolean', 'null'] },
    temperature: { type: ['number', 'null'], minimum: 0, maximum: 2 },
    max_output_tokens: { type: ['integer', 'null'], minimum: 1 },
    metadata: { type: ['object', 'null'] },
    aion: aionSchema,
  },
};

let validateBody: ReturnType<Ajv['compile']> | undefined;
let validateEmbeddings: ReturnType<Ajv['compile']> | undefined;
let validateResponses: ReturnType<Ajv['compile']> | undefined;

/** Refuses a body its schema does not accept, naming the first field at fault as OpenAI's `param`. */
function check(validate: ReturnType<Ajv['compile']>, body: unknown, what: string): void {
  if (validate(body)) return;
  const errors = validate.errors ?? [];
  const problems = errors.map((e) => `${jsonPath(e.instancePath)} ${e.message}`);
  const first = errors[0];
  const param = first ? (first.instancePath.split('/').filter(Boolean)[0] ?? (first.params as { missingProperty?: string }).missingProperty ?? null) : null;
  throw new AionError(ErrorCodes.VALIDATION_FAILED, `invalid ${what}: ${problems.join('; ')}`, { details: { param, problems } });
}

export interface FrontDoorOptions {
  engine: RouterEngine;
  catalog: ProviderCatalog;
  skills: SkillTools;
  embeddings: EmbeddingRouter;
  /** Calls in flight per API key (0: unlimited), as for tasks. */
  keyLimit: () => { limiter: ConcurrencyLimiter; limit: number; retryAfterSeconds: number };
  defaults: () => RouteDefaults & { timeoutMs: number };
  onFinished: (summary: FrontDoorSummary, caller: Caller) => void;
}

/** What the front door reports after each call (usage, the `router.afterTask` hook). */
export interface FrontDoorSummary {
  id: string;
  intent: string;
  decision: Decision;
  result: ExecutionResult;
}

function text(content: OpenAIMessage['content']): string | null {
  if (content === undefined || content === null) return null;
  if (typeof content === 'string') return content;
  const parts: string[] = [];
  for (const part of content) {
    if (part.type === 'text' && typeof part.text === 'string') parts.push(part.text);
    else throw new AionError(ErrorCodes.VALIDATION_FAILED, `message content of type ${part.type} is not supported; send text`);
  }
  return parts.join('');
}

/** The engine id of a chat model; an embedding model named for chat is the client's mistake. */
function chatModel(provider: string, m: { id: string; embed?: boolean }): string {
  if (m.embed)
    throw new AionError(
      ErrorCodes.VALIDATION_FAILED,
      `${provider}/${m.id} is an embedding model: call POST /v1/embeddings with it, or name a chat model (GET /v1/models)`,
      { details: { param: 'model' } },
    );
  return `${provider}/${m.id}`;
}

function header(req: HttpRequestData, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' && v ? v : undefined;
}

/** Whom a model list is for: a model with an owner is shown to that user only. */
export type ModelViewer = Pick<RouteRequest, 'tenantId' | 'userId'>;

/** The providers with only the models `who` may use: another user's device is not named to anyone else. */
export function visibleProviders(providers: readonly CatalogProvider[], who: ModelViewer): CatalogProvider[] {
  return providers.map((p) => (p.models.some((m) => m.owner) ? { ...p, models: p.models.filter((m) => mayUseModel(m, who)) } : p));
}

/** The OpenAI Chat Completions API over the router: `provider/model`, a bare model id, or `aion/*`. */
export class FrontDoor {
  constructor(private readonly o: FrontDoorOptions) {}

  /** `model` → preferred engine and privacy; 404 for a model nothing serves (or only another user's device does). */
  resolveModel(model: string, who: ModelViewer = {}): { preferred?: string; privacy?: Privacy } {
    if (model === 'aion/auto' || model === 'auto') return {};
    if (model === 'aion/local') return { privacy: 'local-only' };
    const providers = visibleProviders(this.o.catalog.providers, who);
    const slash = model.indexOf('/');
    if (slash > 0) {
      const p = providers.find((x) => x.id === model.slice(0, slash));
      const id = model.slice(slash + 1);
      if (p) {
        const m = p.models.find((x) => sameModel(x.id, id));
        if (m) return { preferred: chatModel(p.id, m) };
        throw new AionError(
          'MODEL_NOT_FOUND',
          `provider ${p.id} has no model ${id}; it serves ${p.models.map((x) => x.id).join(', ') || 'none'} (GET /v1/models)`,
          { status: 404, details: { param: 'model' } },
        );
      }
    }
    // A bare id: a chat model first, so an id that is also an embedding model elsewhere still chats.
    const matches = providers.flatMap((p) => p.models.filter((x) => sameModel(x.id, model)).map((m) => ({ p, m })));
    const found = matches.find(({ m }) => !m.embed) ?? matches[0];
    if (found) return { preferred: chatModel(found.p.id, found.m) };
    throw new AionError('MODEL_NOT_FOUND', `the model ${model} is not served here; use provider/model, aion/auto or aion/local (GET /v1/models lists them)`, {
      status: 404,
      details: { param: 'model' },
    });
  }

  /** `GET /v1/models/{id}`: a listed id, a bare model id or an alias; 404 (OpenAI's `model_not_found`) otherwise. */
  model(id: string, who: ModelViewer = {}): Record<string, unknown> {
    const list = this.models(who).data as Array<Record<string, unknown>>;
    const exact = list.find((m) => m.id === id);
    if (exact) return exact;
    const slash = id.indexOf('/');
    const found = list.find((m) => {
      const listed = String(m.id);
      const at = listed.indexOf('/');
      if (m.owned_by === 'aion') return false;
      return slash > 0
        ? listed.slice(0, at) === id.slice(0, slash) && sameModel(listed.slice(at + 1), id.slice(slash + 1))
        : sameModel(listed.slice(at + 1), id);
    });
    if (found) return found;
    throw new AionError(
      'MODEL_NOT_FOUND',
      `the model ${id} is not served here; GET /v1/models lists the ids (provider/model, URL-encoded in this path: openai%2Fgpt-4o-mini)`,
      { status: 404, details: { param: 'model' } },
    );
  }

  toRouteRequest(req: HttpRequestData, body: ChatCompletionBody, caller: Caller): RouteRequest {
    const d = this.o.defaults();
    const { preferred, privacy: forced } = this.resolveModel(body.model, { tenantId: caller.tenant, userId: caller.user });
    const a = body.aion ?? {};
    const privacyHeader = header(req, 'x-aion-privacy');
    if (privacyHeader && !['local-only', 'allow-api', 'hybrid'].includes(privacyHeader))
      throw new AionError(ErrorCodes.VALIDATION_FAILED, 'x-aion-privacy must be local-only, allow-api or hybrid');
    const messages: ChatMessage[] = body.messages.map((m) => {
      const role = m.role === 'developer' ? 'system' : m.role === 'function' ? 'tool' : (m.role as ChatMessage['role']);
      const out: ChatMessage = { role, content: text(m.content) };
      if (m.tool_calls?.length) out.toolCalls = m.tool_calls.map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments ?? '{}' }));
      if (m.tool_call_id) out.toolCallId = m.tool_call_id;
      if (m.name) out.name = m.name;
      return out;
    });
    const budget = a.budget_usd ?? (header(req, 'x-aion-budget-usd') ? Number(header(req, 'x-aion-budget-usd')) : undefined);
    const p95 = a.p95_ms ?? (header(req, 'x-aion-p95-ms') ? Number(header(req, 'x-aion-p95-ms')) : undefined);
    return {
      intent: a.intent ?? header(req, 'x-aion-intent') ?? d.intent,
      messages,
      tools: toTools(body.tools),
      toolChoice: toToolChoice(body.tool_choice),
      temperature: body.temperature ?? undefined,
      maxTokens: body.max_completion_tokens ?? body.max_tokens ?? undefined,
      stop: typeof body.stop === 'string' ? [body.stop] : (body.stop ?? undefined),
      preferredEngine: preferred,
      privacy: forced ?? a.privacy ?? (privacyHeader as Privacy | undefined) ?? d.privacy,
      budgetUsd: Number.isFinite(budget) ? budget : undefined,
      p95Ms: Number.isFinite(p95) ? p95 : undefined,
      priority: a.priority ?? (header(req, 'x-aion-priority') as Priority | undefined) ?? d.priority,
      metadata: { ...(body.metadata ?? {}), ...(a.metadata ?? {}) },
      ...(failoverHeader(req.headers['x-aion-failover']) === 'resume' ? { failover: 'resume' as const } : {}),
      tenantId: caller.tenant,
      userId: caller.user,
    };
  }

  async handle(req: HttpRequestData, token: CancellationToken, caller: Caller): Promise<HttpResponseData> {
    validateBody ??= new Ajv({ allErrors: true, allowUnionTypes: true }).compile(bodySchema);
    const body = req.body as ChatCompletionBody;
    if (!validateBody(body)) {
      const problems = (validateBody.errors ?? []).map((e) => `${jsonPath(e.instancePath)} ${e.message}`);
      throw new AionError(ErrorCodes.VALIDATION_FAILED, `invalid chat completion request: ${problems.join('; ')}`, { details: problems });
    }
    const call = await this.begin(req, body, token, caller, 'chatcmpl-');
    const { id, created, request, decision, run, abort, source, cleanup } = call;
    if (!body.stream) {
      const { result, route } = await this.runWhole(call, caller);
      const c = result.candidate!;
      const message: Record<string, unknown> = { role: 'assistant', content: result.toolCalls.length && !result.text ? null : result.text, refusal: null };
      if (result.toolCalls.length)
        message.tool_calls = result.toolCalls.map((t) => ({ id: t.id, type: 'function', function: { name: t.name, arguments: t.arguments } }));
      return {
        headers: { 'x-aion-route': route },
        body: {
          id,
          object: 'chat.completion',
          created,
          model: c.engine,
          system_fingerprint: null,
          choices: [{ index: 0, message, logprobs: null, finish_reason: result.finishReason ?? 'stop' }],
          usage: { prompt_tokens: result.inputTokens, completion_tokens: result.outputTokens, total_tokens: result.inputTokens + result.outputTokens },
          aion: { engine: this.o.engine.engineInfo(decision, result), latency_ms: result.latencyMs, cost_usd: result.costUsd, ...loopOf(result) },
        },
      };
    }
    return this.stream(id, created, body, request, decision, run, abort, source, cleanup, caller);
  }

  /** `POST /v1/embeddings`: an embedding model chosen under the residency rules, with fallback. */
  async embeddings(req: HttpRequestData, token: CancellationToken, caller: Caller): Promise<HttpResponseData> {
    validateEmbeddings ??= new Ajv({ allErrors: true, allowUnionTypes: true }).compile(embeddingsSchema);
    check(validateEmbeddings, req.body, 'embeddings request');
    const body = req.body as {
      model: string;
      input: string | string[];
      encoding_format?: 'float' | 'base64';
      dimensions?: number;
      aion?: { privacy?: Privacy; metadata?: Record<string, unknown> };
    };
    await this.o.catalog.load();
    const { preferred, privacy: forced } = this.o.embeddings.resolveModel(body.model);
    const privacyHeader = header(req, 'x-aion-privacy');
    if (privacyHeader && !['local-only', 'allow-api', 'hybrid'].includes(privacyHeader))
      throw new AionError(ErrorCodes.VALIDATION_FAILED, 'x-aion-privacy must be local-only, allow-api or hybrid');
    const request = {
      input: typeof body.input === 'string' ? [body.input] : body.input,
      dimensions: body.dimensions,
      privacy: forced ?? body.aion?.privacy ?? (privacyHeader as Privacy | undefined) ?? this.o.defaults().privacy,
      preferredEngine: preferred,
      tenantId: caller.tenant,
      userId: caller.user,
      metadata: body.aion?.metadata ?? {},
    };
    const decision = this.o.embeddings.decide(request);
    const releaseKeySlot = this.acquireKeySlot(caller);
    let result: Awaited<ReturnType<typeof this.o.embeddings.execute>>;
    try {
      result = await this.o.embeddings.execute(decision, request, token);
    } finally {
      releaseKeySlot();
    }
    const id = `embd-${randomUUID().replace(/-/g, '')}`;
    this.o.onFinished({ id, intent: EMBED_INTENT, decision, result }, caller);
    const route = routeHeader(decision, result.attempts);
    if (result.status !== 'OK') throw this.failure(result, route);
    const base64 = body.encoding_format === 'base64';
    return {
      headers: { 'x-aion-route': route },
      body: {
        object: 'list',
        data: result.embeddings.map((embedding, index) => ({ object: 'embedding', index, embedding: base64 ? base64Embedding(embedding) : embedding })),
        model: result.candidate!.engine,
        usage: { prompt_tokens: result.inputTokens, total_tokens: result.inputTokens },
        aion: { engine: this.o.engine.engineInfo(decision, result), latency_ms: result.latencyMs, cost_usd: result.costUsd },
      },
    };
  }

  /**
   * `POST /v1/responses`, text only: `instructions` and `input` become chat messages on the chat path;
   * the answer is one output message, or with `stream` the Responses API's events.
   */
  async responses(req: HttpRequestData, token: CancellationToken, caller: Caller): Promise<HttpResponseData> {
    validateResponses ??= new Ajv({ allErrors: true, allowUnionTypes: true }).compile(responsesSchema);
    check(validateResponses, req.body, 'responses request (text input only: a string, or messages whose content is a string or input_text parts)');
    const body = req.body as {
      model: string;
      instructions?: string | null;
      input: string | Array<{ role: string; content: string | Array<{ type: string; text?: string }> }>;
      stream?: boolean | null;
      temperature?: number | null;
      max_output_tokens?: number | null;
      metadata?: Record<string, unknown> | null;
      aion?: ChatCompletionBody['aion'];
    };
    const messages: OpenAIMessage[] = [];
    if (body.instructions) messages.push({ role: 'system', content: body.instructions });
    if (typeof body.input === 'string') messages.push({ role: 'user', content: body.input });
    else
      for (const m of body.input)
        messages.push({ role: m.role, content: typeof m.content === 'string' ? m.content : m.content.map((c) => c.text ?? '').join('') });
    const chat: ChatCompletionBody = {
      model: body.model,
      messages,
      temperature: body.temperature ?? undefined,
      max_tokens: body.max_output_tokens ?? undefined,
      metadata: body.metadata ?? undefined,
      aion: body.aion,
    };
    const call = await this.begin(req, chat, token, caller, 'resp_');
    const { id, request, decision, run, abort, source, cleanup } = call;
    const created = Math.floor(Date.now() / 1000);
    const messageId = `msg_${id.slice(5)}`;
    const envelope = (status: string, engine: string, text: string, result?: ExecutionResult) => ({
      id,
      object: 'response',
      created_at: created,
      status,
      model: engine,
      instructions: body.instructions ?? null,
      output:
        text === '' && status !== 'completed'
          ? []
          : [
              {
                type: 'message',
                id: messageId,
                status: status === 'completed' ? 'completed' : 'in_progress',
                role: 'assistant',
                content: [{ type: 'output_text', text, annotations: [] }],
              },
            ],
      usage: result
        ? {
            input_tokens: result.inputTokens,
            input_tokens_details: { cached_tokens: 0 },
            output_tokens: result.outputTokens,
            output_tokens_details: { reasoning_tokens: 0 },
            total_tokens: result.inputTokens + result.outputTokens,
          }
        : null,
      error: null,
      incomplete_details: result?.finishReason === 'length' ? { reason: 'max_output_tokens' } : null,
      max_output_tokens: body.max_output_tokens ?? null,
      temperature: body.temperature ?? null,
      metadata: body.metadata ?? {},
      parallel_tool_calls: false,
      tool_choice: 'auto',
      tools: [],
      ...(result ? { aion: { engine: this.o.engine.engineInfo(decision, result), latency_ms: result.latencyMs, cost_usd: result.costUsd } } : {}),
    });
    const statusOf = (r: ExecutionResult) => (r.finishReason === 'length' ? 'incomplete' : 'completed');
    if (!body.stream) {
      const { result, route } = await this.runWhole(call, caller);
      return { headers: { 'x-aion-route': route }, body: envelope(statusOf(result), result.candidate!.engine, result.text, result) };
    }
    const queue = new AsyncQueue<string>({
      onReturn: () => {
        abort.reason ??= 'disconnect';
        source.cancel();
      },
    });
    let engine = decision.candidates[0]!.engine;
    let final: ExecutionResult | undefined;
    let firstOutput!: () => void;
    const started = new Promise<void>((resolve) => (firstOutput = resolve));
    const execution = run({ attempt: (c) => (engine = c.engine), token: (t) => (queue.push(t), firstOutput()) }, true)
      .then((r) => (final = r))
      .finally(() => {
        cleanup();
        queue.end();
        firstOutput();
      });
    await started;
    if (final && final.status !== 'OK' && final.text === '') {
      this.o.onFinished({ id, intent: request.intent, decision, result: final }, caller);
      throw this.failure(final, routeHeader(decision, final.attempts));
    }
    const onFinished = this.o.onFinished;
    const failure = (r: ExecutionResult) => this.failure(r, '');
    async function* events(): AsyncGenerator<ServerSentEvent> {
      let sequence = 0;
      const event = (type: string, data: Record<string, unknown>): ServerSentEvent => ({ event: type, data: { type, sequence_number: sequence++, ...data } });
      const part = (text: string) => ({ type: 'output_text', text, annotations: [] });
      yield event('response.created', { response: envelope('in_progress', engine, '') });
      yield event('response.in_progress', { response: envelope('in_progress', engine, '') });
      yield event('response.output_item.added', {
        output_index: 0,
        item: { type: 'message', id: messageId, status: 'in_progress', role: 'assistant', content: [] },
      });
      yield event('response.content_part.added', { item_id: messageId, output_index: 0, content_index: 0, part: part('') });
      let text = '';
      for await (const delta of queue) {
        text += delta;
        yield event('response.output_text.delta', { item_id: messageId, output_index: 0, content_index: 0, delta, logprobs: [] });
      }
      const result = await execution;
      onFinished({ id, intent: request.intent, decision, result }, caller);
      if (result.status !== 'OK') {
        const e = failure(result);
        yield event('response.failed', { response: { ...envelope('failed', engine, text, result), error: { code: e.code, message: e.message } } });
        return;
      }
      yield event('response.output_text.done', { item_id: messageId, output_index: 0, content_index: 0, text, logprobs: [] });
      yield event('response.content_part.done', { item_id: messageId, output_index: 0, content_index: 0, part: part(text) });
      yield event('response.output_item.done', {
        output_index: 0,
        item: { type: 'message', id: messageId, status: 'completed', role: 'assistant', content: [part(text)] },
      });
      yield event(statusOf(result) === 'completed' ? 'response.completed' : 'response.incomplete', {
        response: envelope(statusOf(result), engine, text, result),
      });
    }
    return { headers: { 'x-aion-route': routeHeader(decision, final?.attempts) }, stream: events() };
  }

  /** Routes a chat body and prepares its run: the key's slot, the timeout, cancellation by the client. */
  private async begin(req: HttpRequestData, body: ChatCompletionBody, token: CancellationToken, caller: Caller, idPrefix: string) {
    await this.o.catalog.load();
    const request = this.toRouteRequest(req, body, caller);
    const skills = body.aion?.skills ? await this.o.skills.resolve(body.aion.skills, caller.principal, body.aion.max_steps) : undefined;
    if (skills) request.tools = mergeTools(request.tools, skills);
    const decision = await this.o.engine.route(request, { sub: caller.sub, tenant_id: caller.tenant });
    const releaseKeySlot = this.acquireKeySlot(caller);
    const source = new CancellationTokenSource();
    const abort: Abort = { token: source.token };
    const link = token.onCancellationRequested(() => {
      abort.reason ??= 'disconnect';
      source.cancel();
    });
    const timer = setTimeout(() => {
      abort.reason ??= 'timeout';
      source.cancel();
    }, this.o.defaults().timeoutMs);
    const id = `${idPrefix}${randomUUID().replace(/-/g, '')}`;
    const created = Math.floor(Date.now() / 1000);
    const cleanup = () => {
      clearTimeout(timer);
      link.dispose();
      releaseKeySlot();
    };
    const run: Run = (observer, stream) =>
      skills
        ? runToolLoop({ engine: this.o.engine, skills: this.o.skills, set: skills, requestId: id, decision, request, abort, observer, stream })
        : this.o.engine.execute(decision, request, abort, observer, stream);
    return { id, created, request, decision, run, abort, source, cleanup };
  }

  /** Takes one of the caller's API-key slots (RATE_LIMITED when all are in flight); the answer gives it back. */
  private acquireKeySlot(caller: Caller): () => void {
    const { limiter, limit, retryAfterSeconds } = this.o.keyLimit();
    if (limit <= 0) return () => undefined;
    const keySlot = `key:${caller.apiKey}`;
    if (!limiter.tryAcquire(keySlot, limit)) {
      throw new AionError(ErrorCodes.RATE_LIMITED, `API key ${caller.apiKey} has ${limit} calls in flight, its limit; retry when one finishes`, {
        headers: { 'Retry-After': String(retryAfterSeconds) },
      });
    }
    return () => limiter.release(keySlot);
  }

  /** Runs a begun call to its whole (non-streamed) answer, records it, and throws a failure as its HTTP error. */
  private async runWhole(
    call: { id: string; request: RouteRequest; decision: Decision; run: Run; cleanup: () => void },
    caller: Caller,
  ): Promise<{ result: ExecutionResult; route: string }> {
    let result: ExecutionResult;
    try {
      result = await call.run({}, false);
    } finally {
      call.cleanup();
    }
    this.o.onFinished({ id: call.id, intent: call.request.intent, decision: call.decision, result }, caller);
    const route = routeHeader(call.decision, result.attempts);
    if (result.status !== 'OK') throw this.failure(result, route);
    return { result, route };
  }

  private failure(result: ExecutionResult, route: string): AionError {
    const e = result.error ?? { code: 'PROVIDER_UNAVAILABLE', message: 'the call failed' };
    const headers: Record<string, string> = { 'x-aion-route': route };
    if (e.retryAfterMs !== undefined) headers['Retry-After'] = String(Math.max(1, Math.ceil(e.retryAfterMs / 1000)));
    const loop = loopOf(result);
    return new AionError(e.code, e.message, {
      status: e.status && e.code === 'SATURATED' ? e.status : (PROVIDER_ERROR_STATUS[e.code] ?? e.status ?? 502),
      headers,
      details: loop.steps ? loop : undefined,
    });
  }

  /**
   * Waits for the first output (so a failure before it is a proper HTTP error with a status), then
   * streams OpenAI chunks: role, content and tool-call deltas, the finish chunk, usage, `[DONE]`.
   * Each chunk is made as its token arrives and pushed to a queue the edge drains by push: no
   * generator pulled, and no promise made, per chunk.
   */
  private async stream(
    id: string,
    created: number,
    body: ChatCompletionBody,
    request: RouteRequest,
    decision: Decision,
    run: Run,
    abort: Abort,
    source: CancellationTokenSource,
    cleanup: () => void,
    caller: Caller,
  ): Promise<HttpResponseData> {
    const queue = new AsyncQueue<ServerSentEvent>({
      onReturn: () => {
        abort.reason ??= 'disconnect';
        source.cancel();
      },
    });
    let tools = 0;
    let engine = decision.candidates[0]!.engine;
    let final: ExecutionResult | undefined;
    let firstOutput!: () => void;
    const started = new Promise<void>((resolve) => (firstOutput = resolve));
    const chunk = (delta: Record<string, unknown>, finishReason: string | null = null, extra?: Record<string, unknown>): ServerSentEvent => ({
      data: {
        id,
        object: 'chat.completion.chunk',
        created,
        model: engine,
        system_fingerprint: null,
        choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
        ...extra,
      },
    });
    let opened = false;
    /** Pushes `event`, after the role chunk that opens every answer. */
    const push = (event: ServerSentEvent) => {
      if (!opened) {
        opened = true;
        queue.push(chunk({ role: 'assistant', content: '' }));
      }
      queue.push(event);
    };
    const execution = run(
      {
        attempt: (c) => (engine = c.engine),
        token: (t) => {
          push(chunk({ content: t }));
          firstOutput();
        },
        toolCall: (call) => {
          push(chunk({ tool_calls: [{ index: tools++, id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments } }] }));
          firstOutput();
        },
        // Loop events ride on chunks with an empty delta, which every OpenAI client reads as "nothing new".
        tool: (data) => {
          push(chunk({}, null, { aion: { tool: data } }));
          firstOutput();
        },
        // A step event alone does not start the response: a first model call that fails is still an HTTP error.
        step: (data) => push(chunk({}, null, { aion: { step: data } })),
      },
      true,
    )
      .then((r) => (final = r))
      .finally(() => {
        cleanup();
        firstOutput();
      });
    await started;
    if (final && final.status !== 'OK' && final.text === '' && final.toolCalls.length === 0) {
      this.o.onFinished({ id, intent: request.intent, decision, result: final }, caller);
      throw this.failure(final, routeHeader(decision, final.attempts));
    }
    const includeUsage = body.stream_options?.include_usage === true;
    const route = routeHeader(decision, final?.attempts);
    // The rest of the answer once the run ends: the finish chunk (or the error), usage, [DONE].
    execution
      .then((result) => {
        this.o.onFinished({ id, intent: request.intent, decision, result }, caller);
        if (result.status !== 'OK') {
          const e = this.failure(result, '');
          push({ data: { error: { code: e.code, message: e.message, type: 'server_error', param: null } } });
          return queue.end();
        }
        const transcript = (result as Partial<LoopResult>).transcript;
        push(chunk({}, result.finishReason ?? 'stop', { aion: { engine: this.o.engine.engineInfo(decision, result), ...(transcript ? { transcript } : {}) } }));
        if (includeUsage) {
          const usage = { prompt_tokens: result.inputTokens, completion_tokens: result.outputTokens, total_tokens: result.inputTokens + result.outputTokens };
          queue.push({ data: { id, object: 'chat.completion.chunk', created, model: engine, system_fingerprint: null, choices: [], usage } });
        }
        queue.push({ data: '[DONE]' });
        queue.end();
      })
      // A failed run, or a failure finishing it, ends the stream with an error frame rather than leaving it open.
      .catch((err: unknown) => queue.end(err ?? new Error('the answer could not be finished')));
    return { headers: { 'x-aion-route': route }, stream: queue };
  }

  /** `GET /v1/models`: the router aliases, then every model of every usable provider the viewer may use. */
  models(who: ModelViewer = {}): Record<string, unknown> {
    const data: Array<Record<string, unknown>> = Object.entries(ALIASES).map(([id, description]) => ({
      id,
      object: 'model',
      created: 0,
      owned_by: 'aion',
      aion: { alias: true, description },
    }));
    for (const p of visibleProviders(this.o.catalog.providers, who)) {
      if (p.availability !== 'configured' && p.availability !== 'detected') continue;
      for (const m of p.models) {
        data.push({
          id: `${p.id}/${m.id}`,
          object: 'model',
          created: 0,
          owned_by: p.id,
          aion: {
            route: p.route,
            tier: p.tier,
            residency: m.residency ?? p.residency,
            context_window: m.contextWindow,
            cost_per_1k_input: m.costPer1kInput,
            cost_per_1k_output: m.costPer1kOutput,
            capabilities: m.capabilities,
            tools: m.tools,
            streaming: m.streaming,
            embed: m.embed === true,
          },
        });
      }
    }
    return { object: 'list', data };
  }
}
