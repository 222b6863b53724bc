/** What `aion extensions new --kind` can write. */
export const SCAFFOLD_KINDS = ['route', 'provider', 'skill-pack', 'accelerator'] as const;
export type ScaffoldKind = (typeof SCAFFOLD_KINDS)[number];

export interface ScaffoldInput {
  name: string;
  publisher: string;
  id: string;
  kind: ScaffoldKind;
  apiVersion: string;
}

/** A kind's manifest (without scripts and the Aion dependencies) and its files. */
export interface ScaffoldTemplate {
  manifest: Record<string, unknown>;
  files: Record<string, string>;
}

const common = ({ name, publisher, apiVersion }: ScaffoldInput, description: string) => ({
  name,
  publisher,
  version: '0.1.0',
  description,
  private: true,
  type: 'module',
  main: 'dist/src/extension.js',
  engines: { aion: `^${apiVersion}` },
});

const readme = (input: ScaffoldInput, what: string, next: string[]) => `# ${input.id}

${what}

## Build, test, run

\`\`\`sh
npm install
npm test                                 # builds, then runs test/ against a real kernel
npx aion serve --extensions-dir .        # serves this extension (npm start does the same)
npx aion dev --extensions-dir .          # rebuilds and reloads it on every change
\`\`\`

## Next steps

${next.map((n) => `- ${n}`).join('\n')}
- Check the manifest without running anything: \`npx aion extensions validate .\`
- The test kit (\`@aion/core\`): \`startTestKernel({ extensions: [dir], builtins, config })\` gives
  \`request()\`, \`executeCommand()\`, \`signInAdmin()\` and \`createApiKey()\`.
`;

function route(input: ScaffoldInput): ScaffoldTemplate {
  const { name, id } = input;
  const path = `/v1/${name}`;
  return {
    manifest: {
      ...common(input, `The ${name} extension for Aion.`),
      contributes: {
        configuration: { type: 'object', properties: { greeting: { type: 'string', default: 'hello' } }, additionalProperties: false },
        routes: [{ method: 'GET', path, description: 'Says the configured greeting.' }],
        commands: [{ command: `${name}.greet`, title: 'Greet someone' }],
      },
      aion: { host: 'shared', permissions: { network: 'deny', filesystem: 'none' } },
    },
    files: {
      'src/extension.ts': `import * as aion from '@aion/extension-api';

export async function activate(ctx: aion.ExtensionContext) {
  const greeting = () => ctx.configuration.get<string>('greeting');
  ctx.subscriptions.push(
    aion.http.handle('GET ${path}', async (req) => ({ body: { message: \`\${greeting()} \${req.query.name ?? 'world'}\` } })),
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
    const res = await kernel.request('${path}?name=ada');
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { message: 'hi ada' });
  });

  it('runs its command', async () => {
    assert.equal(await kernel.executeCommand('${name}.greet', 'bob'), 'hi bob');
  });
});
`,
      'README.md': readme(input, `An Aion extension with a route, a command and a setting.

- Route: \`GET ${path}?name=\` → \`{ "message": "<greeting> <name>" }\`
- Command: \`${name}.greet\`
- Setting: \`greeting\` (default \`hello\`) in \`aion.config.json\` under \`extensions["${id}"]\``, [
        `Add a route: declare it in \`contributes.routes\`, implement it with \`aion.http.handle('GET /v1/...', fn)\`.`,
        'Routes are public unless declared with `"auth": "required"` and `"scopes"`; the built-in auth extension signs callers in.',
      ]),
    },
  };
}

export function scaffoldFiles(input: ScaffoldInput): ScaffoldTemplate {
  switch (input.kind) {
    case 'route':
      return route(input);
    default:
      return route(input);
  }
}
