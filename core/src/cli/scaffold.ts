import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { AionError, API_VERSION, ErrorCodes } from '@aion/extension-api';

/** Writes a working extension (route, command, setting, test) into `<dir>/<name>`, like `yo code`. */
export function scaffoldExtension(name: string, options: { dir?: string; publisher?: string } = {}): string {
  if (!/^[a-z][a-z0-9-]*$/.test(name)) throw new AionError(ErrorCodes.BAD_REQUEST, `"${name}" is not a valid extension name: use lower-case letters, digits and dashes, starting with a letter`);
  const target = resolve(options.dir ?? '.', name);
  if (existsSync(target)) throw new AionError(ErrorCodes.CONFLICT, `${target} already exists`);
  const publisher = options.publisher ?? 'me';
  const id = `${publisher}.${name}`;
  const route = `/v1/${name}`;
  mkdirSync(join(target, 'src'), { recursive: true });
  mkdirSync(join(target, 'test'), { recursive: true });
  const files: Record<string, string> = {
    'package.json': JSON.stringify(
      {
        name,
        publisher,
        version: '0.1.0',
        description: `The ${name} extension for Aion.`,
        private: true,
        type: 'module',
        main: 'dist/src/extension.js',
        engines: { aion: `^${API_VERSION}` },
        scripts: { build: 'tsc -p .', test: "tsc -p . && mocha --spec 'dist/test/**/*.test.js' --timeout 20000 --exit" },
        contributes: {
          configuration: { type: 'object', properties: { greeting: { type: 'string', default: 'hello' } }, additionalProperties: false },
          routes: [{ method: 'GET', path: route, description: 'Says the configured greeting.' }],
          commands: [{ command: `${name}.greet`, title: 'Greet someone' }],
        },
        aion: { host: 'shared', permissions: { network: 'deny', filesystem: 'none' } },
        dependencies: { '@aion/extension-api': `^${API_VERSION}` },
        devDependencies: { '@aion/core': `^${API_VERSION}` },
      },
      null,
      2,
    ) + '\n',
    'tsconfig.json': JSON.stringify(
      {
        compilerOptions: { target: 'ES2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, rootDir: '.', outDir: 'dist', skipLibCheck: true, sourceMap: true, types: ['node', 'mocha'] },
        include: ['src', 'test'],
      },
      null,
      2,
    ) + '\n',
    'src/extension.ts': `import * as aion from '@aion/extension-api';

export async function activate(ctx: aion.ExtensionContext) {
  const greeting = () => ctx.configuration.get<string>('greeting');
  ctx.subscriptions.push(
    aion.http.handle('GET ${route}', async (req) => ({ body: { message: \`\${greeting()} \${req.query.name ?? 'world'}\` } })),
    aion.commands.register('${name}.greet', (who: string) => \`\${greeting()} \${who}\`),
  );
}
`,
    'test/extension.test.ts': `import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { startTestKernel, type TestKernel } from '@aion/core';

const extensionDir = fileURLToPath(new URL('../..', import.meta.url));

describe('${id}', () => {
  let kernel: TestKernel;
  before(async () => {
    kernel = await startTestKernel({ extensions: [extensionDir], config: { extensions: { '${id}': { greeting: 'hi' } } } });
  });
  after(() => kernel.stop());

  it('answers its route with the configured greeting', async () => {
    const res = await kernel.request('${route}?name=ada');
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { message: 'hi ada' });
  });
});
`,
    'README.md': `# ${id}

An Aion extension. Build with \`npm run build\`, test with \`npm test\`, run with
\`aion serve --extensions-dir ${basename(target)}\`.

- Route: \`GET ${route}?name=\` → \`{ "message": "<greeting> <name>" }\`
- Command: \`${name}.greet\`
- Setting: \`greeting\` (default \`hello\`) in \`aion.config.json\` under \`extensions["${id}"]\`
`,
  };
  for (const [file, content] of Object.entries(files)) writeFileSync(join(target, file), content);
  return target;
}
