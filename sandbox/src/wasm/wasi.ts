import { randomFillSync } from 'node:crypto';
import { HOST_CALL_LIMITS } from './protocol.js';

/** WASI preview1 errno values the sandbox returns. */
export const Errno = {
  SUCCESS: 0,
  BADF: 8,
  FAULT: 21,
  INVAL: 28,
  NOSYS: 52,
  SPIPE: 70,
} as const;

const FILETYPE_CHARACTER_DEVICE = 2;
const RIGHT_FD_READ = 1n << 1n;
const RIGHT_FD_WRITE = 1n << 6n;

/** Thrown through the guest's frames by `proc_exit`. */
export class GuestExit {
  constructor(readonly code: number) {}
}

class TooManyIovecs {}

/** Thrown through the guest's frames when its stdout passes `maxOutputBytes`. */
export class OutputLimitReached {
  constructor(readonly limit: number) {}
}

/** V8 unwinds a guest that recursed past the worker's `stackSizeMb` with this RangeError; the thread lives on. */
export function isStackOverflow(err: unknown): boolean {
  return err instanceof RangeError && /Maximum call stack size exceeded/.test(err.message);
}

/** What one guest call can see and where its output goes. */
export interface WasiCall {
  readonly memory: WebAssembly.Memory;
  readonly stdin: Uint8Array;
  stdinOffset: number;
  readonly args: readonly string[];
  readonly env: readonly string[];
  writeStdout(bytes: Uint8Array): void;
  writeStderr(bytes: Uint8Array): void;
}

export type WasiFunction = (...args: never[]) => number | undefined;

/**
 * The WASI preview1 subset the sandbox implements in JS: stdio from buffers, args, declared env,
 * clocks, randomness and exit. There are no preopened directories, so every path call fails, and
 * every function not listed here answers ENOSYS.
 */
export function createWasiImports(current: () => WasiCall): Record<string, WasiFunction> {
  const encoder = new TextEncoder();

  const view = () => new DataView(current().memory.buffer);
  const bytes = () => new Uint8Array(current().memory.buffer);

  // Guest pointers are untrusted: an out-of-range one is EFAULT, never a host exception.
  const guarded =
    <A extends unknown[]>(fn: (...args: A) => number) =>
    (...args: A): number => {
      try {
        return fn(...args);
      } catch (err) {
        if (err instanceof GuestExit || err instanceof OutputLimitReached || isStackOverflow(err)) throw err;
        if (err instanceof RangeError) return Errno.FAULT;
        if (err instanceof TooManyIovecs) return Errno.INVAL;
        throw err;
      }
    };

  const sizes = (strings: readonly string[], countPtr: number, sizePtr: number): number => {
    const dv = view();
    dv.setUint32(countPtr, strings.length, true);
    dv.setUint32(
      sizePtr,
      strings.reduce((n, s) => n + encoder.encode(s).length + 1, 0),
      true,
    );
    return Errno.SUCCESS;
  };

  const strings = (values: readonly string[], ptrsPtr: number, bufPtr: number): number => {
    const dv = view();
    const mem = bytes();
    let offset = bufPtr;
    values.forEach((value, i) => {
      const encoded = encoder.encode(value);
      if (offset + encoded.length + 1 > mem.length) throw new RangeError('out of bounds');
      dv.setUint32(ptrsPtr + i * 4, offset, true);
      mem.set(encoded, offset);
      mem[offset + encoded.length] = 0;
      offset += encoded.length + 1;
    });
    return Errno.SUCCESS;
  };

  // A guest-chosen count must not size a host array: POSIX's IOV_MAX bounds it.
  const iovecs = (iovsPtr: number, iovsLen: number): Array<[number, number]> => {
    if (iovsLen > HOST_CALL_LIMITS.iovecs) throw new TooManyIovecs();
    const dv = view();
    const list: Array<[number, number]> = [];
    for (let i = 0; i < iovsLen; i++) {
      const ptr = dv.getUint32(iovsPtr + i * 8, true);
      const len = dv.getUint32(iovsPtr + i * 8 + 4, true);
      if (ptr + len > dv.byteLength) throw new RangeError('out of bounds');
      list.push([ptr, len]);
    }
    return list;
  };

  return {
    args_sizes_get: guarded((countPtr: number, sizePtr: number) => sizes(current().args, countPtr, sizePtr)),
    args_get: guarded((ptrsPtr: number, bufPtr: number) => strings(current().args, ptrsPtr, bufPtr)),
    environ_sizes_get: guarded((countPtr: number, sizePtr: number) => sizes(current().env, countPtr, sizePtr)),
    environ_get: guarded((ptrsPtr: number, bufPtr: number) => strings(current().env, ptrsPtr, bufPtr)),

    fd_read: guarded((fd: number, iovsPtr: number, iovsLen: number, nreadPtr: number) => {
      if (fd !== 0) return Errno.BADF;
      const call = current();
      const mem = bytes();
      let total = 0;
      for (const [ptr, len] of iovecs(iovsPtr, iovsLen)) {
        const chunk = call.stdin.subarray(call.stdinOffset, call.stdinOffset + len);
        mem.set(chunk, ptr);
        call.stdinOffset += chunk.length;
        total += chunk.length;
        if (chunk.length < len) break;
      }
      view().setUint32(nreadPtr, total, true);
      return Errno.SUCCESS;
    }),

    fd_write: guarded((fd: number, iovsPtr: number, iovsLen: number, nwrittenPtr: number) => {
      if (fd !== 1 && fd !== 2) return Errno.BADF;
      const call = current();
      const mem = bytes();
      let total = 0;
      for (const [ptr, len] of iovecs(iovsPtr, iovsLen)) {
        const chunk = mem.subarray(ptr, ptr + len);
        if (fd === 1) call.writeStdout(chunk);
        else call.writeStderr(chunk);
        total += len;
      }
      view().setUint32(nwrittenPtr, total, true);
      return Errno.SUCCESS;
    }),

    fd_close: (fd: number) => (fd >= 0 && fd <= 2 ? Errno.SUCCESS : Errno.BADF),
    fd_seek: (fd: number) => (fd >= 0 && fd <= 2 ? Errno.SPIPE : Errno.BADF),
    fd_fdstat_get: guarded((fd: number, statPtr: number) => {
      if (fd < 0 || fd > 2) return Errno.BADF;
      const dv = view();
      dv.setUint8(statPtr, FILETYPE_CHARACTER_DEVICE);
      dv.setUint16(statPtr + 2, 0, true);
      dv.setBigUint64(statPtr + 8, fd === 0 ? RIGHT_FD_READ : RIGHT_FD_WRITE, true);
      dv.setBigUint64(statPtr + 16, 0n, true);
      return Errno.SUCCESS;
    }),
    // No preopened directories: a guest that looks for them finds none.
    fd_prestat_get: () => Errno.BADF,
    fd_prestat_dir_name: () => Errno.BADF,

    clock_res_get: guarded((id: number, resPtr: number) => {
      if (id < 0 || id > 3) return Errno.INVAL;
      view().setBigUint64(resPtr, 1000n, true);
      return Errno.SUCCESS;
    }),
    clock_time_get: guarded((id: number, _precision: bigint, timePtr: number) => {
      let ns: bigint;
      if (id === 0) ns = BigInt(Date.now()) * 1_000_000n;
      else if (id >= 1 && id <= 3) ns = process.hrtime.bigint();
      else return Errno.INVAL;
      view().setBigUint64(timePtr, ns, true);
      return Errno.SUCCESS;
    }),
    random_get: guarded((bufPtr: number, len: number) => {
      const mem = bytes();
      if (bufPtr + len > mem.length) return Errno.FAULT;
      randomFillSync(mem, bufPtr, len);
      return Errno.SUCCESS;
    }),

    proc_exit: (code: number) => {
      throw new GuestExit(code);
    },
  };
}

/** One function for every unimplemented name, so a module importing many costs the worker no function each. */
const notImplemented: WasiFunction = () => Errno.NOSYS;

/** `wasi_snapshot_preview1` for one module: the implemented subset, ENOSYS for every other name it imports. */
export function wasiImportsFor(
  moduleImports: readonly WebAssembly.ModuleImportDescriptor[],
  implemented: Record<string, WasiFunction>,
): Record<string, WasiFunction> {
  const result: Record<string, WasiFunction> = {};
  for (const { module, name } of moduleImports) {
    if (module !== 'wasi_snapshot_preview1') continue;
    result[name] = Object.hasOwn(implemented, name) ? implemented[name]! : notImplemented;
  }
  return result;
}
