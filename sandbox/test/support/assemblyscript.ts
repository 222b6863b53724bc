import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';

const require = createRequire(import.meta.url);
const sandboxRoot = resolve(dirname(new URL(import.meta.url).pathname), '../../..');

/** What `@assemblyscript/wasi-shim/asconfig.json` sets, spelled out so it works from any directory. */
function wasiShimArgs(): string[] {
  const config = require.resolve('@assemblyscript/wasi-shim/asconfig.json');
  const { options } = JSON.parse(readFileSync(config, 'utf8')) as { options: { lib: string; use: string[]; exportStart: string } };
  return ['--lib', resolve(dirname(config), options.lib), ...options.use.flatMap((u) => ['--use', u]), '--exportStart', options.exportStart];
}

/**
 * Compiles one AssemblyScript file to a WASI command module with the asc API, skipping the work
 * when the source, flags and compiler are unchanged since the last build.
 */
export async function compileAssemblyScript(source: string, outFile: string, flags: readonly string[]): Promise<Uint8Array> {
  const asc = (await import('assemblyscript/asc')).default;
  // Source paths are embedded in abort messages: make them relative to a fixed base, not to the working directory.
  const args = [relative(sandboxRoot, source), '--baseDir', sandboxRoot, ...wasiShimArgs(), '--runtime', 'incremental', '-O3', '--noAssert', ...flags];
  const stampFile = `${outFile}.stamp`;
  const stamp = createHash('sha256')
    .update(asc.version)
    .update(JSON.stringify(args))
    .update(await readFile(source))
    .digest('hex');
  if (existsSync(outFile) && existsSync(stampFile) && (await readFile(stampFile, 'utf8')) === stamp) return new Uint8Array(await readFile(outFile));
  await mkdir(dirname(outFile), { recursive: true });
  const result = await asc.main([...args, '--outFile', outFile], {
    // asc's default lister joins an absolute library path onto its base directory; list it as given.
    listFiles: (dir: string, baseDir: string) => {
      try {
        return readdirSync(resolve(baseDir, dir)).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
      } catch {
        return null;
      }
    },
  });
  if (result.error) throw new Error(`asc failed for ${source}: ${result.error.message}\n${result.stderr.toString()}`);
  await writeFile(stampFile, stamp);
  return new Uint8Array(await readFile(outFile));
}

export interface Fixtures {
  /** Imports `env.memory`: the sandbox supplies and caps it. */
  probe: Uint8Array;
  /** Defines its own memory with a maximum of 8 pages. */
  probeBounded: Uint8Array;
  /** Defines its own memory without a maximum: must be refused. */
  probeUnbounded: Uint8Array;
  /** Plain WASI preview1 (no `aion` imports), for comparing runtimes: imported memory. */
  wasiProbe: Uint8Array;
  /** The same, defining its own memory without a maximum, as other WASI runtimes expect. */
  wasiProbeOwnMemory: Uint8Array;
}

let fixtures: Promise<Fixtures> | undefined;

/** The test guests, compiled once per run (and cached across runs in dist). */
export function buildFixtures(): Promise<Fixtures> {
  fixtures ??= (async () => {
    const source = join(sandboxRoot, 'test/fixtures/wasm/probe.ts');
    const wasiSource = join(sandboxRoot, 'test/fixtures/wasm/wasi-probe.ts');
    const out = (name: string) => join(sandboxRoot, 'dist/test/fixtures-wasm', `${name}.wasm`);
    return {
      probe: await compileAssemblyScript(source, out('probe'), ['--importMemory']),
      probeBounded: await compileAssemblyScript(source, out('probe-bounded'), ['--maximumMemory', '8']),
      probeUnbounded: await compileAssemblyScript(source, out('probe-unbounded'), []),
      wasiProbe: await compileAssemblyScript(wasiSource, out('wasi-probe'), ['--importMemory']),
      wasiProbeOwnMemory: await compileAssemblyScript(wasiSource, out('wasi-probe-own-memory'), []),
    };
  })();
  return fixtures;
}

export const paths = { sandboxRoot };
