import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import yazl from 'yazl';
import type { BundleMetadata } from './api.js';

async function* filesUnder(root: string, dir = root): AsyncGenerator<string> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* filesUnder(root, path);
    // Symlinks are left out: a link could point outside the build.
    else if (entry.isFile()) yield path;
  }
}

export interface BundleFile {
  path: string;
  size: number;
  sha256: string;
  files: number;
}

/** Writes `bundle.zip`: the artifacts under `artifacts/`, `metadata.json` and `build.log`. */
export async function writeBundle(options: { zipPath: string; artifactsDir: string; metadata: BundleMetadata; logFile: string }): Promise<BundleFile> {
  const zip = new yazl.ZipFile();
  let files = 0;
  for await (const path of filesUnder(options.artifactsDir)) {
    zip.addFile(path, `artifacts/${relative(options.artifactsDir, path).split(sep).join('/')}`);
    files++;
  }
  zip.addBuffer(Buffer.from(`${JSON.stringify(options.metadata, null, 2)}\n`), 'metadata.json');
  zip.addFile(options.logFile, 'build.log');
  zip.end();
  const hash = createHash('sha256');
  let size = 0;
  zip.outputStream.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    size += chunk.length;
  });
  await pipeline(zip.outputStream, createWriteStream(options.zipPath, { mode: 0o600 }));
  return { path: options.zipPath, size, sha256: hash.digest('hex'), files };
}

export function sha256OfFile(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (c) => hash.update(c))
      .on('end', () => resolve(hash.digest('hex')))
      .on('error', reject);
  });
}
