/**
 * Types of `aion.ai-docs`: the three kinds of documentation job, what each answers, and the error
 * codes it adds. Clients call the HTTP routes; this module is for `import type`.
 */

export type AiDocsKind = 'file-summary' | 'inline-comment' | 'rename-suggestions';

/** 1-based, inclusive lines of the file. */
export interface LineRange {
  start_line: number;
  end_line: number;
}

/** The body of `POST /v1/ai/<kind>`. */
export interface AiDocsRequest {
  project_id: string;
  path: string;
  range?: LineRange;
  symbol?: string;
  /** Raises the router's privacy for this job (`local-only` never leaves the server); policies may raise it further. */
  privacy?: 'local-only' | 'allow-api' | 'hybrid';
}

export interface FileSummary {
  summary: string;
  key_points?: string[];
  language?: string;
}

export interface InlineComments {
  comments: Array<{ line: number; comment: string }>;
}

export interface RenameSuggestions {
  suggestions: Array<{ from: string; to: string; reason?: string }>;
}

/** What the worker stores as the job's result: the validated answer and the task's record. */
export interface AiDocsJobResult {
  kind: AiDocsKind;
  output: FileSummary | InlineComments | RenameSuggestions;
  task_id: string;
  engine: { route: string | null; provider: string | null; model: string | null; chosen_by: string; reason: string } | null;
  usage: { latency_ms: number; tokens: { input: number; output: number; total: number }; cost_usd: number };
  /** Tasks the worker submitted: 1, or more when an answer was not valid and was asked again. */
  tasks: number;
  file: { path: string; size: number; range: LineRange | null };
}

export const AiDocsErrorCodes = {
  /** The model's answer was not JSON matching the kind's schema, after every try. */
  AI_RESULT_INVALID: 'AI_RESULT_INVALID',
  /** No such documentation job, or not the caller's. */
  AI_JOB_NOT_FOUND: 'AI_JOB_NOT_FOUND',
  INVALID_AI_REQUEST: 'INVALID_AI_REQUEST',
} as const;

/** The HTTP status of each code. */
export const AiDocsErrorStatus: Record<keyof typeof AiDocsErrorCodes, number> = {
  AI_RESULT_INVALID: 502,
  AI_JOB_NOT_FOUND: 404,
  INVALID_AI_REQUEST: 400,
};
