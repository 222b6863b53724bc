/** Hand-written guests that attack the sandbox's limits; each is a WASI command built byte by byte. */
import { FUNCREF, I32, leb, sleb, V128, wasmModule } from './wasm-builder.js';

const op = {
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  end: 0x0b,
  br: (depth: number) => [0x0c, ...leb(depth)],
  brIf: (depth: number) => [0x0d, ...leb(depth)],
  call: (index: number) => [0x10, ...leb(index)],
  drop: 0x1a,
  localGet: (index: number) => [0x20, ...leb(index)],
  localSet: (index: number) => [0x21, ...leb(index)],
  localTee: (index: number) => [0x22, ...leb(index)],
  i32: (value: number) => [0x41, ...sleb(value)],
  i32Eq: 0x46,
  i32LtU: 0x49,
  i32Add: 0x6a,
  i32Shl: 0x74,
  memoryGrow: [0x40, 0x00],
  memoryFill: [0xfc, 0x0b, 0x00],
  refNullFunc: [0xd0, FUNCREF],
  tableGrow: [0xfc, 0x0f, 0x00],
  tableSize: [0xfc, 0x10, 0x00],
  unreachable: 0x00,
};

const FD_WRITE_TYPE: [number[], number[]] = [[I32, I32, I32, I32], [I32]];
const PROC_EXIT_TYPE: [number[], number[]] = [[I32], []];
const LOG_TYPE: [number[], number[]] = [[I32, I32], []];

function u32(value: number): number[] {
  return [value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, (value >>> 24) & 0xff];
}

/** Writes `text` to stdout and returns: a well-behaved neighbour. */
export function jsonGuest(text: string): Uint8Array {
  const bytes = [...new TextEncoder().encode(text)];
  return wasmModule({
    types: [[[], []], FD_WRITE_TYPE],
    functionImports: [['wasi_snapshot_preview1', 'fd_write', 1]],
    importedMemory: { min: 1 },
    data: [
      { offset: 0, bytes: [...u32(64), ...u32(bytes.length)] },
      { offset: 64, bytes },
    ],
    functions: [{ body: [...op.i32(1), ...op.i32(0), ...op.i32(1), ...op.i32(8), ...op.call(0), op.drop] }],
  });
}

/** Spins forever without calling the host. */
export function loopGuest(): Uint8Array {
  return wasmModule({ importedMemory: { min: 1 }, functions: [{ body: [...op.loop, ...op.br(0), op.end] }] });
}

/**
 * Takes everything it can: grows its memory a page at a time and fills each page until
 * `memory.grow` fails, grows its table until `table.grow` fails, then traps. Without `tableMax` the table is unbounded.
 */
export function hogGuest(tableMax?: number): Uint8Array {
  return wasmModule({
    importedMemory: { min: 1 },
    tables: [{ min: 1, max: tableMax }],
    functions: [
      {
        locals: [[1, I32]],
        body: [
          ...op.block,
          ...op.loop,
          ...op.i32(1),
          ...op.memoryGrow,
          ...op.localTee(0),
          ...op.i32(-1),
          op.i32Eq,
          ...op.brIf(1),
          ...op.localGet(0),
          ...op.i32(16),
          op.i32Shl,
          ...op.i32(0x5a),
          ...op.i32(65536),
          ...op.memoryFill,
          ...op.br(0),
          op.end,
          op.end,
          ...op.block,
          ...op.loop,
          ...op.refNullFunc,
          ...op.i32(1024),
          ...op.tableGrow,
          ...op.i32(-1),
          op.i32Eq,
          ...op.brIf(1),
          ...op.br(0),
          op.end,
          op.end,
          op.unreachable,
        ],
      },
    ],
  });
}

/** Grows its table by 1000 until `table.grow` fails, then exits with the table's size as its exit code. */
export function tableGrowGuest(table: { min: number; max?: number }): Uint8Array {
  return wasmModule({
    types: [[[], []], PROC_EXIT_TYPE],
    functionImports: [['wasi_snapshot_preview1', 'proc_exit', 1]],
    importedMemory: { min: 1 },
    tables: [table],
    functions: [
      {
        body: [
          ...op.block,
          ...op.loop,
          ...op.refNullFunc,
          ...op.i32(1000),
          ...op.tableGrow,
          ...op.i32(-1),
          op.i32Eq,
          ...op.brIf(1),
          ...op.br(0),
          op.end,
          op.end,
          ...op.tableSize,
          ...op.call(0),
        ],
      },
    ],
  });
}

/** Calls itself until the stack runs out; `frameLocals` v128 locals make each frame large. */
export function recursionGuest(frameLocals = 0): Uint8Array {
  return wasmModule({
    importedMemory: { min: 1 },
    functions: [{ body: op.call(1) }, { locals: frameLocals ? [[frameLocals, V128]] : [], body: op.call(1) }],
  });
}

/** Writes one byte to stderr per host call, forever: the worker holds what it keeps of stderr on its heap. */
export function stderrFloodGuest(): Uint8Array {
  return wasmModule({
    types: [[[], []], FD_WRITE_TYPE],
    functionImports: [['wasi_snapshot_preview1', 'fd_write', 1]],
    importedMemory: { min: 1 },
    data: [
      { offset: 0, bytes: [...u32(64), ...u32(1)] },
      { offset: 64, bytes: [0x78] },
    ],
    functions: [{ body: [...op.loop, ...op.i32(2), ...op.i32(0), ...op.i32(1), ...op.i32(8), ...op.call(0), op.drop, ...op.br(0), op.end] }],
  });
}

/** Ways to make the host allocate for the guest, one per host call. */
export type HostCallFlood = 'secret-names' | 'log-lines' | 'fetch-requests' | 'iovecs' | 'stdout-bytes';

const FLOOD_BYTES = 48 * 1024 * 1024;

/**
 * Grows its memory to 48 MiB, then asks the host to allocate for it: `secret_get` with a 48 MiB
 * name, `aion.log` with 48 MiB of text, `http_fetch` with a 48 MiB request (20 times each), one
 * `fd_write` with six million iovecs, or a byte at a time to stdout forever. When the host call
 * returns it writes `{}` and exits.
 */
export function hostCallFloodGuest(flood: HostCallFlood): Uint8Array {
  const [FD_WRITE, SECRET_GET, LOG, HTTP_FETCH] = [0, 1, 2, 3];
  const twentyTimes = (call: number[]) => [
    ...op.i32(0),
    ...op.localSet(0),
    ...op.loop,
    ...call,
    ...op.localGet(0),
    ...op.i32(1),
    op.i32Add,
    ...op.localTee(0),
    ...op.i32(20),
    op.i32LtU,
    ...op.brIf(0),
    op.end,
  ];
  const floods: Record<HostCallFlood, number[]> = {
    'secret-names': twentyTimes([...op.i32(0), ...op.i32(FLOOD_BYTES), ...op.i32(0), ...op.i32(0), ...op.call(SECRET_GET), op.drop]),
    'log-lines': twentyTimes([...op.i32(0), ...op.i32(FLOOD_BYTES), ...op.call(LOG)]),
    'fetch-requests': twentyTimes([...op.i32(0), ...op.i32(FLOOD_BYTES), ...op.i32(0), ...op.i32(0), ...op.call(HTTP_FETCH), op.drop]),
    // Zeroed iovecs from offset 1024: each is (0, 0), a valid empty write.
    iovecs: [...op.i32(1), ...op.i32(1024), ...op.i32(6_000_000), ...op.i32(16), ...op.call(FD_WRITE), op.drop],
    'stdout-bytes': [...op.loop, ...op.i32(1), ...op.i32(24), ...op.i32(1), ...op.i32(16), ...op.call(FD_WRITE), op.drop, ...op.br(0), op.end],
  };
  return wasmModule({
    types: [[[], []], FD_WRITE_TYPE, LOG_TYPE],
    functionImports: [
      ['wasi_snapshot_preview1', 'fd_write', 1],
      ['aion', 'secret_get', 1],
      ['aion', 'log', 2],
      ['aion', 'http_fetch', 1],
    ],
    importedMemory: { min: 1 },
    // 0: iovec of "{}"; 24: iovec of one byte; 64: the text.
    data: [
      { offset: 0, bytes: [...u32(64), ...u32(2)] },
      { offset: 24, bytes: [...u32(66), ...u32(1)] },
      { offset: 64, bytes: [0x7b, 0x7d, 0x20] },
    ],
    functions: [
      {
        locals: [[1, I32]],
        body: [
          ...op.i32(FLOOD_BYTES / 65536),
          ...op.memoryGrow,
          op.drop,
          ...floods[flood],
          ...op.i32(1),
          ...op.i32(0),
          ...op.i32(1),
          ...op.i32(16),
          ...op.call(FD_WRITE),
          op.drop,
        ],
      },
    ],
  });
}
