#!/usr/bin/env node
// Compiles each AssemblyScript skill in assembly/skills/ into dist/skills/<name>.wasm, offline,
// with the asc API: a WASI command that imports its memory (the sandbox caps it).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const sources = join(root, 'assembly', 'skills');
export const skillsDir = join(root, 'dist', 'skills');

export const skillNames = () =>
  readdirSync(sources)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => basename(f, '.ts'))
    .sort();

function wasiShimArgs() {
  const config = createRequire(import.meta.url).resolve('@assemblyscript/wasi-shim/asconfig.json');
  const { options } = JSON.parse(readFileSync(config, 'utf8'));
  return ['--lib', resolve(dirname(config), options.lib), ...options.use.flatMap((u) => ['--use', u]), '--exportStart', options.exportStart];
}

function newestSource() {
  const walk = (dir) =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [statSync(join(dir, e.name)).mtimeMs]));
  return Math.max(...walk(join(root, 'assembly')), statSync(fileURLToPath(import.meta.url)).mtimeMs);
}

/** Builds every skill, or only those whose module is missing or older than the sources when `onlyStale`. */
export async function buildSkills({ onlyStale = false, log = () => {} } = {}) {
  const { default: asc } = await import('assemblyscript/asc');
  await mkdir(skillsDir, { recursive: true });
  const newest = onlyStale ? newestSource() : Infinity;
  const built = [];
  for (const name of skillNames()) {
    const outFile = join(skillsDir, `${name}.wasm`);
    if (onlyStale && existsSync(outFile) && statSync(outFile).mtimeMs >= newest) continue;
    const started = Date.now();
    // Paths relative to the package root, so the module (and its hash) does not depend on the working directory.
    const result = await asc.main(
      [`assembly/skills/${name}.ts`, '--baseDir', root, ...wasiShimArgs(), '--runtime', 'incremental', '-O3', '--importMemory', '--outFile', outFile],
      {
        // asc's default lister joins an absolute library path onto its base directory; list it as given.
        listFiles: (dir, baseDir) => {
          try {
            return readdirSync(resolve(baseDir, dir)).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
          } catch {
            return null;
          }
        },
      },
    );
    if (result.error) throw new Error(`${name}: ${result.error.message}\n${result.stderr.toString()}`);
    built.push(name);
    log(`${name}.wasm ${statSync(outFile).size} bytes in ${Date.now() - started} ms`);
  }
  return built;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  buildSkills({ log: console.log }).catch((err) => {
    console.error(err.message);
    process.exit(1);
  });
}
