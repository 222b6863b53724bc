/**
 * Node flags every kernel process runs with. A request allocates much that dies young; with V8's
 * default 16 MiB semi-spaces, 64 requests in flight fill the young generation often enough that
 * scavenges copy live requests: 32 MiB semi-spaces cut the time spent in GC per request about
 * five-fold in the router benchmark (see the root README). V8 reads them only at start-up, so they
 * are given on the command line: in `aion`'s shebang (keep it in step), by `npm start`, and to each
 * `--workers` process.
 */
export const KERNEL_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32'];

/** A flag's name as V8 compares it: `--max_semi_space_size=64` and `--max-semi-space-size` are one flag. */
const nameOf = (flag: string) => flag.split('=')[0]!.replace(/_/g, '-');

/**
 * `execArgv` with every kernel flag the operator has not set already, on the command line or in
 * NODE_OPTIONS. (A flag in `aion`'s shebang is on the command line, so there it wins over NODE_OPTIONS:
 * to choose another size, run `node --max-semi-space-size=N <aion> serve`.)
 */
export function withKernelFlags(execArgv: readonly string[], nodeOptions = process.env.NODE_OPTIONS ?? ''): string[] {
  const given = new Set([...execArgv, ...nodeOptions.split(/\s+/)].map(nameOf));
  return [...execArgv, ...KERNEL_NODE_FLAGS.filter((flag) => !given.has(nameOf(flag)))];
}
