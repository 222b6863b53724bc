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
      'README.md': readme(
        input,
        `An Aion extension with a route, a command and a setting.

- Route: \`GET ${path}?name=\` → \`{ "message": "<greeting> <name>" }\`
- Command: \`${name}.greet\`
- Setting: \`greeting\` (default \`hello\`) in \`aion.config.json\` under \`extensions["${id}"]\``,
        [
          `Add a route: declare it in \`contributes.routes\`, implement it with \`aion.http.handle('GET /v1/...', fn)\`.`,
          'Routes are public unless declared with `"auth": "required"` and `"scopes"`; the built-in auth extension signs callers in.',
        ],
      ),
    },
  };
}

/** The kernel test of a kind that contributes to a built-in's point: skipped, with a notice, where that built-in is not installed. */
const builtinGuard = (builtin: string, folder: string) => `import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BUILTIN_EXTENSIONS_DIR } from '@aion/core';

/** ${builtin} declares the contribution point; it ships with an Aion checkout or server, not with the packages alone. */
export const hasBuiltin = existsSync(join(BUILTIN_EXTENSIONS_DIR, '${folder}', 'package.json'));
export function skipWithoutBuiltin(this: Mocha.Context): void {
  if (hasBuiltin) return;
  process.stdout.write('      (skipped: the built-in ${builtin} is not installed here; run this test in an Aion checkout)\\n');
  this.skip();
}
`;

function provider(input: ScaffoldInput): ScaffoldTemplate {
  const { name, id } = input;
  const providerId = name;
  return {
    manifest: {
      ...common(input, `A model provider for Aion: ${name}.`),
      activationEvents: [`onProvider:${providerId}`],
      contributes: {
        configuration: {
          type: 'object',
          properties: { prefix: { type: 'string', default: 'echo: ', description: 'What the echo model puts before the last user message' } },
          additionalProperties: false,
        },
        providers: [
          {
            id: providerId,
            displayName: name,
            route: 'local',
            tier: 'local',
            residency: { scope: 'process' },
            models: [
              {
                id: `${providerId}-echo`,
                contextWindow: 4096,
                costPer1kInput: 0,
                costPer1kOutput: 0,
                capabilities: { chat: 0.1 },
                tools: false,
                streaming: true,
              },
            ],
          },
        ],
      },
      aion: { host: 'shared', permissions: { network: 'deny', filesystem: 'none' } },
      dependencies: {},
    },
    files: {
      'src/provider.ts': `import type { ChatRequest, ModelInfo, ProviderEvent, ProviderImplementation } from '@aion/provider-kit';

/** The provider's work: replace this echo with calls to your model (provider-kit's UpstreamCall handles HTTP, cancellation and vendor errors). */
export function createProvider(options: { prefix: string; models: ModelInfo[] }): ProviderImplementation {
  return {
    async *chat(request: ChatRequest): AsyncIterable<ProviderEvent> {
      const last = [...request.messages].reverse().find((m) => m.role === 'user');
      const text = \`\${options.prefix}\${last?.content ?? ''}\`;
      yield { type: 'token', text };
      yield { type: 'usage', inputTokens: 0, outputTokens: text.split(/\\s+/).length };
      yield { type: 'done', finishReason: 'stop' };
    },
    async listModels() {
      return options.models;
    },
  };
}
`,
      'src/extension.ts': `import * as aion from '@aion/extension-api';
import type { ModelInfo } from '@aion/provider-kit';
import { createProvider } from './provider.js';

export function activate(ctx: aion.ExtensionContext) {
  const entry = (ctx.extension.manifest.contributes?.providers as Array<{ id: string; models: ModelInfo[] }>)[0]!;
  const provider = createProvider({ prefix: ctx.configuration.get<string>('prefix') ?? 'echo: ', models: entry.models });
  // A plain object, so only chat and listModels can be called over RPC.
  ctx.subscriptions.push(aion.contributions.register('providers', '${providerId}', { chat: provider.chat, listModels: provider.listModels }));
}
`,
      'test/builtin.ts': builtinGuard('aion.router', 'router'),
      'test/provider.test.ts': `import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { ActivationService, ContributionRegistry, startTestKernel } from '@aion/core';
import { createProvider } from '../src/provider.js';
import { skipWithoutBuiltin } from './builtin.js';

const extensionDir = fileURLToPath(new URL('../..', import.meta.url));

describe('${id}', () => {
  it('streams an answer and lists its models', async () => {
    const provider = createProvider({ prefix: '> ', models: [] });
    const events = [];
    for await (const e of provider.chat({ model: '${providerId}-echo', messages: [{ role: 'user', content: 'hi' }] } as never, undefined as never)) events.push(e);
    assert.deepEqual(events[0], { type: 'token', text: '> hi' });
    assert.equal((events.at(-1) as { type: string }).type, 'done');
  });

  it('registers with the router as the provider its manifest declares', async function () {
    skipWithoutBuiltin.call(this);
    const kernel = await startTestKernel({ extensions: [extensionDir], builtins: ['aion.router'] });
    try {
      const contributions = kernel.kernel.get(ContributionRegistry);
      assert.deepEqual(contributions.list('providers').map((p) => p.entry.id), ['${providerId}']);
      await kernel.kernel.get(ActivationService).activate('${id}');
      assert.ok(contributions.implementation('providers', '${providerId}'), 'the implementation is registered');
    } finally {
      await kernel.stop();
    }
  });
});
`,
      'README.md': readme(
        input,
        `An Aion model provider. Its manifest entry (\`contributes.providers\`) tells the router its models,
costs, capabilities and residency before any code runs; \`src/provider.ts\` answers \`chat\` and \`listModels\`.
It starts as an echo model.`,
        [
          'Replace the echo in `src/provider.ts` with calls to your model; `@aion/provider-kit` has `UpstreamCall` (HTTP with cancellation, timeouts and vendor error mapping) and `startFakeServer` in `@aion/provider-kit/testing` for tests.',
          'List your real models in `contributes.providers[0].models` (context window, costs, capabilities 0–1).',
          'Declare the hosts you call in `aion.permissions.network` and API keys in `contributes.secrets`.',
        ],
      ),
    },
  };
}

function skillPack(input: ScaffoldInput): ScaffoldTemplate {
  const { name, id } = input;
  const skillId = `${name}.count-words`;
  return {
    manifest: {
      ...common(input, `Skills for Aion: ${name}.`),
      activationEvents: [`onSkill:${skillId}`],
      contributes: {
        skills: [
          {
            id: skillId,
            title: 'Count words',
            description: 'Counts the words and characters of a text.',
            runtime: 'js',
            tags: ['text'],
            inputSchema: { type: 'object', required: ['text'], properties: { text: { type: 'string', maxLength: 1000000 } }, additionalProperties: false },
            outputSchema: { type: 'object', required: ['words', 'characters'], properties: { words: { type: 'integer' }, characters: { type: 'integer' } } },
          },
        ],
      },
      aion: { host: 'shared', permissions: { network: 'deny', filesystem: 'none' } },
    },
    files: {
      'src/skills.ts': `/** A skill is a function of JSON-schema'd input to JSON output; the gatekeeper has validated \`args\` already. */
export function countWords(args: { text: string }): { words: number; characters: number } {
  const words = args.text.split(/\\s+/).filter(Boolean).length;
  return { words, characters: args.text.length };
}
`,
      'src/extension.ts': `import * as aion from '@aion/extension-api';
import { countWords } from './skills.js';

export function activate(ctx: aion.ExtensionContext) {
  ctx.subscriptions.push(aion.contributions.register('skills', '${skillId}', { run: (args: { text: string }) => countWords(args) }));
}
`,
      'test/builtin.ts': builtinGuard('aion.skills', 'skills'),
      'test/skills.test.ts': `import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { startTestKernel } from '@aion/core';
import { countWords } from '../src/skills.js';
import { skipWithoutBuiltin } from './builtin.js';

const extensionDir = fileURLToPath(new URL('../..', import.meta.url));

describe('${id}', () => {
  it('counts words', () => {
    assert.deepEqual(countWords({ text: 'the cat  sat' }), { words: 3, characters: 12 });
  });

  it('runs through the skills gatekeeper, which validates its input', async function () {
    skipWithoutBuiltin.call(this);
    const kernel = await startTestKernel({ extensions: [extensionDir], builtins: ['aion.skills'] });
    try {
      const out = await kernel.executeCommand<string>('skills.run', { id: '${skillId}', args: JSON.stringify({ text: 'one two three' }) });
      assert.deepEqual(JSON.parse(out), { words: 3, characters: 13 });
      await assert.rejects(kernel.executeCommand('skills.run', { id: '${skillId}', args: JSON.stringify({ text: 42 }) }));
    } finally {
      await kernel.stop();
    }
  });
});
`,
      'README.md': readme(
        input,
        `Skills for Aion: \`${skillId}\`, a \`js\` skill this extension contributes (\`contributes.skills\`).
People, models and MCP clients call skills through the skills gatekeeper, which checks input and output
against the schemas in the manifest.`,
        [
          "Add a skill: an entry in `contributes.skills` (id, schemas) and `aion.contributions.register('skills', id, { run })`.",
          'Try it on a running server: `npx aion skills run ' + skillId + ` --args '{"text":"a b"}'\`.`,
          'WASM or process skills ship as a signed pack instead (a `pack.json` and modules): sign one with `aion keys generate` and `aion skills sign <dir> --key <key>`, install it with `aion skills install`.',
        ],
      ),
    },
  };
}

function accelerator(input: ScaffoldInput): ScaffoldTemplate {
  const { name, id } = input;
  const detectorId = name.slice(0, 32);
  return {
    manifest: {
      ...common(input, `An accelerator detector for Aion: ${name}.`),
      extensionDependencies: ['aion.accelerators'],
      contributes: {
        accelerators: [
          {
            id: detectorId,
            vendor: detectorId,
            kind: 'gpu',
            title: name,
            description: 'Reports the devices listed in its configuration; replace with your vendor tool.',
            reports: ['index', 'name', 'memoryTotal'],
          },
        ],
        configuration: {
          type: 'object',
          properties: {
            devices: {
              type: 'array',
              default: [],
              items: { type: 'object', required: ['name'], properties: { name: { type: 'string' }, memoryTotalMiB: { type: 'number', minimum: 0 } } },
              description: 'Devices to report (stands in for a vendor tool)',
            },
          },
          additionalProperties: false,
        },
      },
      aion: { host: 'shared', permissions: { network: 'deny', filesystem: 'none' } },
    },
    files: {
      'src/detector.ts': `/** What \`detect()\` answers: a missing vendor tool is \`present: false\` with a reason, never an error. */
export interface Detection {
  present: boolean;
  reason?: string;
  devices: Array<{ index: number; name: string; memoryTotalMiB?: number }>;
}

/** Replace the configured list with your vendor tool's output (run it with a timeout; parse it in a function you test). */
export function detect(configured: Array<{ name: string; memoryTotalMiB?: number }>): Detection {
  if (configured.length === 0) return { present: false, reason: 'no devices configured', devices: [] };
  return { present: true, devices: configured.map((d, index) => ({ index, ...d })) };
}
`,
      'src/extension.ts': `import * as aion from '@aion/extension-api';
import { detect } from './detector.js';

export function activate(ctx: aion.ExtensionContext) {
  const devices = () => ctx.configuration.get<Array<{ name: string; memoryTotalMiB?: number }>>('devices') ?? [];
  ctx.subscriptions.push(aion.contributions.register('accelerators', '${detectorId}', { detect: async () => detect(devices()) }));
}
`,
      'test/builtin.ts': builtinGuard('aion.accelerators', 'accelerators'),
      'test/detector.test.ts': `import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { startTestKernel } from '@aion/core';
import { detect } from '../src/detector.js';
import { skipWithoutBuiltin } from './builtin.js';

const extensionDir = fileURLToPath(new URL('../..', import.meta.url));

describe('${id}', () => {
  it('reports absence as not present, never as an error', () => {
    assert.deepEqual(detect([]), { present: false, reason: 'no devices configured', devices: [] });
    assert.deepEqual(detect([{ name: 'Board 1', memoryTotalMiB: 1024 }]).devices, [{ index: 0, name: 'Board 1', memoryTotalMiB: 1024 }]);
  });

  it('shows its devices in the accelerators snapshot', async function () {
    skipWithoutBuiltin.call(this);
    const kernel = await startTestKernel({ extensions: [extensionDir], builtins: ['aion.accelerators'], config: { extensions: { '${id}': { devices: [{ name: 'Board 1', memoryTotalMiB: 1024 }] } } } });
    try {
      const snapshot = JSON.parse(await kernel.executeCommand<string>('accelerators.list', { json: true }));
      assert.match(JSON.stringify(snapshot), /Board 1/);
    } finally {
      await kernel.stop();
    }
  });
});
`,
      'README.md': readme(
        input,
        `An accelerator detector for Aion. The accelerators extension asks each detector for its devices;
\`resources.gpu\` in other extensions' manifests is placed on what detectors report. This one reports
the devices in its configuration.`,
        [
          "Replace `detect()` in `src/detector.ts` with your vendor tool's output (see the built-in `accelerator-nvidia` for a tool run with a timeout and a parser with tests).",
          'Declare the tool in `contributes.accelerators[0].tools` and allow `aion.permissions.childProcess`.',
          'See the devices on a running server: `npx aion accelerators`.',
        ],
      ),
    },
  };
}

export function scaffoldFiles(input: ScaffoldInput): ScaffoldTemplate {
  switch (input.kind) {
    case 'provider':
      return provider(input);
    case 'skill-pack':
      return skillPack(input);
    case 'accelerator':
      return accelerator(input);
    default:
      return route(input);
  }
}

/** Aion packages a kind needs besides the extension API, core and host runtime. */
export const KIND_PACKAGES: Record<ScaffoldKind, string[]> = { route: [], provider: ['@aion/provider-kit'], 'skill-pack': [], accelerator: [] };
