import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AionError, API_VERSION, ErrorCodes } from '@aion/extension-api';
import { KIND_PACKAGES, scaffoldFiles, SCAFFOLD_KINDS, type ScaffoldKind } from './scaffoldKinds.js';

export { SCAFFOLD_KINDS, type ScaffoldKind };

/** The Aion packages a scaffolded extension installs. */
const AION_PACKAGES = ['@aion/extension-api', '@aion/host-runtime', '@aion/core', '@aion/provider-kit'] as const;

/** Third-party tools a scaffolded extension builds and tests with (pinned like the repository's). */
const DEV_TOOLS = { typescript: '6.0.3', mocha: '^12.0.3', '@types/mocha': '^10.0.10', '@types/node': '^20.19.0' };

const coreRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The repository this CLI runs from, when it runs from a checkout rather than an installed package. */
export function checkoutRoot(): string | undefined {
  const root = resolve(coreRoot, '..');
  try {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name?: string; workspaces?: string[] };
    return pkg.name === 'aion' && pkg.workspaces?.includes('core') ? root : undefined;
  } catch {
    return undefined;
  }
}

export const coreVersion = () => (JSON.parse(readFileSync(join(coreRoot, 'package.json'), 'utf8')) as { version: string }).version;

/** `npm pack` file name of a scoped package: `@aion/core` 0.1.0 → `aion-core-0.1.0.tgz`. */
export const tarballName = (name: string, version: string) => `${name.replace(/^@/, '').replace('/', '-')}-${version}.tgz`;

/**
 * How the new extension depends on Aion: from a checkout, `file:` links to this checkout's
 * `npm run pack` tarballs (packed now when missing); from an installed CLI, a version range.
 */
function aionDependencies(): { specs: Record<string, string>; source: 'tarballs' | 'registry'; tarballDir?: string } {
  const root = checkoutRoot();
  const version = coreVersion();
  if (!root) return { specs: Object.fromEntries(AION_PACKAGES.map((p) => [p, `^${version}`])), source: 'registry' };
  const tarballDir = join(root, 'dist-packages');
  const missing = AION_PACKAGES.some((p) => !existsSync(join(tarballDir, tarballName(p, version))));
  if (missing) execFileSync(process.execPath, [join(root, 'scripts', 'pack.mjs')], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  return { specs: Object.fromEntries(AION_PACKAGES.map((p) => [p, `file:${join(tarballDir, tarballName(p, version))}`])), source: 'tarballs', tarballDir };
}

export interface ScaffoldResult {
  dir: string;
  kind: ScaffoldKind;
  /** Where `@aion/*` comes from: this checkout's tarballs or the registry. */
  dependencies: 'tarballs' | 'registry';
  tarballDir?: string;
}

/** Writes a working extension of `kind` (package.json, tsconfig, source, test, README) into `<dir>/<name>`, like `yo code`. */
export function scaffoldExtension(name: string, options: { dir?: string; publisher?: string; kind?: ScaffoldKind } = {}): ScaffoldResult {
  if (!/^[a-z][a-z0-9-]*$/.test(name))
    throw new AionError(ErrorCodes.BAD_REQUEST, `"${name}" is not a valid extension name: use lower-case letters, digits and dashes, starting with a letter`);
  const kind = options.kind ?? 'route';
  if (!SCAFFOLD_KINDS.includes(kind)) throw new AionError(ErrorCodes.BAD_REQUEST, `--kind must be one of ${SCAFFOLD_KINDS.join(', ')}, not "${kind}"`);
  const publisher = options.publisher ?? 'me';
  if (!/^[a-z][a-z0-9-]*$/.test(publisher))
    throw new AionError(ErrorCodes.BAD_REQUEST, `"${publisher}" is not a valid publisher: use lower-case letters, digits and dashes`);
  const target = resolve(options.dir ?? '.', name);
  if (existsSync(target) && readdirSync(target).length > 0) throw new AionError(ErrorCodes.CONFLICT, `${target} already exists`);
  const aion = aionDependencies();
  const { manifest, files } = scaffoldFiles({ name, publisher, id: `${publisher}.${name}`, kind, apiVersion: API_VERSION });
  const { dependencies = {}, devDependencies = {}, ...rest } = manifest as { dependencies?: Record<string, string>; devDependencies?: Record<string, string> };
  const pkg = {
    ...rest,
    scripts: {
      build: 'tsc -p .',
      test: "tsc -p . && mocha --spec 'dist/test/**/*.test.js' --timeout 30000 --exit",
      start: 'aion serve --extensions-dir .',
      dev: 'aion dev --extensions-dir .',
    },
    dependencies: {
      '@aion/extension-api': aion.specs['@aion/extension-api'],
      ...Object.fromEntries(KIND_PACKAGES[kind].map((p) => [p, aion.specs[p]!])),
      ...dependencies,
    },
    // host-runtime is listed so npm takes it from the same place as core (core depends on it).
    devDependencies: { '@aion/core': aion.specs['@aion/core'], '@aion/host-runtime': aion.specs['@aion/host-runtime'], ...DEV_TOOLS, ...devDependencies },
  };
  const all: Record<string, string> = {
    'package.json': JSON.stringify(pkg, null, 2) + '\n',
    'tsconfig.json':
      JSON.stringify(
        {
          compilerOptions: {
            target: 'ES2022',
            module: 'nodenext',
            moduleResolution: 'nodenext',
            strict: true,
            rootDir: '.',
            outDir: 'dist',
            skipLibCheck: true,
            sourceMap: true,
            types: ['node', 'mocha'],
          },
          include: ['src', 'test'],
        },
        null,
        2,
      ) + '\n',
    '.gitignore': 'node_modules/\ndist/\n.aion/\n',
    ...files,
  };
  for (const [file, content] of Object.entries(all)) {
    mkdirSync(dirname(join(target, file)), { recursive: true });
    writeFileSync(join(target, file), content);
  }
  return { dir: target, kind, dependencies: aion.source, tarballDir: aion.tarballDir };
}
