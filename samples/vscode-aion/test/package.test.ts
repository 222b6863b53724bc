import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';

const vsix = fileURLToPath(new URL('../../vscode-aion.vsix', import.meta.url));
const unzip = (...args: string[]) => execFileSync('unzip', [...args], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });

describe('vscode-aion .vsix (built by npm run build with @vscode/vsce)', () => {
  before(function () {
    if (!existsSync(vsix)) throw new Error(`${vsix} is missing: npm run build packages it (npm run package -w vscode-aion)`);
  });

  it('holds the bundled extension, its manifest and nothing of the sources', () => {
    const entries = unzip('-Z1', vsix).split('\n').filter(Boolean).sort();
    assert.deepEqual(entries, [
      '[Content_Types].xml',
      'extension.vsixmanifest',
      'extension/dist/extension.cjs',
      'extension/media/aion.svg',
      'extension/package.json',
      'extension/readme.md',
    ]);
    const manifest = unzip('-p', vsix, 'extension.vsixmanifest');
    assert.match(manifest, /<Identity Language="en-US" Id="vscode-aion" Version="0\.1\.0" Publisher="aion"/);
  });

  it('declares its activation, commands, settings and the chat view', () => {
    const pkg = JSON.parse(unzip('-p', vsix, 'extension/package.json'));
    assert.equal(pkg.main, './dist/extension.cjs');
    assert.deepEqual(pkg.activationEvents, ['onStartupFinished']);
    const commands = Object.fromEntries(
      pkg.contributes.commands.map((c: { command: string; title: string; category: string }) => [c.command, `${c.category}: ${c.title}`]),
    );
    for (const [id, title] of [
      ['aion.summarizeFile', 'Aion: Summarize File'],
      ['aion.suggestRenames', 'Aion: Suggest Renames'],
      ['aion.commentSelection', 'Aion: Comment Selection'],
      ['aion.buildPreview', 'Aion: Build Preview'],
    ])
      assert.equal(commands[id!], title);
    const settings = pkg.contributes.configuration.properties;
    assert.deepEqual(Object.keys(settings).sort(), [
      'aion.device.enabled',
      'aion.device.name',
      'aion.device.skills',
      'aion.hubUrl',
      'aion.previewPlatform',
      'aion.privacy',
    ]);
    assert.deepEqual(settings['aion.device.skills'].items.enum, ['workspace.search', 'workspace.read', 'workspace.symbols']);
    assert.equal(settings['aion.device.enabled'].default, false, 'the workspace is exposed only when the user enables it');
    assert.deepEqual(
      pkg.contributes.views.aion.map((v: { id: string }) => v.id),
      ['aion.chat'],
    );
  });

  it('bundles its code: only vscode and Node built-ins are left to require', () => {
    const code = unzip('-p', vsix, 'extension/dist/extension.cjs');
    const required = new Set([...code.matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1]!));
    assert.ok(required.has('vscode'));
    // ws loads these optional native speed-ups inside a try; without them it works as well.
    const allowed = new Set(['vscode', 'bufferutil', 'utf-8-validate', ...builtinModules]);
    const foreign = [...required].filter((r) => !r.startsWith('node:') && !allowed.has(r));
    assert.deepEqual(foreign, []);
  });
});
