import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dependencyCacheKey } from '../src/dependencies.js';
import type { BundleMetadata } from '../src/api.js';
import { call } from '@aion/ext-auth/testing';
import { finalStatus, previewToken, registerProject, startBuild, startPreviewKernel, unzipFile, unzipList, type PreviewKernel } from './helpers.js';
import { ensureTools, slowSuiteEnabled, TOOLSETS } from './tools.js';

/** A project whose dependencies are already in the preview's lockfile cache (as a real earlier build would have left them). */
async function seededProject(k: PreviewKernel, name: string, files: Record<string, string>, tools: string): Promise<string> {
  const dir = join(k.projectsRoot, name);
  mkdirSync(dir, { recursive: true });
  for (const [file, content] of Object.entries(files)) writeFileSync(join(dir, file), content);
  const key = await dependencyCacheKey(dir);
  const cache = join(k.kernel.dataDir, 'cache', 'preview_deps', key!);
  mkdirSync(cache, { recursive: true });
  execFileSync('cp', ['-al', tools, join(cache, 'node_modules')]);
  return registerProject(k, k.alice.access_token, dir, name);
}

describe('aion.preview mobile builders with the real tools (slow)', function () {
  this.timeout(1_200_000);
  let k: PreviewKernel;

  before(async function () {
    if (!slowSuiteEnabled()) {
      console.log(
        '    (skipped: the react-native and expo builds install ~500 MB of tools and take minutes; they run with CI=true, AION_PREVIEW_SLOW=1 or npm run bench)',
      );
      this.skip();
    }
    k = await startPreviewKernel({ preview: { maxTimeoutMs: 900_000 } });
  });
  after(async () => k?.stop());

  it('bundles a React Native project for android with Metro (react-native bundle)', async () => {
    const tools = ensureTools('react-native-0.76.9');
    const id = await seededProject(
      k,
      'rn',
      {
        'package.json': JSON.stringify({
          name: 'rndemo',
          version: '1.0.0',
          private: true,
          dependencies: { react: '18.3.1', 'react-native': '0.76.9' },
          devDependencies: { '@react-native-community/cli': '15.1.3', '@react-native/babel-preset': '0.76.9', '@react-native/metro-config': '0.76.9' },
        }),
        'package-lock.json': JSON.stringify({ name: 'rndemo', lockfileVersion: 3, packages: {}, tools: TOOLSETS['react-native-0.76.9'] }),
        'index.js':
          "import React from 'react';\nimport { AppRegistry, Text } from 'react-native';\nAppRegistry.registerComponent('rndemo', () => () => React.createElement(Text, null, 'rn preview works'));\n",
        'babel.config.js': "module.exports = { presets: ['module:@react-native/babel-preset'] };\n",
        'metro.config.js': "const { getDefaultConfig } = require('@react-native/metro-config');\nmodule.exports = getDefaultConfig(__dirname);\n",
      },
      tools,
    );
    const job = await startBuild(k, await previewToken(k, k.alice.access_token, id, 'android'));
    const status = await finalStatus(k, k.alice.access_token, job, 900_000);
    const log = await (await call(k.kernel, 'GET', `/v1/preview/logs/${job}`, { token: k.alice.access_token })).text();
    assert.equal(status.status, 'success', `${JSON.stringify(status)}\n${log.slice(-3000)}`);
    assert.equal(status.builder, 'react-native');
    assert.match(log, /dependencies: cache/);
    const zip = join(k.kernel.dataDir, 'rn.zip');
    writeFileSync(zip, Buffer.from(await (await call(k.kernel, 'GET', `/v1/preview/download/${job}`, { token: k.alice.access_token })).arrayBuffer()));
    assert.ok(unzipList(zip).includes('artifacts/index.android.bundle'));
    const bundle = unzipFile(zip, 'artifacts/index.android.bundle');
    assert.match(bundle, /rn preview works/);
    assert.match(bundle, /__d\(/, 'Metro module definitions');
    assert.equal((JSON.parse(unzipFile(zip, 'metadata.json')) as BundleMetadata).builder, 'react-native');
  });

  it('exports an Expo project for android (expo export), chosen by app.json', async () => {
    const tools = ensureTools('expo-52.0.49');
    const id = await seededProject(
      k,
      'expo',
      {
        'package.json': JSON.stringify({
          name: 'expodemo',
          version: '1.0.0',
          private: true,
          main: 'index.js',
          dependencies: { expo: '52.0.49', react: '18.3.1', 'react-native': '0.76.9' },
        }),
        'package-lock.json': JSON.stringify({ name: 'expodemo', lockfileVersion: 3, packages: {}, tools: TOOLSETS['expo-52.0.49'] }),
        'app.json': JSON.stringify({ expo: { name: 'expodemo', slug: 'expodemo', version: '1.0.0' } }),
        'index.js':
          "import React from 'react';\nimport { registerRootComponent } from 'expo';\nimport { Text } from 'react-native';\nregisterRootComponent(() => React.createElement(Text, null, 'expo preview works'));\n",
      },
      tools,
    );
    const job = await startBuild(k, await previewToken(k, k.alice.access_token, id, 'android'));
    const status = await finalStatus(k, k.alice.access_token, job, 900_000);
    const log = await (await call(k.kernel, 'GET', `/v1/preview/logs/${job}`, { token: k.alice.access_token })).text();
    assert.equal(status.status, 'success', `${JSON.stringify(status)}\n${log.slice(-3000)}`);
    assert.equal(status.builder, 'expo');
    const zip = join(k.kernel.dataDir, 'expo.zip');
    writeFileSync(zip, Buffer.from(await (await call(k.kernel, 'GET', `/v1/preview/download/${job}`, { token: k.alice.access_token })).arrayBuffer()));
    const entries = unzipList(zip);
    assert.ok(entries.includes('artifacts/metadata.json'), entries.join('\n'));
    const bundleEntry = entries.find((e) => /^artifacts\/_expo\/static\/js\/android\/.*\.(hbc|js)$/.test(e));
    assert.ok(bundleEntry, entries.join('\n'));
  });
});
