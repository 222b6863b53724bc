import type { Principal } from '@aion/extension-api';

export type DeclaredRuntime = 'wasm' | 'js' | 'process';
/** `mcp`: a tool of an external MCP server, reached through the MCP client. */
export type SkillRuntime = DeclaredRuntime | 'mcp';

export interface SkillLimits {
  timeout_ms: number;
  memory_pages: number;
  memory_bytes: number;
  max_output_bytes: number;
}

export type JsonSchema = Record<string, unknown>;

/** One entry of the `skills` point, as an extension manifest or a pack's `pack.json` declares it. */
export interface SkillEntry {
  id: string;
  title: string;
  description: string;
  inputSchema: JsonSchema;
  outputSchema?: JsonSchema;
  runtime: DeclaredRuntime;
  entry?: string;
  args?: string[];
  scope?: string;
  permissions?: { network?: string[]; secrets?: string[] };
  limits?: Partial<SkillLimits>;
  tags?: string[];
  keepAlive?: boolean;
  resources?: SkillResources;
}

/** `resources.gpu`: a GPU the skill needs (`required`) or uses when present. */
export interface SkillResources {
  gpu?: { required: boolean; vendor?: string; memoryMiB?: number };
}

export type SkillSource =
  | { kind: 'pack'; pack: string; version: string; signed: boolean; keyId?: string; signer?: string }
  /** `exposed`: the extension's `aion.expose` offers this skill to a hub when the kernel runs as a spoke. */
  | { kind: 'extension'; extensionId: string; exposed?: boolean }
  | { kind: 'mcp'; server: string; tool: string };

/** A skill in the catalog: declared, checked, and ready to run. */
export interface Skill {
  id: string;
  title: string;
  description: string;
  inputSchema: JsonSchema;
  outputSchema?: JsonSchema;
  runtime: SkillRuntime;
  scope?: string;
  permissions: { network: string[]; secrets: string[] };
  limits: SkillLimits;
  tags: string[];
  source: SkillSource;
  resources?: SkillResources;
  /** wasm: the compiled module's hash in the engine and argv after it. */
  wasm?: { hash: string; args: string[] };
  /** process: an absolute command and its arguments. */
  process?: { command: string; args: string[]; keepAlive: boolean };
}

/** Who is calling, and through which door. */
export interface CallContext {
  /** Absent only for trusted local callers (the CLI, `aion mcp` on stdio): they act with every scope. */
  principal?: Principal;
  via: 'http' | 'mcp' | 'api' | 'cli' | 'stdio';
  /** The extension that called the API, as verified by the kernel. */
  extension?: string;
  requestId?: string;
  signal?: AbortSignal;
}

export interface ExecuteResult {
  result: unknown;
  durationMs: number;
}

/** What the stdio and CLI doors act as: the local operator. */
export const LOCAL_PRINCIPAL: Principal = { sub: 'local', type: 'service', scopes: ['*'], tenant_id: 'default' };

/** The hub itself: the one device every local skill runs on until remote devices add others. */
export const HUB_DEVICE = { id: 'hub', name: 'hub', kind: 'hub', local: true } as const;
