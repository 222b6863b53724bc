import { createHash } from 'node:crypto';
import { Ajv } from 'ajv';
import { AionError, ErrorCodes } from '@aion/extension-api';
import type { ChatMessage, ToolChoice, ToolDefinition } from '../providers/providerTypes.js';
import { skillSelectionSchema, type SkillSelection } from '../tools/skillTools.js';
import type { Priority, Privacy, RouteRequest } from '../types.js';

/** The body of `POST /v1/tasks` (and of one bulk operation, and of `tasks.submit`). */
export interface TaskInput {
  intent?: string;
  messages?: Array<{
    role: string;
    content: string | null;
    tool_calls?: Array<{ id: string; name?: string; arguments?: string; function?: { name: string; arguments: string } }>;
    tool_call_id?: string;
    name?: string;
  }>;
  params?: Record<string, unknown>;
  input?: string;
  tools?: unknown[];
  tool_choice?: unknown;
  temperature?: number;
  max_tokens?: number;
  stop?: string | string[];
  preferred_engine?: string;
  privacy?: Privacy;
  budget_usd?: number;
  p95_ms?: number;
  priority?: Priority;
  metadata?: Record<string, unknown>;
  timeout_ms?: number;
  /** `resume`: a stream cut mid-answer is continued by the next engine (also the `x-aion-failover` header). */
  failover?: 'resume' | 'none';
  /** Skills offered to the model as tools; the router runs the calls it makes (the tool loop). */
  skills?: SkillSelection;
  /** Model calls the tool loop may make (at most the configured skills.maxSteps). */
  max_steps?: number;
  /** true (up to the server's maximum) or milliseconds: answer with the result instead of 202. */
  wait?: boolean | number;
}

const messageSchema = {
  type: 'object',
  required: ['role'],
  properties: {
    role: { enum: ['system', 'user', 'assistant', 'tool', 'developer'] },
    content: { type: ['string', 'null'] },
    tool_calls: { type: 'array', items: { type: 'object' } },
    tool_call_id: { type: 'string' },
    name: { type: 'string' },
  },
};

export const taskInputSchema = {
  type: 'object',
  properties: {
    intent: { type: 'string', pattern: '^[a-z][a-z0-9_.-]*$', maxLength: 64 },
    messages: { type: 'array', minItems: 1, items: messageSchema },
    params: { type: 'object' },
    input: { type: 'string' },
    tools: { type: 'array', items: { type: 'object' } },
    tool_choice: { anyOf: [{ enum: ['auto', 'none', 'required'] }, { type: 'object' }] },
    temperature: { type: 'number', minimum: 0, maximum: 2 },
    max_tokens: { type: 'integer', minimum: 1 },
    stop: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
    preferred_engine: { type: 'string', minLength: 1 },
    privacy: { enum: ['local-only', 'allow-api', 'hybrid'] },
    budget_usd: { type: 'number', minimum: 0 },
    p95_ms: { type: 'integer', minimum: 1 },
    priority: { enum: ['low', 'normal', 'high'] },
    metadata: { type: 'object' },
    timeout_ms: { type: 'integer', minimum: 1 },
    skills: skillSelectionSchema,
    max_steps: { type: 'integer', minimum: 1 },
    wait: { anyOf: [{ type: 'boolean' }, { type: 'integer', minimum: 0 }] },
    failover: { enum: ['resume', 'none'] },
  },
  additionalProperties: false,
} as const;

/** `/messages/0/role` → `messages.0.role`: readable, and not mistaken for a file path when messages are sanitised. */
export function jsonPath(instancePath: string): string {
  return instancePath ? instancePath.slice(1).replace(/\//g, '.') : '(root)';
}

let validateTask: ReturnType<Ajv['compile']> | undefined;

/** Throws 400 naming every bad field. */
export function validateTaskInput(body: unknown, where = 'the request body'): TaskInput {
  validateTask ??= new Ajv({ allErrors: true, allowUnionTypes: true }).compile(taskInputSchema);
  if (!validateTask(body)) {
    const problems = (validateTask.errors ?? []).map(
      (e) =>
        `${jsonPath(e.instancePath)} ${e.message}${e.keyword === 'additionalProperties' ? ` (${(e.params as { additionalProperty: string }).additionalProperty})` : ''}`,
    );
    throw new AionError(ErrorCodes.VALIDATION_FAILED, `${where} is invalid: ${problems.join('; ')}`, { details: problems });
  }
  const input = body as TaskInput;
  if (!input.messages && !input.params && input.input === undefined) {
    throw new AionError(ErrorCodes.VALIDATION_FAILED, `${where} needs messages, params or input`);
  }
  return input;
}

/** System prompts for intents that take `params` instead of messages. */
const INTENT_PROMPTS: Record<string, (p: Record<string, unknown>) => string | undefined> = {
  summarize: () => 'Summarize the text the user sends. Be concise and keep the key facts.',
  extract: (p) =>
    `Extract ${p.fields ? `these fields: ${JSON.stringify(p.fields)}` : 'the requested information'} from the text the user sends. Answer with JSON only.`,
  translate: (p) =>
    `Translate the text the user sends into ${typeof p.target_language === 'string' ? p.target_language : 'English'}. Answer with the translation only.`,
  classify: (p) => `Classify the text the user sends${Array.isArray(p.labels) ? ` as one of: ${p.labels.join(', ')}` : ''}. Answer with the label only.`,
  code: () => 'You are a careful programming assistant.',
};

export function toMessages(input: TaskInput, intent: string): ChatMessage[] {
  if (input.messages) {
    return input.messages.map((m) => {
      const out: ChatMessage = { role: m.role === 'developer' ? 'system' : (m.role as ChatMessage['role']), content: m.content ?? null };
      if (m.tool_calls?.length)
        out.toolCalls = m.tool_calls.map((c) => ({
          id: c.id,
          name: c.function?.name ?? c.name ?? '',
          arguments: c.function?.arguments ?? c.arguments ?? '{}',
        }));
      if (m.tool_call_id) out.toolCallId = m.tool_call_id;
      if (m.name) out.name = m.name;
      return out;
    });
  }
  const params = input.params ?? {};
  const text = input.input ?? pickText(params);
  const messages: ChatMessage[] = [];
  const system = typeof params.instructions === 'string' ? params.instructions : INTENT_PROMPTS[intent]?.(params);
  if (system) messages.push({ role: 'system', content: system });
  messages.push({ role: 'user', content: text });
  return messages;
}

function pickText(params: Record<string, unknown>): string {
  for (const key of ['prompt', 'text', 'input', 'question', 'content']) if (typeof params[key] === 'string') return params[key] as string;
  return JSON.stringify(params);
}

/** Tools in the contract's shape, from it or from OpenAI's `{ type: "function", function: {...} }`. */
export function toTools(tools: unknown[] | undefined): ToolDefinition[] | undefined {
  if (!tools?.length) return undefined;
  return tools.map((t, i) => {
    const raw = t as { type?: string; function?: ToolDefinition; name?: string; description?: string; parameters?: object };
    const def = raw.type === 'function' && raw.function ? raw.function : raw;
    if (typeof def.name !== 'string' || !def.name) throw new AionError(ErrorCodes.VALIDATION_FAILED, `tools[${i}] has no name`);
    const out: ToolDefinition = { name: def.name, parameters: def.parameters ?? { type: 'object', properties: {} } };
    if (def.description) out.description = def.description;
    return out;
  });
}

export function toToolChoice(choice: unknown): ToolChoice | undefined {
  if (choice === undefined || choice === null) return undefined;
  if (choice === 'auto' || choice === 'none' || choice === 'required') return choice;
  const c = choice as { name?: string; function?: { name?: string } };
  const name = c.function?.name ?? c.name;
  return name ? { name } : undefined;
}

export interface RouteDefaults {
  intent: string;
  privacy: Privacy;
  priority: Priority;
}

export function toRouteRequest(input: TaskInput, defaults: RouteDefaults, tenantId?: string, userId?: string): RouteRequest {
  const intent = input.intent ?? defaults.intent;
  let privacy = input.privacy ?? defaults.privacy;
  if (input.preferred_engine === 'aion/local') privacy = 'local-only';
  return {
    intent,
    messages: toMessages(input, intent),
    tools: toTools(input.tools),
    toolChoice: toToolChoice(input.tool_choice),
    temperature: input.temperature,
    maxTokens: input.max_tokens,
    stop: typeof input.stop === 'string' ? [input.stop] : input.stop,
    preferredEngine: input.preferred_engine,
    privacy,
    budgetUsd: input.budget_usd,
    p95Ms: input.p95_ms,
    priority: input.priority ?? defaults.priority,
    metadata: input.metadata ?? {},
    ...(input.failover === 'resume' ? { failover: 'resume' as const } : {}),
    tenantId,
    userId,
  };
}

/** JSON with sorted keys, so the same body hashes the same whatever its key order. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value as object)
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
}

export function hashBody(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}

/** `x-aion-failover: resume | none`; anything else is refused, so a typo does not silently mean "none". */
export function failoverHeader(value: string | string[] | undefined): 'resume' | 'none' | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return undefined;
  if (v === 'resume' || v === 'none') return v;
  throw new AionError(ErrorCodes.VALIDATION_FAILED, `x-aion-failover must be resume or none, not ${JSON.stringify(v)}`);
}
