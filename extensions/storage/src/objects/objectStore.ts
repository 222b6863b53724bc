import { randomUUID } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { AionError } from '@aion/extension-api';
import { StorageErrorCodes, type ObjectInfo } from '../api.js';

/**
 * Where objects live. Each call names the owning namespace; keys are `/`-separated relative paths.
 * The filesystem backend below is the default; an S3 backend implements the same four methods.
 */
export interface ObjectStore {
  put(namespace: string, key: string, data: Buffer): Promise<ObjectInfo>;
  get(namespace: string, key: string): Promise<{ info: ObjectInfo; data: Buffer } | undefined>;
  delete(namespace: string, key: string): Promise<boolean>;
  list(namespace: string, prefix: string): Promise<ObjectInfo[]>;
}

const MAX_KEY_LENGTH = 1024;

/** Refuses keys that could leave the namespace's folder or that a filesystem or S3 would read differently. */
export function validateObjectKey(key: unknown): string {
  const bad = (why: string): never => {
    throw new AionError(StorageErrorCodes.INVALID_OBJECT_KEY, `invalid object key ${JSON.stringify(String(key).slice(0, 100))}: ${why}`);
  };
  if (typeof key !== 'string' || key.length === 0) bad('a key is a non-empty string');
  const k = key as string;
  if (k.length > MAX_KEY_LENGTH) bad(`longer than ${MAX_KEY_LENGTH} characters`);
  if (k.startsWith('/') || /^[A-Za-z]:/.test(k)) bad('absolute paths are not allowed');
  if (k.includes('\\')) bad('use / between segments');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(k)) bad('control characters are not allowed');
  for (const segment of k.split('/')) {
    if (segment === '') bad('empty segments (// or a trailing /) are not allowed');
    if (segment === '.' || segment === '..') bad('. and .. segments are not allowed');
  }
  return k;
}

/**
 * Objects as files under `<root>/<namespace>/<key>`; writes are atomic: a temp file in `<root>/.tmp`
 * (the same filesystem, so the rename is atomic; no namespace starts with a dot), fsync, rename.
 */
export class FileSystemObjectStore implements ObjectStore {
  private readonly tmpDir: string;

  constructor(private readonly root: string) {
    this.tmpDir = join(root, '.tmp');
  }

  private pathOf(namespace: string, key: string): string {
    const base = resolve(this.root, namespace);
    const path = resolve(base, validateObjectKey(key));
    if (!path.startsWith(base + sep))
      throw new AionError(StorageErrorCodes.INVALID_OBJECT_KEY, `invalid object key ${JSON.stringify(key)}: it leaves the namespace`);
    return path;
  }

  async put(namespace: string, key: string, data: Buffer): Promise<ObjectInfo> {
    const path = this.pathOf(namespace, key);
    await mkdir(dirname(path), { recursive: true });
    await mkdir(this.tmpDir, { recursive: true });
    const tmp = join(this.tmpDir, `object-${randomUUID()}`);
    const handle = await open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } catch (err) {
      await handle.close().catch(() => undefined);
      await rm(tmp, { force: true });
      throw err;
    }
    await handle.close();
    try {
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    await syncDirectory(dirname(path));
    const s = await stat(path);
    return { key, size: s.size, modifiedAt: Math.floor(s.mtimeMs) };
  }

  async get(namespace: string, key: string): Promise<{ info: ObjectInfo; data: Buffer } | undefined> {
    const path = this.pathOf(namespace, key);
    try {
      const [data, s] = await Promise.all([readFile(path), stat(path)]);
      if (!s.isFile()) return undefined;
      return { info: { key, size: s.size, modifiedAt: Math.floor(s.mtimeMs) }, data };
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  async delete(namespace: string, key: string): Promise<boolean> {
    try {
      await unlink(this.pathOf(namespace, key));
      return true;
    } catch (err) {
      if (isMissing(err)) return false;
      throw err;
    }
  }

  async list(namespace: string, prefix: string): Promise<ObjectInfo[]> {
    const base = resolve(this.root, namespace);
    const out: ObjectInfo[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries: Dirent[];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if (isMissing(err)) return;
        throw err;
      }
      for (const entry of entries) {
        const full = join(dir, entry.name);
        const key = relative(base, full).split(sep).join('/');
        if (entry.isDirectory()) {
          if (prefix.startsWith(key + '/') || key.startsWith(prefix) || prefix === '') await walk(full);
        } else if (entry.isFile() && key.startsWith(prefix)) {
          const s = await stat(full);
          out.push({ key, size: s.size, modifiedAt: Math.floor(s.mtimeMs) });
        }
      }
    };
    await walk(base);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
}

/** Makes the rename itself durable; some platforms cannot open a directory, which is fine to skip. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // Not supported here (e.g. Windows); the rename is still atomic.
  } finally {
    await handle?.close().catch(() => undefined);
  }
}
