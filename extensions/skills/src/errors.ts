import { AionError, isAionError } from '@aion/extension-api';
import { isSandboxError, type SandboxErrorCode } from '@aion/sandbox';

/** Stable codes of every skill call failure, with the HTTP status each maps to. */
export const SkillErrorStatus = {
  SKILL_NOT_FOUND: 404,
  SKILL_DISABLED: 409,
  SKILL_QUARANTINED: 423,
  FORBIDDEN: 403,
  RATE_LIMITED: 429,
  PAYLOAD_TOO_LARGE: 413,
  VALIDATION_FAILED: 400,
  TIMEOUT: 504,
  CANCELLED: 499,
  MEMORY_LIMIT: 507,
  STACK_OVERFLOW: 502,
  OUTPUT_TOO_LARGE: 502,
  OUTPUT_INVALID: 502,
  SKILL_FAILED: 502,
  PERMISSION_DENIED: 403,
  SKILL_UNAVAILABLE: 503,
  NO_ACCELERATOR: 503,
  INTERNAL: 500,
} as const;

export type SkillErrorCode = keyof typeof SkillErrorStatus;

export function skillError(code: SkillErrorCode, message: string, options: { details?: unknown; headers?: Record<string, string> } = {}): AionError {
  return new AionError(code, publicMessage(message), { status: SkillErrorStatus[code], ...options });
}

const PATH = /(?:file:\/\/)?(?:[A-Za-z]:)?(?:[\\/][\w.@+~-]+){2,}[\\/]?/g;

/** Text fit for a client or a model: one paragraph, no host paths, no stack frames, bounded. */
export function publicMessage(text: string, max = 1000): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^at\s/.test(l));
  const joined = lines.join(' | ').replace(PATH, '[path]');
  return joined.length > max ? `${joined.slice(0, max - 1)}…` : joined;
}

/**
 * Sandbox codes a skill's caller sees under another code. Every other sandbox code is a skill code of
 * the same name; the type makes a new sandbox code that is not one fail to compile until it is mapped here.
 */
const RENAMED_SANDBOX_CODES: Record<Exclude<SandboxErrorCode, SkillErrorCode>, SkillErrorCode> = {
  INVALID_OUTPUT: 'SKILL_FAILED',
  MODULE_INVALID: 'SKILL_UNAVAILABLE',
  MODULE_MEMORY_UNBOUNDED: 'SKILL_UNAVAILABLE',
  MODULE_TABLE_UNBOUNDED: 'SKILL_UNAVAILABLE',
  MODULE_TOO_LARGE: 'SKILL_UNAVAILABLE',
  ENGINE_CLOSED: 'SKILL_UNAVAILABLE',
  INVALID_REQUEST: 'INTERNAL',
};

function skillCodeOf(code: SandboxErrorCode): SkillErrorCode {
  if (code in RENAMED_SANDBOX_CODES) return RENAMED_SANDBOX_CODES[code as keyof typeof RENAMED_SANDBOX_CODES];
  return code in SkillErrorStatus ? (code as SkillErrorCode) : 'SKILL_FAILED';
}

/** Any failure of a runtime as a skill error with a stable code; `log` receives the full detail. */
export function toSkillError(err: unknown, skillId: string, log: (detail: Record<string, unknown>) => void): AionError {
  if (isSandboxError(err)) {
    log({ skill: skillId, code: err.code, message: err.message, stderr: err.stderr, diagnostics: err.diagnostics });
    const code = skillCodeOf(err.code);
    if (code === 'INTERNAL') return skillError('INTERNAL', `The skill ${skillId} could not be run.`);
    return skillError(
      code,
      err.message,
      err.diagnostics.length ? { details: { diagnostics: err.diagnostics.map((d) => ({ code: d.code, message: publicMessage(d.message) })) } } : {},
    );
  }
  if (isAionError(err)) {
    if (err.code in SkillErrorStatus && err.code !== 'INTERNAL')
      return err.status ? err : skillError(err.code as SkillErrorCode, err.message, { details: err.details, headers: err.headers });
    log({ skill: skillId, code: err.code, message: err.message });
    if (
      err.code === 'EXTENSION_HOST_CRASHED' ||
      err.code === 'EXTENSION_DISABLED' ||
      err.code === 'CONTRIBUTION_NOT_FOUND' ||
      err.code === 'ACTIVATION_FAILED'
    ) {
      return skillError('SKILL_UNAVAILABLE', `The skill ${skillId} is not available: ${err.message}`);
    }
    return skillError('SKILL_FAILED', `${err.code}: ${err.message}`);
  }
  log({ skill: skillId, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  return skillError('SKILL_FAILED', `The skill ${skillId} failed: ${err instanceof Error ? err.message : String(err)}`);
}
