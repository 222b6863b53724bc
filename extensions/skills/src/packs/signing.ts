/**
 * Skill pack signing: a pack's `files.json` lists every file with its SHA-256, and `files.sig` is an
 * ed25519 signature over the exact bytes of `files.json`. Verifying the signature against a trusted
 * key and then every hash proves the pack is the one its author signed.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readFile, readdir, writeFile } from 'node:fs/promises';
import { isAbsolute, join, posix } from 'node:path';
import { AionError } from '@aion/extension-api';

export const PACK_MANIFEST = 'pack.json';
export const FILE_LIST = 'files.json';
export const SIGNATURE_FILE = 'files.sig';
/** Written by the installer beside the pack; not part of what is signed. */
export const INSTALL_RECORD = 'install.json';
/** Files of a pack folder that `files.json` does not list. */
export const PACK_METADATA = [FILE_LIST, SIGNATURE_FILE, INSTALL_RECORD];

export interface FileList {
  version: 1;
  pack: string;
  packVersion: string;
  algorithm: 'sha256';
  /** Relative POSIX path → lowercase hex SHA-256, sorted by path. */
  files: Record<string, string>;
}

export interface SignatureFile {
  version: 1;
  algorithm: 'ed25519';
  keyId: string;
  /** Base64 signature over the bytes of files.json. */
  signature: string;
}

export interface TrustedKey {
  name: string;
  keyId: string;
  key: KeyObject;
}

export interface GeneratedKey {
  keyId: string;
  privateKeyPem: string;
  publicKeyPem: string;
  /** The same public key in one line, for `trustedKeys` in the configuration. */
  publicKeyLine: string;
}

/** Stable codes of pack failures. */
export type PackErrorCode =
  | 'PACK_UNSIGNED'
  | 'PACK_UNKNOWN_SIGNER'
  | 'PACK_BAD_SIGNATURE'
  | 'PACK_TAMPERED'
  | 'PACK_INVALID'
  | 'PACK_NOT_FOUND'
  | 'PACK_QUARANTINED'
  | 'KEY_INVALID';

export class PackError extends AionError {
  constructor(code: PackErrorCode, message: string, details?: unknown) {
    super(code, message, { details, status: code === 'PACK_NOT_FOUND' ? 404 : code === 'PACK_INVALID' || code === 'KEY_INVALID' ? 400 : 422 });
  }
}

function rawPublicKey(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' }) as { x?: string };
  return Buffer.from(jwk.x ?? '', 'base64url');
}

export function keyIdOf(key: KeyObject): string {
  return createHash('sha256').update(rawPublicKey(key)).digest('hex').slice(0, 16);
}

/** A new ed25519 key pair for signing packs. */
export function generateSigningKey(): GeneratedKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    keyId: keyIdOf(publicKey),
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    publicKeyLine: `ed25519:${rawPublicKey(publicKey).toString('base64')}`,
  };
}

/** A public key from PEM (SPKI) text or `ed25519:<base64 of the 32 raw bytes>`. */
export function parsePublicKey(text: string): KeyObject {
  const value = text.trim();
  let key: KeyObject;
  try {
    if (value.startsWith('ed25519:')) {
      const raw = Buffer.from(value.slice('ed25519:'.length), 'base64');
      if (raw.length !== 32) throw new Error('an ed25519 public key is 32 bytes');
      key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
    } else key = createPublicKey(value);
  } catch (err) {
    throw new PackError('KEY_INVALID', `Not a usable public key: ${(err as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new PackError('KEY_INVALID', `Pack keys are ed25519; this one is ${key.asymmetricKeyType}.`);
  return key;
}

export function parsePrivateKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new PackError('KEY_INVALID', `Not a usable private key: ${(err as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new PackError('KEY_INVALID', `Pack keys are ed25519; this one is ${key.asymmetricKeyType}.`);
  return key;
}

/** The configured trusted keys, each with its id; a bad entry throws naming it. */
export function trustedKeysFrom(entries: ReadonlyArray<string | { name?: string; publicKey: string }>): TrustedKey[] {
  return entries.map((entry, i) => {
    const text = typeof entry === 'string' ? entry : entry.publicKey;
    let key: KeyObject;
    try {
      key = parsePublicKey(text);
    } catch (err) {
      throw new PackError('KEY_INVALID', `trustedKeys[${i}]: ${(err as Error).message}`);
    }
    const keyId = keyIdOf(key);
    return { name: (typeof entry === 'object' && entry.name) || keyId, keyId, key };
  });
}

/** A pack-relative path in POSIX form, refused when it is absolute or leaves the pack. */
export function safeRelativePath(path: string): string {
  if (typeof path !== 'string' || !path || isAbsolute(path) || path.includes('\\') || path.includes('\0'))
    throw new PackError('PACK_INVALID', `The path ${JSON.stringify(path)} is not a relative path inside the pack.`);
  const normal = posix.normalize(path);
  if (normal.startsWith('../') || normal === '..' || normal.startsWith('/') || normal === '.')
    throw new PackError('PACK_INVALID', `The path ${JSON.stringify(path)} leaves the pack.`);
  return normal;
}

export function resolveInPack(dir: string, relative: string): string {
  return join(dir, ...safeRelativePath(relative).split('/'));
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Every regular file under `dir` (relative POSIX paths); symbolic links are refused. */
async function walk(dir: string, base = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(join(dir, base), { withFileTypes: true })) {
    const rel = base ? `${base}/${e.name}` : e.name;
    if (e.isSymbolicLink()) throw new PackError('PACK_INVALID', `${rel} is a symbolic link; packs hold regular files only.`);
    if (e.isDirectory()) out.push(...(await walk(dir, rel)));
    else if (e.isFile()) out.push(rel);
  }
  return out;
}

/** What a pack's manifest needs from its folder: pack.json, every module and schema it names, and its `files`. */
export async function collectPackFiles(dir: string, manifest: { skills?: unknown; files?: unknown }): Promise<string[]> {
  const wanted = new Set<string>([PACK_MANIFEST]);
  const skills = Array.isArray(manifest.skills) ? (manifest.skills as Array<Record<string, unknown>>) : [];
  for (const skill of skills) {
    for (const field of ['entry', 'inputSchema', 'outputSchema']) {
      const value = skill?.[field];
      if (typeof value === 'string' && (field !== 'entry' || skill.runtime !== 'js')) wanted.add(safeRelativePath(value));
    }
  }
  for (const extra of Array.isArray(manifest.files) ? (manifest.files as unknown[]) : []) {
    const rel = safeRelativePath(String(extra));
    const stat = await lstat(resolveInPack(dir, rel)).catch(() => undefined);
    if (stat?.isDirectory()) for (const f of await walk(dir, rel)) wanted.add(f);
    else wanted.add(rel);
  }
  for (const meta of PACK_METADATA) wanted.delete(meta);
  return [...wanted].sort();
}

/** Hashes the listed files; a missing file, a link or anything but a regular file is refused. */
export async function hashFiles(dir: string, paths: readonly string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const rel of [...paths].sort()) {
    const path = resolveInPack(dir, rel);
    const stat = await lstat(path).catch(() => undefined);
    if (!stat) throw new PackError('PACK_INVALID', `The pack lists ${rel}, which is missing.`);
    if (!stat.isFile()) throw new PackError('PACK_INVALID', `${rel} is not a regular file.`);
    out[rel] = await sha256File(path);
  }
  return out;
}

export function fileListBytes(list: FileList): Buffer {
  const files = Object.fromEntries(Object.entries(list.files).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return Buffer.from(JSON.stringify({ ...list, files }, null, 2) + '\n');
}

export async function readManifestJson(dir: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(join(dir, PACK_MANIFEST), 'utf8');
  } catch {
    throw new PackError('PACK_INVALID', `There is no ${PACK_MANIFEST} in the pack.`);
  }
  try {
    const value = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
    return value;
  } catch (err) {
    throw new PackError('PACK_INVALID', `${PACK_MANIFEST} is not a JSON object: ${(err as Error).message}`);
  }
}

/** Hashes a pack folder's files and signs the list: writes files.json and files.sig. */
export async function signPack(dir: string, privateKeyPem: string): Promise<{ keyId: string; files: string[]; fileList: FileList }> {
  const key = parsePrivateKey(privateKeyPem);
  const manifest = await readManifestJson(dir);
  const paths = await collectPackFiles(dir, manifest);
  const fileList: FileList = {
    version: 1,
    pack: String(manifest.name ?? ''),
    packVersion: String(manifest.version ?? ''),
    algorithm: 'sha256',
    files: await hashFiles(dir, paths),
  };
  const bytes = fileListBytes(fileList);
  const keyId = keyIdOf(createPublicKey(key));
  const signature: SignatureFile = { version: 1, algorithm: 'ed25519', keyId, signature: sign(null, bytes, key).toString('base64') };
  await writeFile(join(dir, FILE_LIST), bytes);
  await writeFile(join(dir, SIGNATURE_FILE), JSON.stringify(signature, null, 2) + '\n');
  return { keyId, files: paths, fileList };
}

export interface SignatureCheck {
  keyId: string;
  signer: string;
}

/** Checks `files.sig` over `files.json` against the trusted keys. Throws PACK_UNSIGNED, PACK_UNKNOWN_SIGNER or PACK_BAD_SIGNATURE. */
export function verifySignature(fileListBytes: Buffer | undefined, signatureText: string | undefined, trusted: readonly TrustedKey[]): SignatureCheck {
  if (!fileListBytes || signatureText === undefined)
    throw new PackError('PACK_UNSIGNED', `The pack is not signed: it has no ${fileListBytes ? SIGNATURE_FILE : FILE_LIST}.`);
  let signature: SignatureFile;
  try {
    signature = JSON.parse(signatureText);
    if (signature.algorithm !== 'ed25519' || typeof signature.signature !== 'string' || typeof signature.keyId !== 'string')
      throw new Error('unexpected fields');
  } catch (err) {
    throw new PackError('PACK_BAD_SIGNATURE', `${SIGNATURE_FILE} is not a signature this host understands (${(err as Error).message}).`);
  }
  const key = trusted.find((k) => k.keyId === signature.keyId);
  if (!key)
    throw new PackError('PACK_UNKNOWN_SIGNER', `The pack is signed by key ${signature.keyId}, which is not among the trusted keys.`, {
      keyId: signature.keyId,
    });
  if (!verify(null, fileListBytes, key.key, Buffer.from(signature.signature, 'base64'))) {
    throw new PackError(
      'PACK_BAD_SIGNATURE',
      `The signature does not match files.json for key ${key.name} (${key.keyId}): the file list was changed after signing.`,
      { keyId: key.keyId },
    );
  }
  return { keyId: key.keyId, signer: key.name };
}

export function parseFileList(bytes: Buffer): FileList {
  let list: FileList;
  try {
    list = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new PackError('PACK_INVALID', `${FILE_LIST} is not JSON: ${(err as Error).message}`);
  }
  if (list?.version !== 1 || list.algorithm !== 'sha256' || typeof list.files !== 'object' || list.files === null)
    throw new PackError('PACK_INVALID', `${FILE_LIST} is not a version 1 sha256 file list.`);
  for (const [path, hash] of Object.entries(list.files)) {
    safeRelativePath(path);
    if (PACK_METADATA.includes(path)) throw new PackError('PACK_INVALID', `${FILE_LIST} must not list ${path}.`);
    if (typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash)) throw new PackError('PACK_INVALID', `${FILE_LIST} has no valid sha256 for ${path}.`);
  }
  if (!(PACK_MANIFEST in list.files)) throw new PackError('PACK_INVALID', `${FILE_LIST} does not list ${PACK_MANIFEST}.`);
  return list;
}

/**
 * Every listed file must hash to its listed value. With `strict`, a file the list does not name
 * (other than the pack's metadata) is refused too: an installed pack holds nothing unsigned.
 */
export async function verifyFiles(dir: string, list: FileList, options: { strict: boolean }): Promise<void> {
  const actual = await hashFiles(dir, Object.keys(list.files)).catch((err: PackError) => {
    throw new PackError('PACK_TAMPERED', err.message);
  });
  const changed = Object.keys(list.files).filter((p) => actual[p] !== list.files[p]);
  if (changed.length)
    throw new PackError(
      'PACK_TAMPERED',
      `${changed.length === 1 ? 'A file differs' : `${changed.length} files differ`} from the signed list: ${changed.slice(0, 5).join(', ')}.`,
      { files: changed },
    );
  if (options.strict) {
    const extra = (await walk(dir)).filter((p) => !(p in list.files) && !PACK_METADATA.includes(p));
    if (extra.length)
      throw new PackError('PACK_TAMPERED', `The pack holds files the signed list does not name: ${extra.slice(0, 5).join(', ')}.`, { files: extra });
  }
}
