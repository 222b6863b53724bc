import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '@aion/extension-api';
import { resolveConfig } from '../../src/config.js';
import { generateSigningKey, signPack, type GeneratedKey } from '../../src/packs/signing.js';
import { SkillsService } from '../../src/service.js';

/** The extension's folder (this file runs from dist/test/support). */
export const skillsRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const repoRoot = resolve(skillsRoot, '../..');
export const fixture = (name: string) => join(skillsRoot, 'test/fixtures', name);
export const cliPath = join(repoRoot, 'core/dist/src/cli/main.js');

export function tempDir(prefix = 'aion-skills-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

const require = createRequire(import.meta.url);

/** Compiles an AssemblyScript guest to a WASI command that imports its memory; cached across runs by content. */
export async function compileGuest(source: string, name: string): Promise<Uint8Array> {
  const asc = (await import('assemblyscript/asc')).default;
  const outFile = join(skillsRoot, 'dist/test/fixtures-wasm', `${name}.wasm`);
  const stampFile = `${outFile}.stamp`;
  const stamp = createHash('sha256')
    .update(asc.version)
    .update(await readFile(source))
    .digest('hex');
  if (existsSync(outFile) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) return new Uint8Array(readFileSync(outFile));
  await mkdir(dirname(outFile), { recursive: true });
  const config = require.resolve('@assemblyscript/wasi-shim/asconfig.json');
  const { options } = JSON.parse(readFileSync(config, 'utf8')) as { options: { lib: string; use: string[]; exportStart: string } };
  const result = await asc.main(
    [
      source,
      '--lib',
      resolve(dirname(config), options.lib),
      ...options.use.flatMap((u) => ['--use', u]),
      '--exportStart',
      options.exportStart,
      '--runtime',
      'incremental',
      '-O3',
      '--importMemory',
      '--outFile',
      outFile,
    ],
    {
      listFiles: (dir: string, baseDir: string) => {
        try {
          return readdirSync(resolve(baseDir, dir)).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
        } catch {
          return null;
        }
      },
    },
  );
  if (result.error) throw new Error(`asc failed for ${source}: ${result.error.message}\n${result.stderr.toString()}`);
  await writeFile(stampFile, stamp);
  return new Uint8Array(readFileSync(outFile));
}

let hostile: Promise<Uint8Array> | undefined;
export function hostileGuest(): Promise<Uint8Array> {
  hostile ??= compileGuest(fixture('wasm/hostile.ts'), 'hostile');
  return hostile;
}

const textIn = { type: 'object', required: ['text'], properties: { text: { type: 'string', maxLength: 100000 } }, additionalProperties: false };
const textOut = { type: 'object', required: ['text'], properties: { text: { type: 'string' } } };

/** A pack of the hostile guest, one skill per misbehaviour, plus a process skill. */
export function hostileManifest(name = 'hostile') {
  const wasm = (id: string, args: string[], extra: Record<string, unknown> = {}) => ({
    id: `${name}.${id}`,
    title: `Hostile ${id}`,
    description: `The hostile guest doing ${args[0]}.`,
    runtime: 'wasm',
    entry: 'guest.wasm',
    args,
    inputSchema: { type: 'object' },
    tags: ['hostile'],
    ...extra,
  });
  return {
    name,
    version: '1.0.0',
    title: 'Hostile guests',
    description: 'Skills that misbehave on purpose.',
    skills: [
      wasm('echo', ['echo'], {
        title: 'Echo text',
        description: 'Returns its input unchanged: a well-behaved neighbour.',
        inputSchema: 'schemas/text.input.json',
        outputSchema: 'schemas/text.output.json',
        tags: ['text', 'echo'],
      }),
      wasm('loop', ['loop'], { limits: { timeout_ms: 300 } }),
      wasm('grow', ['grow'], { limits: { memory_pages: 64 } }),
      wasm('bigout', ['bigout'], { limits: { max_output_bytes: 4096 } }),
      wasm('secret', ['secret', 'API_TOKEN'], { permissions: { secrets: ['API_TOKEN'] } }),
      wasm('secret-undeclared', ['secret', 'OTHER_TOKEN'], { permissions: { secrets: ['API_TOKEN'] } }),
      wasm('fetch-undeclared', ['fetch', 'http://example.com/']),
      wasm('fetch-private', ['fetch', 'http://169.254.169.254/latest/meta-data'], { permissions: { network: ['*.example.com'] } }),
      wasm('badout', ['badout'], { outputSchema: textOut }),
      wasm('fail', ['fail']),
      {
        id: `${name}.native`,
        title: 'Native echo',
        description: 'A process skill that echoes text.',
        runtime: 'process',
        entry: 'bin/echo-skill.mjs',
        inputSchema: { type: 'object', properties: { text: { type: 'string' }, fail: { type: 'boolean' }, die: { type: 'boolean' } } },
        tags: ['process'],
      },
    ],
  };
}

/** Writes a pack folder: pack.json, the guest, schemas and the process skill. */
export async function writeHostilePack(dir: string, options: { name?: string; manifest?: Record<string, unknown> } = {}): Promise<string> {
  await mkdir(join(dir, 'schemas'), { recursive: true });
  await mkdir(join(dir, 'bin'), { recursive: true });
  await writeFile(join(dir, 'pack.json'), JSON.stringify(options.manifest ?? hostileManifest(options.name), null, 2));
  await writeFile(join(dir, 'guest.wasm'), await hostileGuest());
  await writeFile(join(dir, 'schemas/text.input.json'), JSON.stringify(textIn));
  await writeFile(join(dir, 'schemas/text.output.json'), JSON.stringify(textOut));
  await writeFile(join(dir, 'bin/echo-skill.mjs'), readFileSync(fixture('process/echo-skill.mjs')));
  return dir;
}

export async function signedHostilePack(dir: string, key: GeneratedKey, options: { name?: string } = {}): Promise<string> {
  await writeHostilePack(dir, options);
  await signPack(dir, key.privateKeyPem);
  return dir;
}

export function newKey(): GeneratedKey {
  return generateSigningKey();
}

export interface LogLine {
  level: string;
  message: string;
  data?: Record<string, unknown>;
}

export function memoryLogger(lines: LogLine[] = []): Logger & { lines: LogLine[] } {
  const log = (level: string) => (message: string, data?: Record<string, unknown>) => void lines.push({ level, message, data });
  return { lines, trace: log('trace'), debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

export const pointSchema = JSON.parse(readFileSync(join(skillsRoot, 'package.json'), 'utf8')).contributes.contributionPoints.skills.schema;

/** The skills service without a kernel, over a temporary data directory. */
export async function startService(options: { config?: Record<string, unknown>; secrets?: Record<string, string>; dataDir?: string } = {}) {
  const dataDir = options.dataDir ?? tempDir();
  const storagePath = join(dataDir, 'storage', 'aion.skills');
  const logger = memoryLogger();
  const service = await SkillsService.start({
    logger,
    config: resolveConfig({ watch: false, wasm: { workers: 1, spareWorkers: 1 }, ...options.config }, storagePath),
    pointSchema,
    version: '0.1.0',
    secret: async (name) => options.secrets?.[name],
    storagePath,
  });
  return {
    service,
    dataDir,
    logger,
    async stop() {
      await service.dispose();
      if (!options.dataDir) removeDir(dataDir);
    },
  };
}

export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
}

export async function until<T>(fn: () => T | Promise<T>, what: string, timeoutMs = 8000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}
