/**
 * Node flags every kernel process runs with. A request allocates much that dies young; with V8's
 * default 16 MiB semi-spaces, 64 requests in flight fill the young generation often enough that
 * scavenges copy live requests: 32 MiB semi-spaces cut the time spent in GC per request about
 * five-fold in the router benchmark (see the root README). V8 reads them only at start-up, so they
 * are given on the command line: in `aion`'s shebang (keep it in step), by `npm start`, and to each
 * `--workers` process.
 */
export const KERNEL_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=32'];

/** `execArgv` with every kernel flag the operator has not set already (on the command line or in NODE_OPTIONS). */
export function withKernelFlags(execArgv: readonly string[], nodeOptions = process.env.NODE_OPTIONS ?? ''): string[] {
  const given = [...execArgv, ...nodeOptions.split(/\s+/)].map((flag) => flag.split('=')[0]);
  return [...execArgv, ...KERNEL_NODE_FLAGS.filter((flag) => !given.includes(flag.split('=')[0]))];
}
