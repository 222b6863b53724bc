/** Between aion.v1 messages (as @grpc/proto-loader reads them) and the router's task JSON. */
import { AionError, ErrorCodes } from '@aion/extension-api';

export const SCHEMA_VERSION = '1.0';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A `google.protobuf.Value` as proto-loader gives it with `oneofs: true`. */
interface ProtoValue {
  kind?: 'nullValue' | 'numberValue' | 'stringValue' | 'boolValue' | 'structValue' | 'listValue';
  nullValue?: unknown;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: ProtoStruct;
  listValue?: { values?: ProtoValue[] };
}
export interface ProtoStruct {
  fields?: Record<string, ProtoValue>;
}

export function structToJson(struct: ProtoStruct | null | undefined): Record<string, Json> | undefined {
  if (!struct?.fields) return undefined;
  const out: Record<string, Json> = {};
  for (const [key, value] of Object.entries(struct.fields)) out[key] = valueToJson(value);
  return out;
}

function valueToJson(value: ProtoValue): Json {
  switch (value.kind) {
    case 'numberValue':
      return value.numberValue ?? 0;
    case 'stringValue':
      return value.stringValue ?? '';
    case 'boolValue':
      return value.boolValue ?? false;
    case 'structValue':
      return structToJson(value.structValue) ?? {};
    case 'listValue':
      return (value.listValue?.values ?? []).map(valueToJson);
    default:
      return null;
  }
}

export function jsonToStruct(value: unknown): ProtoStruct | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const fields: Record<string, ProtoValue> = {};
  for (const [key, item] of Object.entries(value)) if (item !== undefined) fields[key] = jsonToValue(item);
  return { fields };
}

function jsonToValue(value: unknown): ProtoValue {
  if (value === null || value === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof value === 'number') return { numberValue: value };
  if (typeof value === 'string') return { stringValue: value };
  if (typeof value === 'boolean') return { boolValue: value };
  if (Array.isArray(value)) return { listValue: { values: value.map(jsonToValue) } };
  return { structValue: jsonToStruct(value) };
}

export interface TaskRequestMessage {
  schema_version?: string;
  intent?: string;
  messages?: Array<{ role?: string; content?: string; name?: string; tool_call_id?: string }>;
  input?: string;
  params?: ProtoStruct | null;
  preferred_engine?: string;
  sla?: { privacy?: string; budget_usd?: number; p95_ms?: number; priority?: string; timeout_ms?: number } | null;
  metadata?: Record<string, string>;
  idempotency_key?: string;
  wait?: boolean;
  max_tokens?: number;
  temperature?: number;
  stop?: string[];
}

/**
 * The router's task body for a request. `deadlineMs` (what is left of the call's deadline) caps the
 * task's timeout, so a task never outlives the caller's patience.
 */
export function taskBodyOf(request: TaskRequestMessage, deadlineMs: number | undefined): Record<string, unknown> {
  const version = request.schema_version ?? '';
  if (version !== '' && version.split('.')[0] !== SCHEMA_VERSION.split('.')[0]) {
    throw new AionError(ErrorCodes.BAD_REQUEST, `schema_version ${version} is not served here; send ${SCHEMA_VERSION} (or leave it empty)`);
  }
  const body: Record<string, unknown> = { intent: request.intent || 'chat' };
  if (request.messages?.length) {
    body.messages = request.messages.map((m) => ({
      role: m.role,
      content: m.content ?? '',
      ...(m.name ? { name: m.name } : {}),
      ...(m.tool_call_id ? { tool_call_id: m.tool_call_id } : {}),
    }));
  }
  if (request.input) body.input = request.input;
  const params = structToJson(request.params);
  if (params) body.params = params;
  if (request.preferred_engine) body.preferred_engine = request.preferred_engine;
  const sla = request.sla ?? {};
  if (sla.privacy) body.privacy = sla.privacy;
  if (sla.priority) body.priority = sla.priority;
  if (sla.budget_usd !== undefined && sla.budget_usd !== null) body.budget_usd = sla.budget_usd;
  if (sla.p95_ms !== undefined && sla.p95_ms !== null) body.p95_ms = sla.p95_ms;
  const timeouts = [sla.timeout_ms, deadlineMs].filter((t): t is number => typeof t === 'number' && t > 0);
  if (timeouts.length) body.timeout_ms = Math.max(1, Math.floor(Math.min(...timeouts)));
  if (request.metadata && Object.keys(request.metadata).length) body.metadata = request.metadata;
  if (request.max_tokens !== undefined && request.max_tokens !== null) body.max_tokens = request.max_tokens;
  if (request.temperature !== undefined && request.temperature !== null) body.temperature = request.temperature;
  if (request.stop?.length) body.stop = request.stop;
  if (!body.messages && body.input === undefined && !body.params) {
    throw new AionError(ErrorCodes.BAD_REQUEST, 'a TaskRequest needs messages, input or params');
  }
  return body;
}

/** The router's canonical task result as an aion.v1.TaskResult. */
export function taskResultOf(task: Record<string, any>): Record<string, unknown> {
  const engine = task.engine ?? null;
  const result = task.result ?? null;
  return {
    schema_version: task.schema_version ?? SCHEMA_VERSION,
    task_id: task.task_id,
    intent: task.intent ?? '',
    status: task.status ?? 'TASK_STATUS_UNSPECIFIED',
    engine: engine
      ? {
          route: engine.route ?? '',
          provider: engine.provider ?? '',
          model: engine.model ?? '',
          chosen_by: engine.chosen_by ?? '',
          reason: engine.reason ?? '',
        }
      : null,
    result: result
      ? {
          text: result.text ?? '',
          tool_calls: (result.tool_calls ?? []).map((c: any) => ({
            id: c.id ?? '',
            name: c.name ?? c.function?.name ?? '',
            arguments: typeof c.arguments === 'string' ? c.arguments : JSON.stringify(c.arguments ?? c.function?.arguments ?? {}),
          })),
          finish_reason: result.finish_reason ?? '',
        }
      : null,
    usage: task.usage
      ? { latency_ms: task.usage.latency_ms ?? 0, tokens: task.usage.tokens ?? { input: 0, output: 0, total: 0 }, cost_usd: task.usage.cost_usd ?? 0 }
      : null,
    error: task.error ? { code: task.error.code ?? '', message: task.error.message ?? '' } : null,
    created_at: task.created_at ?? '',
    updated_at: task.updated_at ?? '',
  };
}

/** A router task event ({ id, event, data }) as an aion.v1.TaskEvent. */
export function taskEventOf(e: { id: number; event: string; data: any }): Record<string, unknown> {
  const out: Record<string, unknown> = { id: e.id === Number.MAX_SAFE_INTEGER ? 0 : e.id, event: e.event };
  if (e.event === 'token') out.text = typeof e.data?.text === 'string' ? e.data.text : '';
  else if (e.event === 'done') out.task = taskResultOf(e.data);
  else if (e.event === 'error') {
    out.error = { code: e.data?.code ?? 'INTERNAL', message: e.data?.message ?? '' };
    if (e.data?.task) out.task = taskResultOf(e.data.task);
  } else out.data = jsonToStruct(e.data);
  return out;
}
