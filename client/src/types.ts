/** The server's shapes, as a client sees them (no dependency on the server's packages). */

export type TaskStatus = 'QUEUED' | 'RUNNING' | 'OK' | 'ERROR' | 'TIMEOUT' | 'CANCELED';

export interface ChatMessage {
  role: 'system' | 'developer' | 'user' | 'assistant' | 'tool';
  content: unknown;
  name?: string;
  tool_call_id?: string;
  tool_calls?: unknown[];
}

export interface TaskRequest {
  intent?: string;
  messages?: ChatMessage[];
  input?: unknown;
  params?: Record<string, unknown>;
  preferred_engine?: string;
  privacy?: 'local-only' | 'allow-api' | 'hybrid';
  budget_usd?: number;
  p95_ms?: number;
  priority?: 'low' | 'normal' | 'high';
  metadata?: Record<string, unknown>;
  tools?: unknown[];
  max_tokens?: number;
  temperature?: number;
  stop?: string | string[];
  timeout_ms?: number;
  skills?: string[] | boolean;
  max_steps?: number;
  [key: string]: unknown;
}

export interface EngineInfo {
  route: 'local' | 'api';
  provider: string;
  model: string;
  chosen_by: string;
  reason: string;
}

export interface TaskResult {
  schema_version: string;
  task_id: string;
  intent: string;
  status: TaskStatus;
  engine: EngineInfo | null;
  result: { text: string; tool_calls: unknown[]; finish_reason: string | null } | null;
  usage: { latency_ms: number; tokens: { input: number; output: number; total: number }; cost_usd: number };
  error: { code: string; message: string } | null;
  created_at: string;
  updated_at: string;
  routing?: Record<string, unknown>;
  [key: string]: unknown;
}

export type TaskEvent =
  | { id: number; event: 'token'; data: { text: string } }
  | { id: number; event: 'partial' | 'tool' | 'step'; data: Record<string, unknown> }
  | { id: number; event: 'done'; data: TaskResult }
  | { id: number; event: 'error'; data: { code: string; message: string; task?: TaskResult } };

/** Times of sessions and messages are milliseconds since the epoch, as the hub stores and answers them. */
export interface Session {
  id: string;
  title: string | null;
  message_count: number;
  metadata: Record<string, unknown> | null;
  created_at: number;
  updated_at: number;
  last_activity_at?: number;
  expires_at?: number | null;
  deleted_at?: number | null;
  seq?: number;
  [key: string]: unknown;
}

export interface SessionMessage {
  id: string;
  session_id: string;
  role: 'user' | 'assistant' | 'system' | 'tool';
  content: unknown;
  metadata?: Record<string, unknown> | null;
  created_at: number;
  seq?: number;
  [key: string]: unknown;
}

export interface Skill {
  id: string;
  title?: string;
  description?: string;
  tags?: string[];
  runtime?: string;
  enabled?: boolean;
  state?: string;
  [key: string]: unknown;
}

export interface Job {
  id: string;
  queue: string;
  status: string;
  progress?: number;
  stage?: string;
  result?: unknown;
  error?: { code: string; message: string } | null;
  [key: string]: unknown;
}
