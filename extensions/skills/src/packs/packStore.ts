import { randomBytes } from 'node:crypto';
import { copyFile, lstat, mkdir, mkdtemp, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import * as tar from 'tar';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { schemaProblems } from '../catalog.js';
import type { JsonSchema, SkillEntry } from '../types.js';
import {
  collectPackFiles,
  FILE_LIST,
  fileListBytes,
  hashFiles,
  INSTALL_RECORD,
  PACK_MANIFEST,
  PackError,
  parseFileList,
  readManifestJson,
  resolveInPack,
  safeRelativePath,
  SIGNATURE_FILE,
  verifyFiles,
  verifySignature,
  type FileList,
  type PackErrorCode,
  type SignatureCheck,
  type TrustedKey,
} from './signing.js';

export const PACK_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** The shape of `pack.json`; each skill is an entry of the `skills` point whose schemas may be files. */
const packManifestSchema = {
  type: 'object',
  required: ['name', 'version', 'skills'],
  properties: {
    name: { type: 'string', pattern: PACK_NAME.source },
    version: { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+(-[0-9A-Za-z.-]+)?(\\+[0-9A-Za-z.-]+)?$' },
    title: { type: 'string' },
    description: { type: 'string' },
    publisher: { type: 'string' },
    homepage: { type: 'string' },
    files: { type: 'array', items: { type: 'string' } },
    skills: { type: 'array', minItems: 1, maxItems: 256, items: { type: 'object' } },
  },
  additionalProperties: false,
};

/** Failures that mean the pack is not what its author signed: such a pack goes to quarantine. */
const SECURITY_CODES: ReadonlySet<string> = new Set(['PACK_UNSIGNED', 'PACK_UNKNOWN_SIGNER', 'PACK_BAD_SIGNATURE', 'PACK_TAMPERED']);

export interface LoadedPack {
  name: string;
  version: string;
  title?: string;
  description?: string;
  publisher?: string;
  dir: string;
  signed: boolean;
  keyId?: string;
  signer?: string;
  installedAt?: string;
  entries: SkillEntry[];
  /** Changes whenever the installed files change. */
  stamp: string;
}

export interface QuarantinedPack {
  id: string;
  pack?: string;
  version?: string;
  code: string;
  reason: string;
  at: string;
  source?: string;
}

export interface InstallResult {
  pack: LoadedPack;
  replaced: boolean;
  warnings: string[];
}

interface InstallRecord {
  installedAt: string;
  source: string;
  signed: boolean;
  keyId?: string;
  signer?: string;
  unsignedReason?: string;
}

export interface PackStoreOptions {
  packsDir: string;
  quarantineDir: string;
  trustedKeys: () => readonly TrustedKey[];
  /** Problems of one resolved entry against the `skills` point schema (empty when it is valid). */
  validateEntry: (entry: Record<string, unknown>) => string[];
  /** Throws when a module cannot run here (not WASM, bad imports, unbounded memory). */
  checkModule: (bytes: Uint8Array, entry: SkillEntry) => void;
  warn: (message: string, data?: Record<string, unknown>) => void;
  /** Largest archive, unpacked. */
  maxPackBytes?: number;
}

const packValidator: ValidateFunction = new Ajv2020({ allErrors: true, strict: false }).compile(packManifestSchema);

function tryParse(bytes: Buffer): FileList | undefined {
  try {
    return parseFileList(bytes);
  } catch {
    return undefined;
  }
}

function stampNow(): string {
  return `${new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}-${randomBytes(3).toString('hex')}`;
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

async function moveDir(from: string, to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  try {
    await rename(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await copyTree(from, to);
    await rm(from, { recursive: true, force: true });
  }
}

async function copyTree(from: string, to: string): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const e of await readdir(from, { withFileTypes: true })) {
    if (e.isDirectory()) await copyTree(join(from, e.name), join(to, e.name));
    else if (e.isFile()) await copyFile(join(from, e.name), join(to, e.name));
  }
}

/**
 * Installed packs (`<packsDir>/<name>`) and quarantined ones (`<quarantineDir>/<name>-<time>`).
 * Installing verifies the signature against the trusted keys and every file hash, then moves a
 * copy of exactly the signed files into place with one rename; loading verifies again, so a pack
 * changed after installation is caught. A pack that fails either check goes to quarantine with the
 * reason and is never loaded.
 */
export class PackStore {
  constructor(private readonly options: PackStoreOptions) {}

  get packsDir(): string {
    return this.options.packsDir;
  }

  get quarantineDir(): string {
    return this.options.quarantineDir;
  }

  async init(): Promise<void> {
    await mkdir(this.options.packsDir, { recursive: true });
    await mkdir(this.options.quarantineDir, { recursive: true });
    // Leftovers of installs that died half-way; a live install renames its folder within seconds.
    const cutoff = Date.now() - 10 * 60_000;
    for (const e of await readdir(this.options.packsDir, { withFileTypes: true })) {
      if (!e.name.startsWith('.staging-') && !e.name.startsWith('.trash-')) continue;
      const s = await stat(join(this.options.packsDir, e.name)).catch(() => undefined);
      if (s && s.mtimeMs < cutoff) await rm(join(this.options.packsDir, e.name), { recursive: true, force: true });
    }
  }

  /** Names of the installed packs (folders that do not start with a dot). */
  async installedNames(): Promise<string[]> {
    const entries = await readdir(this.options.packsDir, { withFileTypes: true }).catch(() => []);
    return entries
      .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
      .map((e) => e.name)
      .sort();
  }

  /** A cheap fingerprint of an installed pack: the file list, signature and install record times. */
  async stampOf(name: string): Promise<string | undefined> {
    const dir = join(this.options.packsDir, name);
    const parts: string[] = [];
    for (const f of [FILE_LIST, SIGNATURE_FILE, INSTALL_RECORD, PACK_MANIFEST]) {
      const s = await stat(join(dir, f)).catch(() => undefined);
      parts.push(s ? `${s.size}:${s.mtimeMs}:${s.ino}` : '-');
    }
    return parts.every((p) => p === '-') ? undefined : parts.join('|');
  }

  /** Installs a pack folder or `.tgz`. A pack that fails verification goes to quarantine and the call throws. */
  async install(source: string, options: { allowUnsigned?: boolean } = {}): Promise<InstallResult> {
    const sourcePath = resolve(source);
    const sourceStat = await stat(sourcePath).catch(() => undefined);
    if (!sourceStat) throw new PackError('PACK_NOT_FOUND', `There is no pack at ${source}.`);
    await this.init();
    const work = await mkdtemp(join(this.options.packsDir, '.staging-'));
    try {
      let root = sourcePath;
      let extracted = false;
      if (sourceStat.isFile()) {
        root = await this.extract(sourcePath, join(work, 'source'));
        extracted = true;
      } else if (!sourceStat.isDirectory()) throw new PackError('PACK_INVALID', `${source} is neither a folder nor a .tgz file.`);

      const warnings: string[] = [];
      let list: FileList | undefined;
      let signature: SignatureCheck | undefined;
      let unsignedReason: string | undefined;
      let manifestName: string | undefined;
      let manifestVersion: string | undefined;
      try {
        const manifest = await readManifestJson(root);
        manifestName = typeof manifest.name === 'string' ? manifest.name : undefined;
        manifestVersion = typeof manifest.version === 'string' ? manifest.version : undefined;
        const listBytes = await readFile(join(root, FILE_LIST)).catch(() => undefined);
        // Parsed up front too, so a refused pack's listed files can be kept in quarantine.
        if (listBytes) list = tryParse(listBytes);
        const signatureText = await readFile(join(root, SIGNATURE_FILE), 'utf8').catch(() => undefined);
        try {
          signature = verifySignature(listBytes, signatureText, this.options.trustedKeys());
        } catch (err) {
          if (!options.allowUnsigned || !(err instanceof PackError)) throw err;
          unsignedReason = err.message;
          warnings.push(`UNSIGNED PACK: ${err.message} Installed anyway because of --allow-unsigned; use this for development only.`);
        }
        // Accepted unsigned, a file list proves nothing: hash what the manifest names as it is now.
        list = listBytes && signature ? parseFileList(listBytes) : await this.generateList(root, manifest);
        await verifyFiles(root, list, { strict: extracted });
        await this.parsePack(root, list, manifest);
      } catch (err) {
        if (err instanceof PackError && SECURITY_CODES.has(err.code)) {
          const id = await this.quarantine(root, extracted, list, {
            pack: manifestName,
            version: manifestVersion,
            code: err.code,
            reason: err.message,
            source: sourcePath,
          });
          throw new PackError(err.code as PackErrorCode, `${err.message} The pack was not installed; it is in quarantine as ${id}.`, { quarantined: id });
        }
        throw err;
      }

      const name = manifestName!;
      const staged = join(work, 'pack');
      await mkdir(staged, { recursive: true });
      for (const rel of Object.keys(list.files)) {
        const to = resolveInPack(staged, rel);
        await mkdir(dirname(to), { recursive: true });
        await copyFile(resolveInPack(root, rel), to);
      }
      await writeFile(join(staged, FILE_LIST), signature ? await readFile(join(root, FILE_LIST)) : fileListBytes(list));
      if (signature) await copyFile(join(root, SIGNATURE_FILE), join(staged, SIGNATURE_FILE));
      const record: InstallRecord = {
        installedAt: new Date().toISOString(),
        source: sourcePath,
        signed: !!signature,
        ...(signature ? { keyId: signature.keyId, signer: signature.signer } : { unsignedReason }),
      };
      await writeFile(join(staged, INSTALL_RECORD), JSON.stringify(record, null, 2) + '\n');

      const target = join(this.options.packsDir, name);
      const replaced = await exists(target);
      if (replaced) {
        const trash = join(this.options.packsDir, `.trash-${name}-${randomBytes(4).toString('hex')}`);
        await rename(target, trash);
        await rename(staged, target);
        await rm(trash, { recursive: true, force: true });
      } else await rename(staged, target);
      const pack = await this.load(name);
      return { pack, replaced, warnings };
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  /** Verifies and reads an installed pack. A pack that fails verification is moved to quarantine. */
  async load(name: string): Promise<LoadedPack> {
    const dir = join(this.options.packsDir, name);
    if (!(await exists(join(dir, PACK_MANIFEST)))) throw new PackError('PACK_NOT_FOUND', `No pack ${name} is installed.`);
    const stamp = (await this.stampOf(name)) ?? '';
    const record = await readFile(join(dir, INSTALL_RECORD), 'utf8')
      .then((t) => JSON.parse(t) as InstallRecord)
      .catch(() => undefined);
    let list: FileList;
    let signature: SignatureCheck | undefined;
    let manifest: Record<string, unknown> | undefined;
    try {
      const listBytes = await readFile(join(dir, FILE_LIST)).catch(() => undefined);
      if (record?.signed === false) {
        if (!listBytes) throw new PackError('PACK_TAMPERED', `The unsigned pack ${name} lost its ${FILE_LIST}.`);
        this.options.warn(`skill pack ${name} is UNSIGNED (installed with --allow-unsigned): for development only`, { pack: name });
      } else {
        signature = verifySignature(listBytes, await readFile(join(dir, SIGNATURE_FILE), 'utf8').catch(() => undefined), this.options.trustedKeys());
      }
      list = parseFileList(listBytes!);
      await verifyFiles(dir, list, { strict: true });
      manifest = await readManifestJson(dir);
    } catch (err) {
      if (err instanceof PackError && SECURITY_CODES.has(err.code)) {
        const id = await this.quarantine(dir, true, undefined, { pack: name, code: err.code, reason: err.message, source: record?.source });
        throw new PackError('PACK_QUARANTINED', `The installed pack ${name} failed verification and was moved to quarantine as ${id}: ${err.message}`, {
          quarantined: id,
          reason: err.code,
        });
      }
      throw err;
    }
    const parsed = await this.parsePack(dir, list, manifest);
    if (parsed.name !== name) throw new PackError('PACK_INVALID', `The folder ${name} holds the pack ${parsed.name}.`);
    return { ...parsed, dir, signed: !!signature, keyId: signature?.keyId, signer: signature?.signer, installedAt: record?.installedAt, stamp };
  }

  async remove(name: string): Promise<boolean> {
    if (!PACK_NAME.test(name)) throw new PackError('PACK_INVALID', `${JSON.stringify(name)} is not a pack name.`);
    const target = join(this.options.packsDir, name);
    if (!(await exists(target))) return false;
    const trash = join(this.options.packsDir, `.trash-${name}-${randomBytes(4).toString('hex')}`);
    await rename(target, trash);
    await rm(trash, { recursive: true, force: true });
    return true;
  }

  async removeQuarantined(id: string): Promise<boolean> {
    if (!/^[A-Za-z0-9_.-]+$/.test(id) || id.startsWith('.')) throw new PackError('PACK_INVALID', `${JSON.stringify(id)} is not a quarantine entry.`);
    const target = join(this.options.quarantineDir, id);
    if (!(await exists(target))) return false;
    await rm(target, { recursive: true, force: true });
    return true;
  }

  async quarantined(): Promise<QuarantinedPack[]> {
    const entries = await readdir(this.options.quarantineDir, { withFileTypes: true }).catch(() => []);
    const out: QuarantinedPack[] = [];
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const info = await readFile(join(this.options.quarantineDir, e.name, 'quarantine.json'), 'utf8')
        .then((t) => JSON.parse(t) as Omit<QuarantinedPack, 'id'>)
        .catch(() => ({ code: 'UNKNOWN', reason: 'no quarantine.json', at: '' }));
      out.push({ id: e.name, ...info });
    }
    return out.sort((a, b) => b.at.localeCompare(a.at));
  }

  private async quarantine(root: string, owned: boolean, list: FileList | undefined, info: Omit<QuarantinedPack, 'id' | 'at'>): Promise<string> {
    const base = info.pack && PACK_NAME.test(info.pack) ? info.pack : 'unknown';
    const id = `${base}-${stampNow()}`;
    const target = join(this.options.quarantineDir, id);
    if (owned) await moveDir(root, target);
    else {
      // A folder someone else owns: keep a copy of what would have been installed.
      await mkdir(target, { recursive: true });
      const names = new Set([PACK_MANIFEST, FILE_LIST, SIGNATURE_FILE, ...Object.keys(list?.files ?? {})]);
      for (const rel of names) {
        const from = resolveInPack(root, rel);
        const s = await lstat(from).catch(() => undefined);
        if (!s?.isFile()) continue;
        const to = resolveInPack(target, rel);
        await mkdir(dirname(to), { recursive: true });
        await copyFile(from, to);
      }
    }
    await writeFile(join(target, 'quarantine.json'), JSON.stringify({ ...info, at: new Date().toISOString() }, null, 2) + '\n');
    this.options.warn(`skill pack ${info.pack ?? '(unnamed)'} quarantined: ${info.reason}`, { pack: info.pack, code: info.code, quarantine: id });
    return id;
  }

  private async generateList(root: string, manifest: Record<string, unknown>): Promise<FileList> {
    const paths = await collectPackFiles(root, manifest);
    return {
      version: 1,
      pack: String(manifest.name ?? ''),
      packVersion: String(manifest.version ?? ''),
      algorithm: 'sha256',
      files: await hashFiles(root, paths),
    };
  }

  /** Unpacks an archive with regular files and folders only, within a size budget; returns the pack root. */
  private async extract(file: string, into: string): Promise<string> {
    await mkdir(into, { recursive: true });
    const budget = this.options.maxPackBytes ?? 256 * 1024 * 1024;
    let total = 0;
    let refused: string | undefined;
    try {
      await tar.x({
        file,
        cwd: into,
        strict: true,
        preservePaths: false,
        filter: (path, entry) => {
          const type = (entry as { type?: string }).type;
          if (type !== 'File' && type !== 'Directory') {
            refused ??= `${path} is a ${type ?? 'special entry'}; packs hold regular files only`;
            return false;
          }
          total += (entry as { size?: number }).size ?? 0;
          if (total > budget) {
            refused ??= `the archive unpacks to more than ${budget} bytes`;
            return false;
          }
          return true;
        },
      });
    } catch (err) {
      throw new PackError('PACK_INVALID', `The archive could not be unpacked: ${(err as Error).message}`);
    }
    if (refused) throw new PackError('PACK_INVALID', `The archive was refused: ${refused}.`);
    if (await exists(join(into, PACK_MANIFEST))) return into;
    const top = (await readdir(into, { withFileTypes: true })).filter((e) => !e.name.startsWith('.'));
    if (top.length === 1 && top[0]!.isDirectory() && (await exists(join(into, top[0]!.name, PACK_MANIFEST)))) return join(into, top[0]!.name);
    throw new PackError('PACK_INVALID', `The archive holds no ${PACK_MANIFEST} at its top.`);
  }

  /** Reads pack.json, resolves schema files and checks every entry; throws PACK_INVALID listing every problem. */
  private async parsePack(
    root: string,
    list: FileList,
    manifest: Record<string, unknown>,
  ): Promise<Omit<LoadedPack, 'dir' | 'signed' | 'keyId' | 'signer' | 'installedAt' | 'stamp'>> {
    if (!packValidator(manifest)) {
      throw new PackError(
        'PACK_INVALID',
        `${PACK_MANIFEST} is not valid: ${schemaProblems(packValidator.errors)
          .map((p) => `${p.path} ${p.message}`)
          .join('; ')}`,
      );
    }
    const name = manifest.name as string;
    const problems: string[] = [];
    const entries: SkillEntry[] = [];
    const listed = (rel: string) => {
      const path = safeRelativePath(rel);
      if (!(path in list.files)) throw new Error(`${rel} is not in the signed file list`);
      return path;
    };
    const readSchema = async (value: unknown, what: string): Promise<JsonSchema | undefined> => {
      if (value === undefined || typeof value === 'object') return value as JsonSchema | undefined;
      if (typeof value !== 'string') throw new Error(`${what} must be an object or a file in the pack`);
      try {
        return JSON.parse(await readFile(resolveInPack(root, listed(value)), 'utf8'));
      } catch (err) {
        throw new Error(`${what} ${value}: ${(err as Error).message}`);
      }
    };
    for (const [i, raw] of (manifest.skills as Array<Record<string, unknown>>).entries()) {
      const label = `skills[${i}]${typeof raw.id === 'string' ? ` (${raw.id})` : ''}`;
      try {
        const entry = {
          ...raw,
          inputSchema: await readSchema(raw.inputSchema, 'inputSchema'),
          ...(raw.outputSchema !== undefined ? { outputSchema: await readSchema(raw.outputSchema, 'outputSchema') } : {}),
        };
        const invalid = this.options.validateEntry(entry);
        if (invalid.length) throw new Error(invalid.join('; '));
        const skill = entry as unknown as SkillEntry;
        if (!skill.id.startsWith(`${name}.`)) throw new Error(`the id must start with "${name}."`);
        if (skill.runtime === 'js') throw new Error('js skills come from extensions, not packs: contribute them in an extension manifest');
        if (!skill.entry) throw new Error(`${skill.runtime} skills need an entry`);
        const entryPath = listed(skill.entry);
        if (skill.runtime === 'wasm') this.options.checkModule(new Uint8Array(await readFile(resolveInPack(root, entryPath))), skill);
        entries.push({ ...skill, entry: entryPath });
      } catch (err) {
        problems.push(`${label}: ${(err as Error).message}`);
      }
    }
    const ids = entries.map((e) => e.id);
    const dupes = ids.filter((id, i) => ids.indexOf(id) !== i);
    if (dupes.length) problems.push(`duplicate skill ids: ${[...new Set(dupes)].join(', ')}`);
    if (problems.length) throw new PackError('PACK_INVALID', `The pack ${name} is not valid: ${problems.join(' / ')}`, { problems });
    return {
      name,
      version: manifest.version as string,
      ...(typeof manifest.title === 'string' ? { title: manifest.title } : {}),
      ...(typeof manifest.description === 'string' ? { description: manifest.description } : {}),
      ...(typeof manifest.publisher === 'string' ? { publisher: manifest.publisher } : {}),
      entries,
    };
  }
}
