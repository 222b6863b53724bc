import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { pathToRegexp } from 'path-to-regexp';
import semver from 'semver';
import { API_VERSION, ErrorCodes, extensionIdOf, manifestSchema, type ErrorPayload, type ExtensionManifest } from '@aion/extension-api';
import { formatAjvErrors } from '../config/configuration.js';

export interface ScannedManifest {
  manifestPath: string;
  extensionPath: string;
  source: 'builtin' | 'data' | 'external';
  manifest?: ExtensionManifest;
  id?: string;
  errors: ErrorPayload[];
}

const ajv = new Ajv2020({ allErrors: true, strict: false });
const validateManifest = ajv.compile(manifestSchema as object);

/** Why a route path cannot be matched (`/v1/x/:id?` is not the syntax), or undefined when it can. */
function routePathError(path: string): string | undefined {
  try {
    pathToRegexp(path);
    return undefined;
  } catch (e) {
    return `"${path}" is not a route path (${(e as Error).message.split(';')[0]}): write parameters as :name, optional parts as {/:name}, the rest of a path as *name`;
  }
}

function isExtensionFolder(dir: string): boolean {
  return existsSync(join(dir, 'package.json'));
}

/**
 * Lists extension folders: a path that is itself an extension (has package.json) counts as one,
 * otherwise each sub-folder with a package.json does.
 */
export function findExtensionFolders(root: string): string[] {
  const dir = resolve(root);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return [];
  if (isExtensionFolder(dir)) {
    // A workspace root lists packages; anything else with a package.json is one extension.
    const pkg = safeJson(join(dir, 'package.json')) as { workspaces?: unknown } | undefined;
    if (!pkg?.workspaces) return [dir];
  }
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith('.') && e.name !== 'node_modules')
    .map((e) => join(dir, e.name))
    .filter(isExtensionFolder)
    .sort();
}

function safeJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

const err = (code: string, message: string, details?: unknown): ErrorPayload => (details === undefined ? { code, message } : { code, message, details });

/** `line:column` of a JSON syntax error, from the position Node's parser reports. */
function syntaxErrorAt(text: string, error: Error): string {
  const position = Number(/position (\d+)/.exec(error.message)?.[1]);
  if (!Number.isFinite(position)) return '';
  const before = text.slice(0, position);
  const line = before.split('\n').length;
  return `:${line}:${position - before.lastIndexOf('\n')}`;
}

/**
 * The first `__proto__` key anywhere in a parsed manifest: JSON.parse keeps it as data, code reading it
 * would not. Walked with a stack, not recursion, so a deeply nested manifest cannot overflow it.
 */
function protoKeyAt(root: unknown): string | undefined {
  const stack: Array<[unknown, string]> = [[root, '']];
  while (stack.length > 0) {
    const [value, pointer] = stack.pop()!;
    if (typeof value !== 'object' || value === null) continue;
    for (const key of Object.keys(value)) {
      const at = `${pointer}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;
      if (key === '__proto__') return at;
      stack.push([(value as Record<string, unknown>)[key], at]);
    }
  }
  return undefined;
}

/** Reads and validates one manifest; every error names the file, the JSON pointer and what was expected. */
export function loadManifest(extensionPath: string, source: ScannedManifest['source']): ScannedManifest {
  const manifestPath = join(extensionPath, 'package.json');
  const result: ScannedManifest = { manifestPath, extensionPath, source, errors: [] };
  let raw: unknown;
  let text = '';
  try {
    text = readFileSync(manifestPath, 'utf8');
    raw = JSON.parse(text);
  } catch (e) {
    result.errors.push(err(ErrorCodes.MANIFEST_INVALID, `${manifestPath}${syntaxErrorAt(text, e as Error)}: not valid JSON (${(e as Error).message})`));
    return result;
  }
  const proto = protoKeyAt(raw);
  if (proto) {
    result.errors.push(err(ErrorCodes.MANIFEST_INVALID, `${manifestPath}: ${proto}: the key "__proto__" is not allowed`));
    return result;
  }
  if (!validateManifest(raw)) {
    for (const line of formatAjvErrors(validateManifest.errors)) result.errors.push(err(ErrorCodes.MANIFEST_INVALID, `${manifestPath}: ${line}`));
    const partial = raw as Partial<ExtensionManifest>;
    if (typeof partial?.publisher === 'string' && typeof partial?.name === 'string') result.id = extensionIdOf(partial as ExtensionManifest);
    return result;
  }
  const manifest = raw as ExtensionManifest;
  result.manifest = manifest;
  result.id = extensionIdOf(manifest);
  if (!semver.validRange(manifest.engines.aion)) {
    result.errors.push(
      err(ErrorCodes.MANIFEST_INVALID, `${manifestPath}: /engines/aion: "${manifest.engines.aion}" is not a semver range (e.g. "^${API_VERSION}")`),
    );
  } else if (!semver.satisfies(API_VERSION, manifest.engines.aion, { includePrerelease: true })) {
    result.errors.push(
      err(ErrorCodes.ENGINE_MISMATCH, `${manifestPath}: /engines/aion: requires Aion ${manifest.engines.aion}, this kernel provides API ${API_VERSION}`),
    );
  }
  const contributes = manifest.contributes ?? {};
  const needsCode = (contributes.routes?.length ?? 0) > 0 || (contributes.commands?.length ?? 0) > 0;
  if (!manifest.main && needsCode) {
    result.errors.push(err(ErrorCodes.MANIFEST_INVALID, `${manifestPath}: /main: required when the extension contributes routes or commands`));
  }
  if (manifest.main && !existsSync(resolve(extensionPath, manifest.main))) {
    result.errors.push(err(ErrorCodes.MANIFEST_INVALID, `${manifestPath}: /main: ${manifest.main} does not exist (build the extension first)`));
  }
  const seen = new Set<string>();
  (contributes.routes ?? []).forEach((r, i) => {
    const key = `${r.method} ${r.path}`;
    if (seen.has(key)) result.errors.push(err(ErrorCodes.MANIFEST_INVALID, `${manifestPath}: /contributes/routes/${i}: ${key} is declared twice`));
    seen.add(key);
    const syntax = routePathError(r.path);
    if (syntax) result.errors.push(err(ErrorCodes.MANIFEST_INVALID, `${manifestPath}: /contributes/routes/${i}/path: ${syntax}`));
  });
  return result;
}
