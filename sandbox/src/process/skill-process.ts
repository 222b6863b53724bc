import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SandboxError, tail } from '../errors.js';
import type { SkillCgroup } from './cgroup.js';

export const MCP_PROTOCOL_VERSION = '2025-11-25';

interface Pending {
  resolve: (result: unknown) => void;
  reject: (err: SandboxError) => void;
}

export interface SkillProcessOptions {
  command: string;
  args: readonly string[];
  env: Record<string, string>;
  cgroup: SkillCgroup | null;
  maxStderrBytes: number;
  /** Where the process's own working directory is made. */
  workDir: string;
}

/**
 * One native skill process speaking newline-delimited JSON-RPC 2.0 on stdio. It runs in its own
 * session and process group (so one signal ends it and everything it started), with a fresh empty
 * working directory that is removed when it ends.
 */
export class SkillProcess {
  private child!: ChildProcessWithoutNullStreams;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private buffered = '';
  private stdoutBudget = Infinity;
  private stdoutLimit = Infinity;
  private stderrText = '';
  private stderrBytes = 0;
  private exited: Promise<void> = Promise.resolve();
  private ended = false;
  private endReason: SandboxError | null = null;
  onLog: ((line: string) => void) | null = null;
  cwd = '';
  initialized = false;

  private constructor(private readonly options: SkillProcessOptions) {}

  static async start(options: SkillProcessOptions): Promise<SkillProcess> {
    const skill = new SkillProcess(options);
    await skill.spawn();
    return skill;
  }

  get stderr(): string {
    return this.stderrText;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return !this.ended;
  }

  /** Starts counting stdout bytes against `limit` and stderr afresh, for the next request. */
  beginCall(limit: number): void {
    this.stdoutLimit = limit;
    this.stdoutBudget = limit - Buffer.byteLength(this.buffered);
    this.stderrText = '';
    this.stderrBytes = 0;
  }

  request(method: string, params: unknown): Promise<unknown> {
    if (this.ended) return Promise.reject(this.endReason ?? new SandboxError('SKILL_FAILED', 'The skill process has ended.'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.send({ jsonrpc: '2.0', id, method, params });
    });
  }

  notify(method: string, params?: unknown): void {
    this.send(params === undefined ? { jsonrpc: '2.0', method } : { jsonrpc: '2.0', method, params });
  }

  async initialize(): Promise<void> {
    await this.request('initialize', { protocolVersion: MCP_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'aion-sandbox', version: '0.1.0' } });
    this.notify('notifications/initialized');
    this.initialized = true;
  }

  /** Ends the process and its whole group at once, then removes its group and directory. */
  async kill(reason?: SandboxError): Promise<void> {
    this.end(reason ?? new SandboxError('SKILL_FAILED', 'The skill process was stopped.'));
    const pid = this.child.pid;
    if (pid !== undefined) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    await Promise.race([this.exited, delay(1000)]);
    this.child.stdout.destroy();
    this.child.stderr.destroy();
    await this.options.cgroup?.destroy();
    await rm(this.cwd, { recursive: true, force: true });
  }

  async oomKilled(): Promise<boolean> {
    return (await this.options.cgroup?.oomKilled()) ?? false;
  }

  private async spawn(): Promise<void> {
    await mkdir(this.options.workDir, { recursive: true });
    this.cwd = await mkdtemp(join(this.options.workDir, 'aion-skill-'));
    const { command, args } = this.options.cgroup ? this.options.cgroup.wrap(this.options.command, this.options.args) : this.options;
    const child = spawn(command, [...args], { cwd: this.cwd, env: this.options.env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('close', () => resolve()));
    child.once('error', (err: NodeJS.ErrnoException) =>
      this.end(new SandboxError('SKILL_FAILED', `The skill process could not start (${err.code ?? 'error'}).`)),
    );
    child.once('exit', (code, signal) => {
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      // Let stderr drain so the error carries its tail; a grandchild holding the pipes must not delay it long.
      // Only a process that ended on its own gets here (a kill of ours ended it first): a signal means it crashed or was killed.
      void Promise.race([this.exited, delay(100)]).then(() =>
        this.end(new SandboxError('SKILL_FAILED', `The skill process ${how}.`, { stderr: tail(this.stderrText), fatal: signal !== null })),
      );
    });
    child.stdin.on('error', () => {});
    child.stdout.on('data', (chunk: Buffer) => this.onStdout(chunk));
    child.stderr.on('data', (chunk: Buffer) => this.onStderr(chunk));
  }

  private send(message: object): void {
    if (!this.ended) this.child.stdin.write(`${JSON.stringify(message)}\n`);
  }

  private onStdout(chunk: Buffer): void {
    if (this.ended) return;
    this.stdoutBudget -= chunk.length;
    if (this.stdoutBudget < 0) {
      void this.kill(new SandboxError('OUTPUT_TOO_LARGE', `The skill wrote more than ${this.stdoutLimit} bytes of output.`, { stderr: tail(this.stderrText) }));
      return;
    }
    this.buffered += chunk.toString('utf8');
    let newline: number;
    while ((newline = this.buffered.indexOf('\n')) >= 0) {
      const line = this.buffered.slice(0, newline).trim();
      this.buffered = this.buffered.slice(newline + 1);
      if (line) this.onLine(line);
    }
  }

  private onLine(line: string): void {
    let message: { id?: unknown; method?: unknown; result?: unknown; error?: { message?: unknown }; params?: unknown };
    try {
      message = JSON.parse(line);
    } catch {
      void this.kill(new SandboxError('INVALID_OUTPUT', 'The skill wrote a line that is not JSON-RPC.', { stderr: tail(this.stderrText) }));
      return;
    }
    if (typeof message.method === 'string') {
      // Requests from the skill (sampling, roots…) are not offered; its notifications are logged.
      if (message.id !== undefined) this.send({ jsonrpc: '2.0', id: message.id, error: { code: -32601, message: 'Method not found' } });
      else if (message.method === 'notifications/message') this.log(JSON.stringify(message.params));
      return;
    }
    const pending = typeof message.id === 'number' ? this.pending.get(message.id) : undefined;
    if (!pending) return;
    this.pending.delete(message.id as number);
    if (message.error) {
      const text = typeof message.error.message === 'string' ? message.error.message : 'unknown error';
      pending.reject(new SandboxError('SKILL_FAILED', `The skill answered with an error: ${tail(text, 500)}`, { stderr: tail(this.stderrText) }));
    } else pending.resolve(message.result);
  }

  private onStderr(chunk: Buffer): void {
    const room = this.options.maxStderrBytes - this.stderrBytes;
    if (room <= 0) return;
    const text = chunk.subarray(0, room).toString('utf8');
    this.stderrBytes += Math.min(room, chunk.length);
    this.stderrText += text;
    if (this.onLog) for (const line of text.split('\n')) if (line) this.log(line);
  }

  private log(line: string): void {
    try {
      this.onLog?.(line);
    } catch {
      // Ignored: logging is best effort.
    }
  }

  private end(reason: SandboxError): void {
    if (this.ended) return;
    this.ended = true;
    this.endReason = reason;
    for (const pending of this.pending.values()) pending.reject(reason);
    this.pending.clear();
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
