import type { Abort, ExecutionObserver, ExecutionResult, RouterEngine } from '../tasks/engine.js';
import type { ChatMessage, ToolCall } from '../providers/providerTypes.js';
import type { SkillSet, SkillTools, ToolCallResult } from './skillTools.js';
import type { Attempt, Decision, EngineInfo, RouteRequest } from '../types.js';

/** One model call of the loop, as the task record shows it. */
export interface ModelStep {
  step: number;
  type: 'model';
  engine: EngineInfo;
  finish_reason: string | null;
  text: string;
  tool_calls: ToolCall[];
  usage: { latency_ms: number; tokens: { input: number; output: number; total: number }; cost_usd: number };
  attempts: Attempt[];
  error?: { code: string; message: string };
}

/** One skill call of the loop. */
export interface ToolStep {
  step: number;
  type: 'tool';
  tool_call_id: string;
  name: string;
  skill: string;
  arguments: string;
  ok: boolean;
  error?: { code: string; message: string };
  duration_ms: number;
}

export type LoopStep = ModelStep | ToolStep;

/** A message the loop added to the conversation, in the OpenAI wire format (what a client sends back). */
export interface TranscriptMessage {
  role: 'assistant' | 'tool';
  content: string | null;
  tool_calls?: Array<{ id: string; type: 'function'; function: { name: string; arguments: string } }>;
  tool_call_id?: string;
  name?: string;
}

export interface LoopResult extends ExecutionResult {
  steps: LoopStep[];
  transcript: TranscriptMessage[];
}

export interface LoopObserver extends ExecutionObserver {
  /** A skill call is starting. */
  tool?(call: { step: number; id: string; name: string; arguments: string }): void;
  /** A step finished (model call or skill call), as it lands in `steps`. */
  step?(step: LoopStep): void;
}

const round = (n: number) => Math.round(n * 100) / 100;

function transcriptOf(m: ChatMessage): TranscriptMessage {
  if (m.role === 'tool') return { role: 'tool', tool_call_id: m.toolCallId, name: m.name, content: m.content };
  const out: TranscriptMessage = { role: 'assistant', content: m.content };
  if (m.toolCalls?.length) out.tool_calls = m.toolCalls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } }));
  return out;
}

export interface ToolLoopRun {
  engine: RouterEngine;
  skills: SkillTools;
  set: SkillSet;
  /** Recorded with each skill call as `<requestId>/<step>`. */
  requestId: string;
  decision: Decision;
  request: RouteRequest;
  abort: Abort;
  observer?: LoopObserver;
  /** As for `execute`: false calls the vendors' non-streaming endpoints. */
  stream?: boolean;
}

/**
 * Skills as tools: calls the model with the skills' tools; runs each skill it asks for through the
 * skills gatekeeper as the request's principal; hands the results back and calls it again, until it
 * answers without a skill call, asks for a tool of the client's (returned as the OpenAI API would),
 * or reaches the step limit. Every model call goes through `execute`, so residency, fallback and
 * circuit breakers hold for each.
 */
export async function runToolLoop({
  engine,
  skills,
  set,
  requestId,
  decision,
  request,
  abort,
  observer = {},
  stream = true,
}: ToolLoopRun): Promise<LoopResult> {
  const started = performance.now();
  const added: ChatMessage[] = [];
  const total: LoopResult = {
    status: 'ERROR',
    text: '',
    toolCalls: [],
    inputTokens: 0,
    outputTokens: 0,
    costUsd: 0,
    latencyMs: 0,
    attempts: [],
    steps: [],
    transcript: [],
  };
  const clientTools = new Set((request.tools ?? []).map((t) => t.name).filter((n) => !set.names.has(n)));
  const record = (s: LoopStep) => {
    total.steps.push(s);
    observer.step?.(s);
  };
  let toolChoice = request.toolChoice;
  for (let step = 1; ; step++) {
    // Text said before a tool call stays in the answer, a blank line before what follows.
    let separated = total.text === '';
    const r = await engine.execute(
      decision,
      { ...request, toolChoice, messages: [...request.messages, ...added] },
      abort,
      {
        attempt: observer.attempt,
        token: (text) => {
          if (!separated) {
            separated = true;
            observer.token?.('\n\n');
          }
          observer.token?.(text);
        },
        toolCall: (call) => {
          if (!set.names.has(call.name)) observer.toolCall?.(call);
        },
      },
      stream,
    );
    if (r.text) total.text = total.text ? `${total.text}\n\n${r.text}` : r.text;
    total.inputTokens += r.inputTokens;
    total.outputTokens += r.outputTokens;
    total.costUsd = Math.round((total.costUsd + r.costUsd) * 1e8) / 1e8;
    total.attempts.push(...r.attempts.map((a) => ({ ...a, step })));
    total.candidate = r.candidate ?? total.candidate;
    total.finishReason = r.finishReason;
    if (step === 1) total.firstTokenMs = r.firstTokenMs;
    record({
      step,
      type: 'model',
      engine: engine.engineInfo(decision, r),
      finish_reason: r.finishReason ?? null,
      text: r.text,
      tool_calls: r.toolCalls,
      usage: { latency_ms: r.latencyMs, tokens: { input: r.inputTokens, output: r.outputTokens, total: r.inputTokens + r.outputTokens }, cost_usd: r.costUsd },
      attempts: r.attempts,
      ...(r.error ? { error: { code: r.error.code, message: r.error.message } } : {}),
    });
    if (r.status !== 'OK') {
      total.status = r.status;
      total.error = r.error;
      total.toolCalls = r.toolCalls;
      break;
    }
    const ours = r.toolCalls.filter((c) => !clientTools.has(c.name));
    const theirs = r.toolCalls.filter((c) => clientTools.has(c.name));
    if (ours.length === 0) {
      total.status = 'OK';
      total.toolCalls = theirs;
      break;
    }
    added.push({ role: 'assistant', content: r.text || null, toolCalls: r.toolCalls });
    if (step >= set.maxSteps) {
      total.toolCalls = r.toolCalls;
      total.error = {
        code: 'TOOL_LOOP_LIMIT',
        message: `the model still asked for tools after ${step} steps, the limit (max_steps; configuration skills.maxSteps); the steps and the transcript so far are in the result`,
        status: 422,
      };
      break;
    }
    const results = await Promise.all(
      ours.map(async (call): Promise<ToolCallResult> => {
        let result: ToolCallResult;
        if (set.names.has(call.name)) {
          observer.tool?.({ step, id: call.id, name: call.name, arguments: call.arguments });
          result = await skills.call(call.name, call.arguments, set.principal, `${requestId}/${step}`, abort.token);
        } else {
          const error = { code: 'TOOL_NOT_FOUND', message: `no tool ${call.name} is offered in this conversation` };
          result = { ok: false, skill: '', name: call.name, error, content: JSON.stringify({ error }), durationMs: 0 };
        }
        record({
          step,
          type: 'tool',
          tool_call_id: call.id,
          name: call.name,
          skill: result.skill,
          arguments: call.arguments,
          ok: result.ok,
          ...(result.error ? { error: { code: result.error.code, message: result.error.message } } : {}),
          duration_ms: round(result.durationMs),
        });
        return result;
      }),
    );
    ours.forEach((call, i) => added.push({ role: 'tool', toolCallId: call.id, name: call.name, content: results[i]!.content }));
    if (abort.token.isCancellationRequested) {
      total.status = abort.reason === 'timeout' ? 'TIMEOUT' : 'CANCELED';
      total.error =
        abort.reason === 'timeout'
          ? { code: 'TIMEOUT', message: 'the task did not finish within its timeout' }
          : { code: 'CANCELLED', message: 'the request was cancelled during a skill call' };
      break;
    }
    if (theirs.length) {
      // The client's own tools are the client's to run: the turn goes back to it, as the OpenAI API does.
      total.status = 'OK';
      total.toolCalls = theirs;
      total.finishReason = 'tool_calls';
      break;
    }
    // A forced tool call is forced once; afterwards the model may answer.
    if (toolChoice === 'required' || typeof toolChoice === 'object') toolChoice = 'auto';
  }
  total.transcript = added.map(transcriptOf);
  total.latencyMs = round(performance.now() - started);
  return total;
}
