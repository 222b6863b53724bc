// The extension as VS Code loads it: one CommonJS file with @aion/client and ws inside, `vscode` left to the editor.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const started = Date.now();
await build({
  entryPoints: [`${root}src/extension.ts`],
  outfile: `${root}dist/extension.cjs`,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  external: ['vscode', 'bufferutil', 'utf-8-validate'],
  sourcemap: true,
  logLevel: 'warning',
});
console.log(`vscode-aion bundled in ${Date.now() - started} ms: dist/extension.cjs`);
