import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, startTestKernel } from '../src/index.js';
import { fixture, tempDir } from './helpers.js';

describe('configuration', () => {
  it('applies the defaults an extension declares', async () => {
    const kernel = await startTestKernel({ extensions: [fixture('basic')] });
    try {
      assert.equal(((await (await kernel.request('/v1/basic/ping')).json()) as { level: number }).level, 3);
    } finally {
      await kernel.stop();
    }
  });

  it('takes AION_CONFIG__ environment overrides, matching extension ids', async () => {
    const kernel = await startTestKernel({ extensions: [fixture('basic')], env: { AION_CONFIG__EXTENSIONS__FIXTURES_BASIC__LEVEL: '7' } });
    try {
      assert.equal(((await (await kernel.request('/v1/basic/ping')).json()) as { level: number }).level, 7);
    } finally {
      await kernel.stop();
    }
  });

  it('stops start-up on an invalid extension value, naming the key', async () => {
    await assert.rejects(
      startTestKernel({ extensions: [fixture('basic')], config: { extensions: { 'fixtures.basic': { level: 'high' } } } }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'CONFIG_INVALID');
        assert.match(err.message, /extensions\.fixtures\.basic\.level: must be integer/);
        return true;
      },
    );
    await assert.rejects(
      startTestKernel({ extensions: [fixture('basic')], config: { extensions: { 'fixtures.basic': { level: 0 } } } }),
      /extensions\.fixtures\.basic\.level: must be >= 1/,
    );
  });

  it('rejects unknown or mistyped kernel settings', () => {
    assert.throws(() => loadConfig({ env: {}, overrides: { server: { port: 'eighty' } } }), /\/server\/port: must be integer/);
    assert.throws(() => loadConfig({ env: {}, overrides: { sever: {} } }), /must NOT have additional properties \(sever\)/);
  });

  it('upgrades a schemaVersion 1 file and refuses a newer one', () => {
    const dir = tempDir();
    try {
      const v1 = join(dir, 'v1.json');
      writeFileSync(v1, JSON.stringify({ port: 9001, host: '127.0.0.2', 'fixtures.basic': { level: 4 } }));
      const config = loadConfig({ configPath: v1, env: {} });
      assert.equal(config.schemaVersion, 2);
      assert.equal(config.server.port, 9001);
      assert.equal(config.server.host, '127.0.0.2');
      assert.deepEqual(config.extensions['fixtures.basic'], { level: 4 });
      const v9 = join(dir, 'v9.json');
      writeFileSync(v9, JSON.stringify({ schemaVersion: 9 }));
      assert.throws(() => loadConfig({ configPath: v9, env: {} }), /schemaVersion 9; this Aion understands up to 2/);
      const broken = join(dir, 'broken.json');
      writeFileSync(broken, '{');
      assert.throws(() => loadConfig({ configPath: broken, env: {} }), /is not valid JSON/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('lets AION_PORT and AION_CONFIG__ override the file', () => {
    const config = loadConfig({ env: { AION_PORT: '7777', AION_CONFIG__SERVER__MAX_IN_FLIGHT: '12' } });
    assert.equal(config.server.port, 7777);
    assert.equal(config.server.maxInFlight, 12);
  });
});
