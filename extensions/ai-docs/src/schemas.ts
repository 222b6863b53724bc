import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { AiDocsKind } from './api.js';

const text = (maxLength: number) => ({ type: 'string', minLength: 1, maxLength });
const identifier = { type: 'string', minLength: 1, maxLength: 200, pattern: '^[^\\s]+$' };

/** The structured output each kind must answer; the prompt shows it to the model, ajv checks the answer. */
export const RESULT_SCHEMAS: Record<AiDocsKind, Record<string, unknown>> = {
  'file-summary': {
    type: 'object',
    required: ['summary'],
    properties: {
      summary: text(4000),
      key_points: { type: 'array', maxItems: 20, items: text(500) },
      language: { type: 'string', maxLength: 50 },
    },
    additionalProperties: false,
  },
  'inline-comment': {
    type: 'object',
    required: ['comments'],
    properties: {
      comments: {
        type: 'array',
        maxItems: 200,
        items: {
          type: 'object',
          required: ['line', 'comment'],
          properties: { line: { type: 'integer', minimum: 1 }, comment: text(1000) },
          additionalProperties: false,
        },
      },
    },
    additionalProperties: false,
  },
  'rename-suggestions': {
    type: 'object',
    required: ['suggestions'],
    properties: {
      suggestions: {
        type: 'array',
        maxItems: 50,
        items: { type: 'object', required: ['from', 'to'], properties: { from: identifier, to: identifier, reason: text(500) }, additionalProperties: false },
      },
    },
    additionalProperties: false,
  },
};

const ajv = new Ajv({ allErrors: true, strict: true });
const validators = Object.fromEntries(Object.entries(RESULT_SCHEMAS).map(([kind, schema]) => [kind, ajv.compile(schema)])) as Record<
  AiDocsKind,
  ValidateFunction
>;

export type ParsedAnswer = { ok: true; value: any } | { ok: false; problem: string };

/** The JSON object in a model's answer: the whole text, or inside a ``` fence, or from the first `{` to the last `}`. */
export function extractJson(answer: string): unknown {
  const trimmed = answer.trim();
  const fenced = /```(?:json)?\s*\n?([\s\S]*?)```/i.exec(trimmed);
  const candidates = [trimmed, fenced?.[1]?.trim(), trimmed.slice(trimmed.indexOf('{'), trimmed.lastIndexOf('}') + 1)];
  for (const c of candidates) {
    if (!c) continue;
    try {
      return JSON.parse(c);
    } catch {
      // The next candidate.
    }
  }
  return undefined;
}

const describe = (errors: ErrorObject[] | null | undefined) =>
  (errors ?? [])
    .slice(0, 5)
    .map((e) => `${e.instancePath || '(root)'} ${e.message}`)
    .join('; ');

/** Parses and validates a model's answer for `kind`; `lines` bounds the line numbers of inline comments. */
export function parseAnswer(kind: AiDocsKind, answer: string, lines: { first: number; last: number }): ParsedAnswer {
  const value = extractJson(answer);
  if (value === undefined) return { ok: false, problem: 'the answer is not JSON' };
  const validate = validators[kind];
  if (!validate(value)) return { ok: false, problem: `the answer does not match the schema: ${describe(validate.errors)}` };
  if (kind === 'inline-comment') {
    const outside = (value as { comments: Array<{ line: number }> }).comments.find((c) => c.line < lines.first || c.line > lines.last);
    if (outside) return { ok: false, problem: `a comment is on line ${outside.line}, outside lines ${lines.first}–${lines.last}` };
  }
  return { ok: true, value };
}
