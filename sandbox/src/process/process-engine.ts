import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { isAbsolute } from 'node:path';
import { SandboxError, tail } from '../errors.js';
import { detectCgroupSupport, SkillCgroup, type CgroupSupport } from './cgroup.js';
import { SkillProcess } from './skill-process.js';
import { visibleDeviceEnvironment, type AcceleratorSelection } from './visible-devices.js';

/** A native skill: an executable that speaks MCP-style JSON-RPC 2.0, one JSON message per line, on stdio. */
export interface ProcessSkill {
  /** Names the skill; with `keepAlive`, calls with the same id and launch settings share one process. */
  id: string;
  /** Absolute path of the executable: the skill gets no PATH. */
  command: string;
  args?: readonly string[];
  /** Declared secrets with their values: the skill's entire environment. */
  secrets?: Readonly<Record<string, string>>;
  /** Keep the process between calls (one call at a time); otherwise one process per call. */
  keepAlive?: boolean;
}

export interface ProcessLimits {
  /** Wall-clock time of one call, including start-up and `initialize` for a new process. */
  timeoutMs: number;
  /** Bytes the skill may write to stdout during one call. */
  maxOutputBytes: number;
  /** Memory of the process and everything it starts, enforced with a cgroup v2 group where one can be made. */
  memoryBytes?: number;
  /** Bytes of stderr kept per call. Default 64 KiB. */
  maxStderrBytes?: number;
}

export interface ProcessCallRequest {
  skill: ProcessSkill;
  /** `tools/call` parameters. */
  name: string;
  arguments?: Readonly<Record<string, unknown>>;
  limits: ProcessLimits;
  /** Stderr lines and `notifications/message` payloads, as they arrive. */
  onLog?: (line: string) => void;
  signal?: AbortSignal;
  /** The device the skill was placed on: passed as CUDA_VISIBLE_DEVICES, HIP_VISIBLE_DEVICES or ONEAPI_DEVICE_SELECTOR. */
  accelerator?: AcceleratorSelection;
}

export type ToolContent = { type: 'text'; text: string } | { type: string; [key: string]: unknown };

export interface ProcessCallResult {
  content: ToolContent[];
  structuredContent?: unknown;
  isError: boolean;
  stderr: string;
  durationMs: number;
}

export interface ProcessEngineOptions {
  /** A warm process unused this long is stopped. Default 60 s. */
  idleTimeoutMs?: number;
  /** A delegated cgroup v2 directory for per-process groups; default: this process's own group. `false` disables limits. */
  cgroupParent?: string | false;
  /** Told once when memory limits cannot be enforced on this host. Default: a process warning. */
  onNotice?: (message: string) => void;
  /**
   * Where each process gets its fresh working directory. Default: the system's temporary
   * directory; a host that may write only to its own folders (Node's permission model) passes one of those.
   */
  workDir?: string;
}

interface WarmProcess {
  key: string;
  process: Promise<SkillProcess>;
  /** Calls on one process run one after another. */
  queue: Promise<unknown>;
  idleTimer?: NodeJS.Timeout;
}

/**
 * Runs native skills as child processes with an empty environment (plus declared secrets), a fresh
 * temporary working directory, a wall-clock timeout that kills the whole process group, a stdout cap,
 * and a memory cap through cgroup v2 where the host delegates one.
 */
export class ProcessEngine {
  private readonly warm = new Map<string, WarmProcess>();
  private readonly running = new Set<SkillProcess>();
  private cgroups: Promise<CgroupSupport> | undefined;
  private noticeGiven = false;
  private closed = false;

  constructor(private readonly options: ProcessEngineOptions = {}) {}

  /** Whether memory limits are enforced here, and why (not). */
  memoryLimitSupport(): Promise<CgroupSupport> {
    this.cgroups ??=
      this.options.cgroupParent === false
        ? Promise.resolve({ available: false, reason: 'disabled by configuration' })
        : detectCgroupSupport(this.options.cgroupParent);
    return this.cgroups;
  }

  async call(request: ProcessCallRequest): Promise<ProcessCallResult> {
    if (this.closed) throw new SandboxError('ENGINE_CLOSED', 'The engine is closed.');
    const { skill, limits } = request;
    if (!isAbsolute(skill.command)) throw new SandboxError('INVALID_REQUEST', 'The skill command must be an absolute path.');
    if (!(limits?.timeoutMs > 0) || !(limits.maxOutputBytes > 0))
      throw new SandboxError('INVALID_REQUEST', 'limits.timeoutMs and limits.maxOutputBytes must be positive.');
    const deviceEnv = request.accelerator ? visibleDeviceEnvironment(request.accelerator) : {};
    if (!skill.keepAlive) {
      const proc = await this.start(skill, limits, deviceEnv);
      try {
        return await this.callOn(proc, request);
      } finally {
        await proc.kill();
        this.running.delete(proc);
      }
    }
    const key = warmKey(skill, limits, deviceEnv);
    let warm = this.warm.get(key);
    if (!warm) {
      warm = { key, process: this.start(skill, limits, deviceEnv), queue: Promise.resolve() };
      warm.process.catch(() => this.warm.delete(key));
      this.warm.set(key, warm);
    }
    const entry = warm;
    clearTimeout(entry.idleTimer);
    const result = entry.queue.then(async () => {
      const proc = await entry.process;
      if (!proc.alive) {
        this.warm.delete(key);
        throw new SandboxError('SKILL_FAILED', 'The skill process has ended.', { stderr: tail(proc.stderr) });
      }
      try {
        return await this.callOn(proc, request);
      } catch (err) {
        this.warm.delete(key);
        await proc.kill();
        this.running.delete(proc);
        throw err;
      }
    });
    entry.queue = result.catch(() => {});
    void entry.queue.then(() => this.scheduleIdle(entry));
    return result;
  }

  /** Stops every process, warm or busy. */
  async close(): Promise<void> {
    this.closed = true;
    this.warm.forEach((w) => clearTimeout(w.idleTimer));
    this.warm.clear();
    await Promise.all([...this.running].map((p) => p.kill(new SandboxError('ENGINE_CLOSED', 'The engine closed during the call.'))));
    this.running.clear();
  }

  dispose(): Promise<void> {
    return this.close();
  }

  private async start(skill: ProcessSkill, limits: ProcessLimits, deviceEnv: Record<string, string>): Promise<SkillProcess> {
    let cgroup: SkillCgroup | null = null;
    if (limits.memoryBytes !== undefined) {
      const support = await this.memoryLimitSupport();
      if (support.available) {
        try {
          cgroup = await SkillCgroup.create(support.parent!, limits.memoryBytes);
        } catch {
          throw new SandboxError('SKILL_FAILED', 'Could not create the memory-limited group for the skill process.');
        }
      } else if (!this.noticeGiven) {
        this.noticeGiven = true;
        const notice = `Skill processes run without a memory limit: ${support.reason}.`;
        (this.options.onNotice ?? ((m: string) => process.emitWarning(m, { code: 'AION_SANDBOX_NO_MEMORY_LIMIT' })))(notice);
      }
    }
    const proc = await SkillProcess.start({
      command: skill.command,
      args: skill.args ?? [],
      env: { ...(skill.secrets ?? {}), ...deviceEnv },
      cgroup,
      maxStderrBytes: limits.maxStderrBytes ?? 64 * 1024,
      workDir: this.options.workDir ?? tmpdir(),
    });
    this.running.add(proc);
    return proc;
  }

  private async callOn(proc: SkillProcess, request: ProcessCallRequest): Promise<ProcessCallResult> {
    const { limits } = request;
    const started = performance.now();
    proc.beginCall(limits.maxOutputBytes);
    proc.onLog = request.onLog ?? null;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const stopped = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = new SandboxError('TIMEOUT', `The skill did not finish within ${limits.timeoutMs} ms.`, { stderr: tail(proc.stderr), fatal: true });
        void proc.kill(err);
        reject(err);
      }, limits.timeoutMs);
      onAbort = () => {
        const err = new SandboxError('CANCELLED', 'The call was cancelled.', { stderr: tail(proc.stderr) });
        void proc.kill(err);
        reject(err);
      };
      if (request.signal?.aborted) onAbort();
      else request.signal?.addEventListener('abort', onAbort, { once: true });
    });
    const work = (async () => {
      if (!proc.initialized) await proc.initialize();
      return proc.request('tools/call', { name: request.name, arguments: request.arguments ?? {} });
    })();
    try {
      const result = await Promise.race([work, stopped]);
      return { ...toolResult(result), stderr: proc.stderr, durationMs: performance.now() - started };
    } catch (err) {
      if (err instanceof SandboxError && err.code === 'SKILL_FAILED' && (await proc.oomKilled())) {
        throw new SandboxError('MEMORY_LIMIT', `The skill went over its memory limit of ${request.limits.memoryBytes} bytes.`, {
          stderr: err.stderr,
          fatal: true,
        });
      }
      throw err;
    } finally {
      clearTimeout(timer);
      if (onAbort) request.signal?.removeEventListener('abort', onAbort);
      work.catch(() => {});
      proc.onLog = null;
    }
  }

  private scheduleIdle(entry: WarmProcess): void {
    if (this.warm.get(entry.key) !== entry) return;
    clearTimeout(entry.idleTimer);
    entry.idleTimer = setTimeout(() => {
      if (this.warm.get(entry.key) !== entry) return;
      this.warm.delete(entry.key);
      void entry.process.then(async (p) => {
        await p.kill();
        this.running.delete(p);
      });
    }, this.options.idleTimeoutMs ?? 60_000);
    entry.idleTimer.unref();
  }
}

function warmKey(skill: ProcessSkill, limits: ProcessLimits, deviceEnv: Record<string, string>): string {
  return createHash('sha256')
    .update(
      JSON.stringify([
        skill.id,
        skill.command,
        skill.args ?? [],
        Object.entries(skill.secrets ?? {}).sort(),
        limits.memoryBytes ?? null,
        Object.entries(deviceEnv),
      ]),
    )
    .digest('hex');
}

function toolResult(value: unknown): Omit<ProcessCallResult, 'stderr' | 'durationMs'> {
  const result = value as { content?: unknown; structuredContent?: unknown; isError?: unknown } | null;
  if (typeof result !== 'object' || result === null || !Array.isArray(result.content)) {
    throw new SandboxError('INVALID_OUTPUT', 'The skill answered tools/call without a content array.');
  }
  const content = result.content as ToolContent[];
  if (content.some((c) => typeof c !== 'object' || c === null || typeof c.type !== 'string')) {
    throw new SandboxError('INVALID_OUTPUT', 'The skill answered tools/call with content items that have no type.');
  }
  return { content, ...(result.structuredContent !== undefined ? { structuredContent: result.structuredContent } : {}), isError: result.isError === true };
}
