/** Stable codes of every sandbox failure. Callers match on these, never on messages. */
export const SandboxErrorCodes = {
  TIMEOUT: 'TIMEOUT',
  CANCELLED: 'CANCELLED',
  MEMORY_LIMIT: 'MEMORY_LIMIT',
  STACK_OVERFLOW: 'STACK_OVERFLOW',
  OUTPUT_TOO_LARGE: 'OUTPUT_TOO_LARGE',
  SKILL_FAILED: 'SKILL_FAILED',
  INVALID_OUTPUT: 'INVALID_OUTPUT',
  INVALID_REQUEST: 'INVALID_REQUEST',
  MODULE_INVALID: 'MODULE_INVALID',
  MODULE_MEMORY_UNBOUNDED: 'MODULE_MEMORY_UNBOUNDED',
  MODULE_TABLE_UNBOUNDED: 'MODULE_TABLE_UNBOUNDED',
  MODULE_TOO_LARGE: 'MODULE_TOO_LARGE',
  PERMISSION_DENIED: 'PERMISSION_DENIED',
  ENGINE_CLOSED: 'ENGINE_CLOSED',
} as const;

export type SandboxErrorCode = (typeof SandboxErrorCodes)[keyof typeof SandboxErrorCodes];

/** Something the sandbox refused or noticed during a call that did not necessarily fail it. */
export interface SandboxDiagnostic {
  code: SandboxErrorCode;
  message: string;
}

export interface SandboxErrorOptions {
  /** The tail of what the guest wrote to stderr before it failed. */
  stderr?: string;
  diagnostics?: readonly SandboxDiagnostic[];
  /** The sandbox had to stop the guest by force for what it did: see `SandboxError.fatal`. */
  fatal?: boolean;
}

/**
 * A failed sandbox call. The message names what went wrong in the guest's terms and never
 * carries host paths or host stack frames.
 */
export class SandboxError extends Error {
  readonly code: SandboxErrorCode;
  readonly stderr: string;
  readonly diagnostics: readonly SandboxDiagnostic[];
  /**
   * True when the guest was killed for what it did: a timed-out or out-of-memory WASM worker
   * terminated, a worker that crashed, a process killed on timeout or by a signal. A caller's
   * cancellation or a closing engine is not fatal. Callers count these to quarantine a skill.
   */
  readonly fatal: boolean;

  constructor(code: SandboxErrorCode, message: string, options: SandboxErrorOptions = {}) {
    super(message);
    this.name = 'SandboxError';
    this.code = code;
    this.stderr = options.stderr ?? '';
    this.diagnostics = options.diagnostics ?? [];
    this.fatal = options.fatal ?? false;
  }

  toJSON(): { code: SandboxErrorCode; message: string; diagnostics?: readonly SandboxDiagnostic[] } {
    return this.diagnostics.length ? { code: this.code, message: this.message, diagnostics: this.diagnostics } : { code: this.code, message: this.message };
  }
}

export function isSandboxError(value: unknown, code?: SandboxErrorCode): value is SandboxError {
  return value instanceof SandboxError && (code === undefined || value.code === code);
}

/** The last `maxChars` characters of a text, marked when cut. */
export function tail(text: string, maxChars = 2000): string {
  return text.length <= maxChars ? text : `…${text.slice(text.length - maxChars)}`;
}
