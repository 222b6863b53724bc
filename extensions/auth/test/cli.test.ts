import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startTestKernel } from '@aion/core';
import { STORAGE_EXTENSION_DIR } from '@aion/ext-storage/testing';
import { AUTH_EXTENSION_DIR } from '../src/testing.js';

const cli = join(createRequire(import.meta.url).resolve('@aion/core/package.json'), '..', 'dist', 'src', 'cli', 'main.js');
const run = promisify(execFile);

async function aion(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [cli, ...args], {
      env: { ...process.env, AION_LOG_LEVEL: 'silent', AION_JWT_SECRET: 'cli-test-secret-0123456789-abcdefghijklmnop' },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('aion users create', function () {
  this.timeout(60_000);
  let dataDir: string;
  before(() => (dataDir = mkdtempSync(join(tmpdir(), 'aion-users-cli-'))));
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  const common = () => ['--data-dir', dataDir, '--builtins', 'aion.auth'];

  it('creates a user that can then log in, and prints a generated password once', async () => {
    const res = await aion([
      'users',
      'create',
      '--username',
      'grace',
      '--password',
      'correct horse battery',
      '--scopes',
      'sessions:read,sessions:write',
      ...common(),
    ]);
    assert.equal(res.code, 0, res.stderr);
    const created = JSON.parse(res.stdout);
    assert.equal(created.user.username, 'grace');
    assert.deepEqual(created.user.scopes, ['sessions:read', 'sessions:write']);
    assert.equal(created.password, undefined);
    const generated = JSON.parse((await aion(['users', 'create', '-u', 'linus', ...common()])).stdout);
    assert.equal(typeof generated.password, 'string');

    const kernel = await startTestKernel({ extensions: [STORAGE_EXTENSION_DIR, AUTH_EXTENSION_DIR], config: { dataDir, server: { port: 0 } }, env: {} });
    try {
      const login = await kernel.request('/v1/auth/login', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'grace', password: 'correct horse battery' }),
      });
      assert.equal(login.status, 200);
    } finally {
      await kernel.stop();
    }
  });

  it('refuses a duplicate and a missing username with a clear message', async () => {
    const dup = await aion(['users', 'create', '--username', 'grace', '--password', 'another long password', ...common()]);
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /CONFLICT/);
    const missing = await aion(['users', 'create', ...common()]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--username is required/);
  });
});
