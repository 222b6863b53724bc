import { isAbsolute } from 'node:path';
import { CancellationTokenSource, type CancellationToken } from '@aion/extension-api';
import { ProcessEngine, WasmEngine, type AcceleratorSelection, type WasmEngineOptions } from '@aion/sandbox';
import { publicMessage, skillError } from './errors.js';
import type { Skill, SkillRuntime } from './types.js';

export interface RunContext {
  signal: AbortSignal;
  /** The skill's declared secrets that are set, by their declared names. */
  secrets: Record<string, string>;
  onLog: (line: string) => void;
  /** The GPU the gatekeeper placed the call on (`resources.gpu`); process skills get it in the vendor's variable. */
  accelerator?: AcceleratorSelection;
}

/** Runs one kind of skill. Failures are thrown as sandbox errors or skill errors; the gatekeeper maps them. */
export interface SkillRunner {
  run(skill: Skill, args: unknown, context: RunContext): Promise<unknown>;
}

/** `wasm`: V8 WebAssembly in the sandbox's worker threads; modules are compiled once, at load. */
export class WasmRunner implements SkillRunner {
  private engine: WasmEngine | undefined;

  constructor(private readonly options: WasmEngineOptions = {}) {}

  /** The engine, started on first use; `ready()` has its threads running before the first call. */
  get wasm(): WasmEngine {
    this.engine ??= new WasmEngine(this.options);
    return this.engine;
  }

  async run(skill: Skill, args: unknown, context: RunContext): Promise<unknown> {
    const { hash, args: argv } = skill.wasm!;
    const result = await this.wasm.run({
      hash,
      input: args,
      args: argv,
      secrets: context.secrets,
      allowedHosts: skill.permissions.network,
      limits: { timeoutMs: skill.limits.timeout_ms, memoryPages: skill.limits.memory_pages, maxOutputBytes: skill.limits.max_output_bytes },
      signal: context.signal,
      onLog: context.onLog,
    });
    return result.output;
  }

  async close(): Promise<void> {
    await this.engine?.close();
    this.engine = undefined;
  }
}

/** `process`: a native executable speaking MCP-style JSON-RPC on stdio, called with `tools/call` named by the skill id. */
export class ProcessRunner implements SkillRunner {
  readonly engine: ProcessEngine;

  constructor(options: { onNotice: (message: string) => void; workDir?: string }) {
    this.engine = new ProcessEngine(options);
  }

  async run(skill: Skill, args: unknown, context: RunContext): Promise<unknown> {
    const proc = skill.process!;
    if (!isAbsolute(proc.command)) throw skillError('SKILL_UNAVAILABLE', `The skill ${skill.id} has no runnable command.`);
    const result = await this.engine.call({
      skill: { id: skill.id, command: proc.command, args: proc.args, secrets: context.secrets, keepAlive: proc.keepAlive },
      name: skill.id,
      arguments: (args ?? {}) as Record<string, unknown>,
      limits: { timeoutMs: skill.limits.timeout_ms, maxOutputBytes: skill.limits.max_output_bytes, memoryBytes: skill.limits.memory_bytes },
      signal: context.signal,
      onLog: context.onLog,
      ...(context.accelerator ? { accelerator: context.accelerator } : {}),
    });
    return toolOutput(result.content, result.structuredContent, result.isError, skill.id);
  }

  close(): Promise<void> {
    return this.engine.close();
  }
}

/** What an extension registers for its `js` skill with `contributions.register('skills', id, impl)`. */
export interface JsSkillImplementation {
  run(args: unknown, token?: CancellationToken): Promise<unknown>;
}

/** `js`: the contributing extension's own code, in its own host, reached through the kernel. */
export class JsRunner implements SkillRunner {
  constructor(private readonly resolve: (id: string) => Promise<JsSkillImplementation>) {}

  async run(skill: Skill, args: unknown, context: RunContext): Promise<unknown> {
    const impl = await this.resolve(skill.id);
    const cancel = new CancellationTokenSource();
    const onAbort = () => cancel.cancel();
    context.signal.addEventListener('abort', onAbort, { once: true });
    try {
      return await withTimeout(impl.run(args, cancel.token), skill, () => cancel.cancel());
    } finally {
      context.signal.removeEventListener('abort', onAbort);
      cancel.dispose();
    }
  }
}

/** A call bounded by the skill's `timeout_ms`; `onTimeout` cancels the work itself. */
export async function withTimeout<T>(work: Promise<T>, skill: Skill, onTimeout: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(skillError('TIMEOUT', `The skill did not finish within ${skill.limits.timeout_ms} ms.`));
    }, skill.limits.timeout_ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
    work.catch(() => undefined);
  }
}

type Content = { type: string; text?: string; [key: string]: unknown };

/** An MCP-style tool result as a skill result: structured content, else the text (parsed when it is JSON). */
export function toolOutput(content: readonly Content[], structured: unknown, isError: boolean, skillId: string): unknown {
  const text = content
    .filter((c) => c.type === 'text' && typeof c.text === 'string')
    .map((c) => c.text)
    .join('\n');
  if (isError) throw skillError('SKILL_FAILED', `The skill ${skillId} reported an error: ${publicMessage(text || 'no detail', 800)}`);
  if (structured !== undefined) return structured;
  try {
    return JSON.parse(text);
  } catch {
    return { text };
  }
}

export type Runners = Record<SkillRuntime, SkillRunner>;
