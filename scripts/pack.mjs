#!/usr/bin/env node
// `npm run pack`: the packages an extension author installs, as npm tarballs in dist-packages/.
// Builds first (tsc -b is incremental), so the tarballs always hold the current dist/.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const PACKED_WORKSPACES = ['extension-api', 'host-runtime', 'provider-kit', 'sandbox', 'core'];
const out = join(root, 'dist-packages');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-b'], { cwd: root, stdio: 'inherit' });
mkdirSync(out, { recursive: true });
for (const old of readdirSync(out).filter((f) => f.endsWith('.tgz'))) rmSync(join(out, old));
const packed = JSON.parse(
  execFileSync(npm, ['pack', '--json', '--pack-destination', out, ...PACKED_WORKSPACES.flatMap((w) => ['-w', w])], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }),
);
for (const p of packed) process.stdout.write(`${join('dist-packages', p.filename)}  ${p.entryCount} files, ${(p.size / 1024).toFixed(0)} KiB\n`);
