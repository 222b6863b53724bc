/**
 * The public API of `aion.skills`, reached with `aion.extensions.getApi<SkillsApi>('aion.skills')`.
 * Only data crosses: every argument and result below is JSON.
 */
import type { CancellationToken, Principal } from '@aion/extension-api';
import type { QuarantineRecord } from './quarantine.js';
import type { UsageRow } from './usage.js';

/** An OpenAI-style tool definition for one skill. */
export interface ToolDefinition {
  type: 'function';
  function: {
    /** `^[A-Za-z0-9_-]{1,64}$`: the skill id with `.` written as `__` (and a hash suffix when that is not unique or too long). */
    name: string;
    description: string;
    /** The skill's input schema (JSON Schema 2020-12, an object). */
    parameters: Record<string, unknown>;
  };
}

export interface ToolFilter {
  /** Only these skill ids (or tool names); `prefix.*` patterns allowed. */
  skills?: string[];
  /** Free-text search as in `GET /v1/skills?q=`. */
  q?: string;
  /** Every tag must be present. */
  tags?: string[];
  /** Only skills this principal may call (holds skills:execute and the skill's scope). */
  principal?: Principal;
  /** At most this many tools, best matches first (default 128). */
  limit?: number;
}

export interface ToolCallOptions {
  /** Recorded with the call in the log (e.g. the task id and step). */
  requestId?: string;
}

/** What a tool call produced; failures are values, so a tool loop can hand them to the model. */
export interface ToolCallResult {
  ok: boolean;
  /** The skill that ran (resolved from the tool name). */
  skill: string;
  /** The tool name as called. */
  name: string;
  result?: unknown;
  error?: { code: string; message: string; details?: unknown };
  /** The text to put in the `tool` message: the result as JSON, or `{"error":{code,message}}`. */
  content: string;
  durationMs: number;
}

export interface SkillSummary {
  id: string;
  title: string;
  description: string;
  tags: string[];
  /** `device`: a skill only online devices have (see `devices`). */
  runtime: 'wasm' | 'js' | 'process' | 'mcp' | 'device';
  /** Callable: neither disabled nor quarantined. */
  enabled: boolean;
  state: 'enabled' | 'disabled' | 'quarantined';
  /** Why the skill is quarantined, when it is: lifted by `POST /v1/skills/:id/enable`. */
  quarantine?: QuarantineRecord;
  source: Record<string, unknown>;
  score?: number;
  /** Where the skill runs: the hub (`local: true`), then online devices (most recently seen first) with their `path`. */
  devices: Array<{ id: string; name: string; kind: string; local: boolean; path?: string; last_seen_at?: number }>;
  device_count: number;
}

export interface SkillDescription extends SkillSummary {
  inputSchema: Record<string, unknown>;
  outputSchema?: Record<string, unknown>;
  scope?: string;
  permissions: { network: string[]; secrets: string[] };
  limits: { timeout_ms: number; memory_pages: number; memory_bytes: number; max_output_bytes: number };
}

export interface PackListing {
  installed: Array<{
    name: string;
    version?: string;
    state: 'loaded' | 'invalid';
    signed?: boolean;
    signer?: string;
    keyId?: string;
    skills: string[];
    error?: string;
  }>;
  quarantined: Array<{ id: string; pack?: string; version?: string; code: string; reason: string; at: string }>;
}

export interface SkillsApi {
  /** Tool definitions for the skills matching `filter`, for a model's `tools`. */
  listTools(filter?: ToolFilter): ToolDefinition[];
  /** Runs the skill behind a tool name (or a skill id) through the gatekeeper as `principal`; `args` may be a JSON string. Cancelling `token` stops the skill. */
  executeTool(name: string, args: unknown, principal: Principal, options?: ToolCallOptions, token?: CancellationToken): ToolCallResult;
  search(query?: { q?: string; tags?: string[]; principal?: Principal }): SkillSummary[];
  describe(id: string): SkillDescription;
  /** Runs a skill by id; throws the skill error (stable code) on failure. Cancelling `token` stops the skill. */
  execute(id: string, args: unknown, principal: Principal, token?: CancellationToken): { result: unknown; durationMs: number };
  listPacks(): PackListing;
  installPack(
    path: string,
    options?: { allowUnsigned?: boolean },
  ): { name: string; version: string; skills: string[]; signed: boolean; replaced: boolean; warnings: string[] };
  removePack(name: string): { removed: boolean };
  usage(filter?: { skill?: string; caller?: string }): Array<UsageRow & { averageMs: number }>;
}

/** The tool name a skill id is offered under (before collisions are resolved). */
export function toolNameOf(id: string): string {
  return id.replace(/\./g, '__');
}
