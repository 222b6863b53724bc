import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { startTestKernel, type TestKernel } from '@aion/core';
import { signInAdmin } from '@aion/ext-auth/testing';
import { PROBE_FIXTURE } from './helpers.js';

const require = createRequire(import.meta.url);
const CLI = join(dirname(require.resolve('@aion/core/package.json')), 'dist', 'src', 'cli', 'main.js');

async function aion(args: string[]): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, ...args], { env: { ...process.env, LOG_LEVEL: 'silent', NO_COLOR: '1' } });
    return { code: 0, stdout };
  } catch (err) {
    const e = err as { code: number; stdout: string };
    return { code: e.code, stdout: e.stdout };
  }
}

describe('aion health', function () {
  let kernel: TestKernel;
  let token: string;

  before(async () => {
    kernel = await startTestKernel({ builtins: ['aion.storage', 'aion.auth', 'aion.observability'] });
    token = (await signInAdmin(kernel)).access_token;
  });
  after(() => kernel?.stop());

  it('without credentials: status and readiness only, exit 0, and says how to see more', async () => {
    const res = await aion(['health', '--url', kernel.url]);
    assert.equal(res.code, 0, res.stdout);
    assert.match(res.stdout, /healthy/);
    assert.match(res.stdout, /pass --token/);
    assert.doesNotMatch(res.stdout, /✔ database/);
  });

  it('with an admin token: hosts and the database check, as JSON too', async () => {
    const text = await aion(['health', '--url', kernel.url, '--token', token]);
    assert.equal(text.code, 0, text.stdout);
    assert.match(text.stdout, /host kernel running/);
    assert.match(text.stdout, /✔ database\s+ok\s+sqlite/);
    const json = await aion(['health', '--url', kernel.url, '--token', token, '--json']);
    const body = JSON.parse(json.stdout);
    assert.equal(body.ok, true);
    assert.equal(body.checks.find((c: { name: string }) => c.name === 'database').status, 'ok');
  });

  it('exits 1 and names the failing dependency', async () => {
    const failing = await startTestKernel({ builtins: ['aion.storage', 'aion.auth'], extensions: [PROBE_FIXTURE] });
    try {
      const admin = (await signInAdmin(failing)).access_token;
      const res = await aion(['health', '--url', failing.url, '--token', admin]);
      assert.equal(res.code, 1, res.stdout);
      assert.match(res.stdout, /not healthy/);
      assert.match(res.stdout, /✖ probe\s+failed\s+the probe reports itself broken/);
      const json = JSON.parse((await aion(['health', '--url', failing.url, '--token', admin, '--json'])).stdout);
      assert.equal(json.ok, false);
      assert.equal(json.status, 'degraded');
    } finally {
      await failing.stop();
    }
  });
});
