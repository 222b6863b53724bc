#!/usr/bin/env node
// `npm start`: an incremental build (tsc -b does nothing when nothing changed), the sample WASM skills
// only when their inputs changed, then the server, with SIGINT/SIGTERM forwarded so stopping npm
// never orphans it. Arguments after `--` go to `aion serve`.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const started = performance.now();
const log = (line) => process.stderr.write(`[start] ${line}\n`);

/** Newest modification time of a project's inputs (TypeScript sources and tsconfig files), skipping outputs. */
function newestInput(dir) {
  let newest = 0;
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.name === 'node_modules' || e.name === 'dist' || e.name.startsWith('.')) continue;
      const path = join(d, e.name);
      if (e.isDirectory()) walk(path);
      else if (/\.(ts|tsx|mts|cts)$|^tsconfig.*\.json$/.test(e.name)) newest = Math.max(newest, statSync(path).mtimeMs);
    }
  };
  walk(dir);
  return newest;
}

/** True when every project's build info is newer than all its inputs: `tsc -b` would do nothing, so skip loading it. */
function upToDate() {
  const shared = statSync(join(root, 'tsconfig.base.json')).mtimeMs;
  const { references } = JSON.parse(readFileSync(join(root, 'tsconfig.json'), 'utf8'));
  return references.every(({ path }) => {
    const info = join(root, path, 'dist', 'tsconfig.tsbuildinfo');
    if (!existsSync(info)) return false;
    const built = statSync(info).mtimeMs;
    return built >= shared && built >= newestInput(join(root, path));
  });
}

if (upToDate()) log(`sources unchanged since the last build: tsc -b skipped (${Math.round(performance.now() - started)} ms to check)`);
else {
  const tsc = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-b'], { cwd: root, stdio: 'inherit' });
  if (tsc.status !== 0) process.exit(tsc.status ?? 1);
  log(`tsc -b: ${Math.round(performance.now() - started)} ms`);
}

/** A hash of the sample skills' sources and build script: the WASM is rebuilt only when it changes. */
function wasmInputsHash(sample) {
  const hash = createHash('sha256');
  const walk = (dir) =>
    readdirSync(dir, { withFileTypes: true })
      .sort((a, b) => a.name.localeCompare(b.name))
      .forEach((e) => (e.isDirectory() ? walk(join(dir, e.name)) : hash.update(relative(sample, join(dir, e.name))).update(readFileSync(join(dir, e.name)))));
  walk(join(sample, 'assembly'));
  hash.update(readFileSync(join(sample, 'build.mjs')));
  return hash.digest('hex');
}

const sample = join(root, 'samples', 'skill-pack-text');
if (existsSync(join(sample, 'build.mjs'))) {
  const stamp = join(sample, 'dist', '.wasm-inputs.sha256');
  const hash = wasmInputsHash(sample);
  const skillsDir = join(sample, 'dist', 'skills');
  const fresh = existsSync(stamp) && readFileSync(stamp, 'utf8') === hash && existsSync(skillsDir) && statSync(skillsDir).isDirectory();
  if (fresh) log('sample WASM skills unchanged: not rebuilt');
  else {
    const t = performance.now();
    const built = spawnSync(process.execPath, [join(sample, 'build.mjs')], { cwd: sample, stdio: 'inherit' });
    if (built.status !== 0) process.exit(built.status ?? 1);
    writeFileSync(stamp, hash);
    log(`sample WASM skills built in ${Math.round(performance.now() - t)} ms`);
  }
}

// The admin console's bundle: rebuilt when any of its sources is newer than the bundle.
const admin = join(root, 'extensions', 'admin');
if (existsSync(join(admin, 'build.mjs'))) {
  const bundle = join(admin, 'dist', 'console', 'app.js');
  if (existsSync(bundle) && statSync(bundle).mtimeMs >= newestInput(join(admin, 'console'))) log('admin console unchanged: not rebuilt');
  else {
    const t = performance.now();
    const built = spawnSync(process.execPath, [join(admin, 'build.mjs')], { cwd: admin, stdio: 'inherit' });
    if (built.status !== 0) process.exit(built.status ?? 1);
    log(`admin console built in ${Math.round(performance.now() - t)} ms`);
  }
}

// The Node flags a kernel runs with (V8's young generation), unless the operator set them.
const { withKernelFlags } = await import('../core/dist/src/cli/nodeFlags.js');
const server = spawn(process.execPath, [...withKernelFlags([]), join(root, 'core', 'dist', 'src', 'cli', 'main.js'), 'serve', ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => server.kill(signal));
server.once('exit', (code, signal) => process.exit(code ?? (signal ? 128 + ({ SIGINT: 2, SIGTERM: 15, SIGHUP: 1, SIGKILL: 9 }[signal] ?? 1) : 1)));
