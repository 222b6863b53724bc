import { cp, readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

export async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

export async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/** A JSON file's content, or undefined when it is missing or not JSON. */
export async function readJson(path: string): Promise<Record<string, any> | undefined> {
  try {
    const value = JSON.parse(await readFile(path, 'utf8')) as unknown;
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, any>) : undefined;
  } catch {
    return undefined;
  }
}

/** Copies a folder's files, leaving out version control and installed dependencies. */
export async function copyTree(from: string, to: string, skip: ReadonlySet<string> = new Set(['.git', 'node_modules'])): Promise<void> {
  await cp(from, to, { recursive: true, filter: (src) => !skip.has(src.slice(src.lastIndexOf('/') + 1)) || src === from, verbatimSymlinks: true });
}

export async function isEmptyDirectory(path: string): Promise<boolean> {
  return (await readdir(path)).length === 0;
}

export function inside(root: string, relative: string): string {
  return join(root, relative);
}
