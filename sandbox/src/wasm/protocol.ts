/**
 * Messages between the engine (main thread) and a guest worker. Only plain data crosses; a
 * `WebAssembly.Module` travels once per worker and is cached there by hash.
 */

export interface RunMessage {
  type: 'run';
  callId: number;
  hash: string;
  /** Sent the first time this worker sees the hash. */
  module?: WebAssembly.Module;
  stdin: Uint8Array;
  args: string[];
  env: string[];
  secrets: Record<string, string>;
  /** Whether `aion.http_fetch` may ask the engine for a request at all (any host declared). */
  network: boolean;
  memory: { initialPages: number; maximumPages: number } | null;
  maxOutputBytes: number;
  maxStderrBytes: number;
  maxHttpResponseBytes: number;
}

export interface ForgetMessage {
  type: 'forget';
  hash: string;
}

export type ToWorker = RunMessage | ForgetMessage;

/** How a guest ended, as the worker saw it. The engine turns this into a result or a `SandboxError`. */
export type GuestOutcome =
  | { kind: 'exit'; code: number }
  | { kind: 'output-too-large'; limit: number }
  | { kind: 'trap'; message: string; trapOffset: number | null; memoryPages: number }
  | { kind: 'stack-overflow' }
  | { kind: 'instantiate-failed'; message: string };

export interface DoneMessage {
  type: 'done';
  callId: number;
  outcome: GuestOutcome;
  stdout: Uint8Array;
  stderr: string;
  /** Host calls the guest made that the sandbox refused. */
  denials: string[];
}

export interface LogMessage {
  type: 'log';
  callId: number;
  text: string;
}

/**
 * A synchronous host request from the guest. The worker blocks on `control[0]` with `Atomics.wait`
 * until the engine stores the result length (or a negative `HostCallStatus`) in `control[1]`, the
 * result bytes in `data`, a reason for a refusal or failure (UTF-8, `control[2]` bytes) from byte
 * `CONTROL_REASON_OFFSET` of `control`, and sets `control[0]` to 1.
 */
export interface FetchMessage {
  type: 'fetch';
  callId: number;
  request: Uint8Array;
  control: SharedArrayBuffer;
  data: SharedArrayBuffer;
}

export const CONTROL_REASON_OFFSET = 16;
export const CONTROL_BYTES = CONTROL_REASON_OFFSET + 1024;

/** Sent once when the worker has loaded and listens: `ready()` waits for this, not for the thread's start. */
export interface ReadyMessage {
  type: 'ready';
}

export type FromWorker = DoneMessage | LogMessage | FetchMessage | ReadyMessage;

/** Return codes of `aion.*` host calls. Non-negative values are lengths. */
export const HostCallStatus = {
  DENIED: -1,
  TOO_LARGE: -2,
  INVALID_REQUEST: -3,
  NETWORK_ERROR: -4,
  FAULT: -5,
} as const;

/**
 * Caps on what one host call may make the worker allocate for the guest. Each stays far below
 * the worker heap's headroom, because a single allocation larger than that aborts the process.
 */
export const HOST_CALL_LIMITS = {
  /** `aion.secret_get` names; longer ones are refused like an undeclared name. */
  secretNameBytes: 256,
  /** `aion.http_fetch` request JSON; larger is `INVALID_REQUEST`. */
  httpRequestBytes: 1024 * 1024,
  /** Text of an AssemblyScript `abort` message kept for the log. */
  abortMessageBytes: 4096,
  /** Refusals kept for `diagnostics`; the rest are counted. */
  denials: 16,
  /** `iovs_len` of `fd_read`/`fd_write` (POSIX IOV_MAX). */
  iovecs: 1024,
  /** Largest `maxStderrBytes` a call may ask for: stderr is held as text in the worker. */
  stderrBytes: 1024 * 1024,
} as const;
