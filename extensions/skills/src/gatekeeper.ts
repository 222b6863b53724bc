import { isAionError, type Principal } from '@aion/extension-api';
import { isSandboxError, type AcceleratorSelection } from '@aion/sandbox';
import { schemaProblems, type SkillCatalog } from './catalog.js';
import { skillError, toSkillError } from './errors.js';
import type { SkillQuarantine } from './quarantine.js';
import type { CallLimiter } from './rateLimiter.js';
import type { Runners } from './runtimes.js';
import { LOCAL_PRINCIPAL, type CallContext, type ExecuteResult, type Skill } from './types.js';
import type { UsageRecorder } from './usage.js';

export const EXECUTE_SCOPE = 'skills:execute';
export const READ_SCOPE = 'skills:read';

export interface GatekeeperLog {
  warn(message: string, data?: Record<string, unknown>): void;
  debug(message: string, data?: Record<string, unknown>): void;
}

export interface GatekeeperOptions {
  catalog: SkillCatalog;
  runners: Runners;
  limiter: CallLimiter;
  usage: UsageRecorder;
  secrets: SecretResolver;
  quarantine: SkillQuarantine;
  log: GatekeeperLog;
  /** Largest arguments, as JSON bytes. */
  maxInputBytes: number;
  /** Skill log lines forwarded to the log per call; the rest are dropped. */
  maxLogLines?: number;
  findAccelerator?: FindAccelerator;
}

/** `aion.accelerators` `find()`: the device for a requirement, or NO_ACCELERATOR. */
export type FindAccelerator = (requirement: { vendor?: string; memoryMiB?: number }) => Promise<AcceleratorSelection>;

/** A secret's value for a name a skill declared, or undefined when it is not set. */
export type SecretResolver = (name: string) => Promise<string | undefined>;

const NEVER = new AbortController().signal;
const MAX_JS_OUTPUT_CHECK = ['js', 'mcp'];

export function hasScope(principal: Principal, scope: string): boolean {
  for (const s of principal.scopes) {
    if (s === scope || s === '*') return true;
    if (s.endsWith(':*') && scope.startsWith(s.slice(0, -1))) return true;
  }
  return false;
}

/** Who a call is recorded and rate-limited as. */
export function callerKey(principal: Principal, extension?: string): string {
  const who = `${principal.tenant_id ?? 'default'}/${principal.sub}`;
  return extension ? `${who} via ${extension}` : who;
}

/**
 * Every skill call passes here, whatever door it came through: the skill exists, is enabled and
 * is not quarantined, the caller holds `skills:execute` and the skill's own scope, the caller is
 * within its rate, the arguments fit the size cap and the input schema, the result fits the output
 * schema; a failure the sandbox had to kill counts towards the skill's quarantine. Every failure is
 * an error with a stable code and a message free of host detail; the detail is logged.
 */
export class Gatekeeper {
  private readonly catalog: SkillCatalog;
  private readonly runners: Runners;
  private readonly limiter: CallLimiter;
  private readonly usage: UsageRecorder;
  private readonly secrets: SecretResolver;
  private readonly quarantine: SkillQuarantine;
  private readonly log: GatekeeperLog;

  constructor(private readonly options: GatekeeperOptions) {
    this.catalog = options.catalog;
    this.runners = options.runners;
    this.limiter = options.limiter;
    this.usage = options.usage;
    this.secrets = options.secrets;
    this.quarantine = options.quarantine;
    this.log = options.log;
  }

  /** Whether `principal` may call `skill` at all (used to filter listings). */
  mayCall(skill: Skill, principal: Principal): boolean {
    return (
      hasScope(principal, EXECUTE_SCOPE) &&
      (!skill.scope || hasScope(principal, skill.scope)) &&
      this.catalog.isEnabled(skill.id) &&
      !this.quarantine.get(skill.id)
    );
  }

  async execute(id: string, args: unknown, call: CallContext): Promise<ExecuteResult> {
    const started = performance.now();
    const principal = call.principal ?? LOCAL_PRINCIPAL;
    const caller = callerKey(principal, call.extension);
    const entry = this.catalog.get(id);
    let failure: string | undefined;
    try {
      const retryAfter = await this.limiter.take(`${principal.tenant_id ?? 'default'}/${principal.sub}`);
      if (retryAfter > 0) {
        throw skillError('RATE_LIMITED', `Too many skill calls; retry in ${retryAfter} s.`, {
          headers: { 'Retry-After': String(retryAfter) },
          details: { retryAfterSeconds: retryAfter },
        });
      }
      if (!entry) throw skillError('SKILL_NOT_FOUND', `No skill ${id} is installed.`);
      const skill = entry.skill;
      if (!this.catalog.isEnabled(id)) throw skillError('SKILL_DISABLED', `The skill ${id} is disabled.`);
      const quarantined = this.quarantine.get(id);
      if (quarantined) {
        // The route goes in details: messages are stripped of anything that looks like a path.
        throw skillError(
          'SKILL_QUARANTINED',
          `The skill ${id} is quarantined. ${quarantined.reason} An operator lifts the quarantine by enabling the skill (details.enable).`,
          {
            details: { quarantine: quarantined, enable: `POST /v1/skills/${id}/enable` },
          },
        );
      }
      const missing = [EXECUTE_SCOPE, ...(skill.scope ? [skill.scope] : [])].filter((s) => !hasScope(principal, s));
      if (missing.length)
        throw skillError('FORBIDDEN', `Calling ${id} requires the scope${missing.length > 1 ? 's' : ''} ${missing.join(', ')}.`, {
          details: { missingScopes: missing },
        });

      const input = args === undefined ? {} : args;
      const inputBytes = jsonBytes(input);
      if (inputBytes > this.options.maxInputBytes) {
        throw skillError('PAYLOAD_TOO_LARGE', `The arguments are ${inputBytes} bytes; the limit is ${this.options.maxInputBytes}.`, {
          details: { bytes: inputBytes, limit: this.options.maxInputBytes },
        });
      }
      if (!entry.validateInput(input)) {
        const problems = schemaProblems(entry.validateInput.errors);
        throw skillError('VALIDATION_FAILED', `The arguments do not match the input schema of ${id}: ${describeProblems(problems)}.`, {
          details: { errors: problems },
        });
      }

      const accelerator = skill.resources?.gpu ? await this.placeOnGpu(skill) : undefined;
      const secrets = skill.permissions.secrets.length ? await this.resolveSecrets(skill) : {};
      let logged = 0;
      const maxLines = this.options.maxLogLines ?? 20;
      const onLog = (line: string) => {
        if (logged++ < maxLines) this.log.debug(`skill ${id}: ${line}`, { skill: id });
      };
      let result: unknown;
      try {
        result = await this.runners[skill.runtime].run(skill, input, { signal: call.signal ?? NEVER, secrets, onLog, ...(accelerator ? { accelerator } : {}) });
      } catch (err) {
        if (isSandboxError(err) && err.fatal) this.countFatal(id, err.code, err.message);
        throw toSkillError(err, id, (detail) => this.log.warn(`skill ${id} failed`, { ...detail, caller, via: call.via, requestId: call.requestId }));
      }
      if (MAX_JS_OUTPUT_CHECK.includes(skill.runtime)) {
        const outputBytes = jsonBytes(result);
        if (outputBytes > skill.limits.max_output_bytes)
          throw skillError('OUTPUT_TOO_LARGE', `The skill returned ${outputBytes} bytes; the limit is ${skill.limits.max_output_bytes}.`);
      }
      if (entry.validateOutput && !entry.validateOutput(result)) {
        const problems = schemaProblems(entry.validateOutput.errors);
        this.log.warn(`skill ${id} returned a result that does not match its output schema`, { skill: id, problems });
        throw skillError('OUTPUT_INVALID', `The result of ${id} does not match its output schema: ${describeProblems(problems)}.`, {
          details: { errors: problems },
        });
      }
      return { result, durationMs: performance.now() - started };
    } catch (err) {
      const error = toSkillError(err, id, (detail) => this.log.warn(`skill ${id} failed`, { ...detail, caller, via: call.via }));
      failure = error.code;
      throw error;
    } finally {
      if (entry) this.usage.record(id, caller, performance.now() - started, failure);
    }
  }

  /** A GPU for `resources.gpu`; a required one that is absent refuses the call, an optional one falls back to CPU. */
  private async placeOnGpu(skill: Skill): Promise<AcceleratorSelection | undefined> {
    const { required, vendor, memoryMiB } = skill.resources!.gpu!;
    const requirement = { ...(vendor ? { vendor } : {}), ...(memoryMiB ? { memoryMiB } : {}) };
    try {
      if (!this.options.findAccelerator) throw skillError('NO_ACCELERATOR', 'No accelerator registry is connected.');
      const device = await this.options.findAccelerator(requirement);
      return { vendor: device.vendor, index: device.index, ...(device.uuid ? { uuid: device.uuid } : {}) };
    } catch (err) {
      const code = isAionError(err) ? err.code : undefined;
      if (!required) {
        this.log.debug(`skill ${skill.id} runs on CPU: ${err instanceof Error ? err.message : String(err)}`, { skill: skill.id });
        return undefined;
      }
      if (code === 'NO_ACCELERATOR')
        throw skillError('NO_ACCELERATOR', `${skill.id}: ${(err as Error).message}`, { details: (err as { details?: unknown }).details });
      throw skillError(
        'NO_ACCELERATOR',
        `${skill.id} requires a GPU and none can be found: aion.accelerators is not available (${code ?? 'error'}: ${err instanceof Error ? err.message : String(err)}). Install or enable it with a detector for your GPU.`,
        { details: { required: requirement } },
      );
    }
  }

  private countFatal(id: string, code: string, message: string): void {
    const record = this.quarantine.recordFatal(id, code, message);
    if (record) this.log.warn(`skill ${id} quarantined: ${record.reason}`, { skill: id, quarantine: record });
  }

  private async resolveSecrets(skill: Skill): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const name of skill.permissions.secrets) {
      const value = await this.secrets(name).catch(() => undefined);
      if (value !== undefined) out[name] = value;
    }
    return out;
  }
}

/** Problems for a message: `items.0.name must be string` (JSON pointers stay in `details`; slashes read as paths to sanitizers). */
function describeProblems(problems: ReadonlyArray<{ path: string; message: string }>): string {
  return problems.map((p) => `${p.path === '/' ? '(the arguments)' : p.path.slice(1).replace(/\//g, '.')} ${p.message}`).join('; ');
}

function jsonBytes(value: unknown): number {
  const text = JSON.stringify(value);
  return text === undefined ? 0 : Buffer.byteLength(text);
}
