import { createHash, randomUUID } from 'node:crypto';
import { cp, mkdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PreviewErrorCodes } from './api.js';
import { exists, readJson } from './builders/files.js';
import { previewError } from './errors.js';
import { runProcess, type RunOptions } from './process.js';

const LOCKFILES = ['package-lock.json', 'npm-shrinkwrap.json'];

/** Copies a folder as hard links where the filesystem allows (fast, no extra space), else byte by byte. */
export async function linkOrCopy(from: string, to: string, run: Omit<RunOptions, 'cwd'>): Promise<void> {
  if (process.platform === 'linux') {
    const code = await runProcess('cp', ['-al', '--', from, to], { ...run, cwd: '/' }).catch(() => 1);
    if (code === 0) return;
    await rm(to, { recursive: true, force: true });
  }
  await cp(from, to, { recursive: true, verbatimSymlinks: true });
}

/** The cache key: the lockfile's bytes with the platform and Node's major version (native modules differ). */
export async function dependencyCacheKey(projectDir: string): Promise<string | undefined> {
  for (const name of LOCKFILES) {
    const path = join(projectDir, name);
    if (await exists(path)) {
      return createHash('sha256')
        .update(await readFile(path))
        .update(`\n${process.platform}-${process.arch}-node${process.versions.node.split('.')[0]}`)
        .digest('hex');
    }
  }
  return undefined;
}

export interface RestoreResult {
  source: 'cache' | 'npm ci' | 'npm install' | 'none';
  key: string | null;
}

/**
 * `node_modules` for the checked-out project: from `<cache>/<lockfile hash>/node_modules` when present,
 * else `npm ci` (with a lockfile, then cached) or `npm install`. A failed install is MISSING_DEPENDENCIES.
 */
export async function restoreDependencies(options: {
  projectDir: string;
  cacheDir: string;
  npm: string;
  run: Omit<RunOptions, 'cwd'>;
}): Promise<RestoreResult> {
  const { projectDir, cacheDir, npm, run } = options;
  const pkg = await readJson(join(projectDir, 'package.json'));
  if (!pkg) return { source: 'none', key: null };
  const declared = { ...pkg.dependencies, ...pkg.devDependencies, ...pkg.optionalDependencies };
  if (Object.keys(declared).length === 0) return { source: 'none', key: null };
  const key = await dependencyCacheKey(projectDir);
  const target = join(projectDir, 'node_modules');
  await rm(target, { recursive: true, force: true });
  const cached = key ? join(cacheDir, key, 'node_modules') : undefined;
  if (cached && (await exists(cached))) {
    await linkOrCopy(cached, target, run);
    return { source: 'cache', key: key! };
  }
  const args = key ? ['ci', '--no-audit', '--no-fund'] : ['install', '--no-audit', '--no-fund'];
  const code = await runProcess(npm, args, { ...run, cwd: projectDir });
  if (code !== 0)
    throw previewError(
      PreviewErrorCodes.MISSING_DEPENDENCIES,
      `npm ${args[0]} exited with code ${code}: the project's dependencies could not be installed; see the build log`,
    );
  if (key && cached) {
    // Filled under a temporary name and renamed: two builds never see a half-written cache entry.
    const staging = join(cacheDir, `.staging-${randomUUID()}`);
    await mkdir(staging, { recursive: true });
    try {
      await linkOrCopy(target, join(staging, 'node_modules'), run);
      await mkdir(cacheDir, { recursive: true });
      await rename(staging, join(cacheDir, key)).catch(() => undefined);
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }
  return { source: key ? 'npm ci' : 'npm install', key: key ?? null };
}
