import { randomUUID } from 'node:crypto';
import { copyFile, mkdir, open, readdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { PreviewErrorCodes } from '../api.js';
import { previewError } from '../errors.js';
import { parseBundleKey, type BundleStore, type StoredBundle } from './bundleStore.js';

/** Bundles as files under the data directory (`<data dir>/previews/<project>/<job>/bundle.zip`); writes are temp file + rename. */
export class FileSystemBundleStore implements BundleStore {
  readonly kind = 'filesystem' as const;

  constructor(private readonly dataDir: string) {}

  private pathOf(key: string): string {
    if (!parseBundleKey(key)) throw new Error(`not a bundle key: ${key}`);
    return join(this.dataDir, ...key.split('/'));
  }

  async put(key: string, file: string): Promise<StoredBundle> {
    const path = this.pathOf(key);
    const tmp = join(dirname(path), `.upload-${randomUUID()}`);
    try {
      await mkdir(dirname(path), { recursive: true });
      await copyFile(file, tmp);
      const handle = await open(tmp, 'r+');
      await handle.sync().finally(() => handle.close());
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw previewError(PreviewErrorCodes.STORAGE_UPLOAD_FAILED, `the bundle could not be stored under ${this.dataDir}: ${(err as Error).message}`);
    }
    return (await this.stat(key))!;
  }

  async stat(key: string): Promise<StoredBundle | undefined> {
    try {
      const s = await stat(this.pathOf(key));
      return { key, size: s.size, modifiedAt: Math.floor(s.mtimeMs) };
    } catch {
      return undefined;
    }
  }

  async read(key: string, range?: { start: number; end: number }): Promise<Buffer> {
    const handle = await open(this.pathOf(key), 'r');
    try {
      if (!range) return await handle.readFile();
      const buffer = Buffer.alloc(range.end - range.start + 1);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, range.start);
      return buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  }

  async delete(key: string): Promise<boolean> {
    const path = this.pathOf(key);
    const existed = (await this.stat(key)) !== undefined;
    await rm(path, { force: true });
    // The job's folder goes with its only file; a project's folder once empty.
    await rmdir(dirname(path)).catch(() => undefined);
    await rmdir(dirname(dirname(path))).catch(() => undefined);
    return existed;
  }

  async list(prefix: string): Promise<StoredBundle[]> {
    const root = join(this.dataDir, 'previews');
    const out: StoredBundle[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries: import('node:fs').Dirent[];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const entry of entries) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) await walk(path);
        else if (entry.isFile()) {
          const key = relative(this.dataDir, path).split(sep).join('/');
          if (key.startsWith(prefix) && parseBundleKey(key)) {
            const s = await stat(path);
            out.push({ key, size: s.size, modifiedAt: Math.floor(s.mtimeMs) });
          }
        }
      }
    };
    await walk(root);
    return out.sort((a, b) => a.key.localeCompare(b.key));
  }
}
