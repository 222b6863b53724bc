import assert from 'node:assert/strict';
import { Kernel, createLogger, loadConfig } from '@aion/core';
import { bearer, fixture, removeDir, skillsRoot, tempDir, until } from './support/helpers.js';

describe('usage with aion.storage', function () {
  this.timeout(60_000);
  let dataDir: string;

  before(() => {
    dataDir = tempDir();
  });

  after(() => removeDir(dataDir));

  const start = () =>
    Kernel.start({
      config: loadConfig({ env: {}, overrides: { dataDir, server: { port: 0, host: '127.0.0.1' }, extensions: { 'aion.skills': { wasm: { workers: 1 } } } } }),
      builtins: ['aion.storage'],
      extensionDirs: [skillsRoot, fixture('test-auth'), fixture('js-skills')],
      logger: createLogger({ level: process.env.AION_TEST_LOG_LEVEL ?? 'silent' }),
    });

  it('keeps calls per skill and caller across a restart', async () => {
    let kernel = await start();
    try {
      const res = await fetch(`${kernel.url}/v1/skills/demo.reverse/execute`, {
        method: 'POST',
        headers: bearer('runner'),
        body: JSON.stringify({ args: { text: 'abc' } }),
      });
      assert.equal(res.status, 200);
      // Saved a moment after the call.
      await new Promise((r) => setTimeout(r, 2500));
    } finally {
      await kernel.stop();
    }
    kernel = await start();
    try {
      const usage = await until(async () => {
        const body = (await (await fetch(`${kernel.url}/v1/skill-usage?skill=demo.reverse`, { headers: bearer('admin') })).json()) as {
          usage: Array<{ caller: string; calls: number }>;
        };
        return body.usage.length ? body.usage : undefined;
      }, 'usage restored');
      assert.equal(usage![0]?.caller, 'default/rune');
      assert.equal(usage![0]?.calls, 1);
    } finally {
      await kernel.stop();
    }
  });
});
