import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import { Kernel, createLogger, loadConfig, logLevelFromEnvironment } from '@aion/core';
import { PROBE_FIXTURE, until } from './helpers.js';

const require = createRequire(import.meta.url);
const CLI = join(dirname(require.resolve('@aion/core/package.json')), 'dist', 'src', 'cli', 'main.js');

const SECRET = 'probe-secret-Value-7f3a9c';
const BEARER = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJlLXRoYXQtbWF0dGVycw';
const API_KEY = 'aion_0123456789ab_abcdefghijklmnopqrstuvwxyz012345';

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString('utf8')));
  return { stream, text: () => text };
}

describe('logs', function () {
  it('never writes a bearer token, an API key or a secret value, and tags lines with service, extension and request id', async () => {
    const out = capture();
    const dataDir = mkdtempSync(join(tmpdir(), 'aion-logs-'));
    const secretsFile = join(dataDir, 'secrets.json');
    writeFileSync(secretsFile, JSON.stringify({ 'obstest.probe': { PROBE_SECRET: SECRET } }));
    const kernel = await Kernel.start({
      config: loadConfig({ env: {}, overrides: { dataDir, secretsFile, server: { port: 0, host: '127.0.0.1' } } }),
      builtins: false,
      extensionDirs: [PROBE_FIXTURE],
      logger: createLogger({ level: 'debug', destination: out.stream, pretty: false }),
    });
    try {
      const res = await fetch(`${kernel.url}/probe/leak`, {
        method: 'POST',
        headers: { authorization: `Bearer ${BEARER}`, 'x-api-key': API_KEY, 'content-type': 'application/json', 'x-request-id': 'leak-test-1' },
        body: JSON.stringify({ token: BEARER }),
      });
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as { secretLength: number }).secretLength, SECRET.length, 'the extension did read the secret');
      const line = await until(
        async () =>
          out
            .text()
            .split('\n')
            .find((l) => l.includes('calling upstream')),
        'the extension log line',
      );
      const text = out.text();
      for (const leaked of [SECRET, BEARER, API_KEY]) assert.ok(!text.includes(leaked), `${leaked} appears in the logs`);
      const entry = JSON.parse(line) as Record<string, unknown>;
      assert.equal(entry.service, 'aion');
      assert.equal(entry.extension, 'obstest.probe');
      assert.equal(entry.requestId, 'leak-test-1');
      assert.match(String(entry.msg), /\[redacted\]/);
      const request = text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l))
        .find((e) => e.msg === 'request' && e.path === '/probe/leak');
      assert.equal(request?.requestId, 'leak-test-1', 'the edge line carries the request id');
      assert.equal(request?.route, '/probe/leak');
    } finally {
      await kernel.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('writes colored human-readable lines to a terminal and JSON elsewhere', () => {
    const tty = capture();
    (tty.stream as unknown as { isTTY: boolean }).isTTY = true;
    createLogger({ destination: tty.stream }).info({ extension: 'aion.demo' }, `hello with Bearer ${BEARER}`);
    assert.ok(tty.text().includes('\u001b['), 'ANSI colors');
    assert.match(tty.text(), /INFO/);
    assert.ok(!tty.text().trimStart().startsWith('{'), 'not JSON');
    assert.ok(!tty.text().includes(BEARER));
    const pipe = capture();
    createLogger({ destination: pipe.stream }).info('plain');
    assert.equal(JSON.parse(pipe.text()).msg, 'plain');
  });

  it('takes its level from LOG_LEVEL, then AION_LOG_LEVEL', () => {
    assert.equal(logLevelFromEnvironment({ LOG_LEVEL: 'debug', AION_LOG_LEVEL: 'warn' }), 'debug');
    assert.equal(logLevelFromEnvironment({ AION_LOG_LEVEL: 'warn' }), 'warn');
    assert.equal(logLevelFromEnvironment({}), undefined);
  });

  it('aion serve --log-level debug writes debug JSON lines to a pipe, and refuses an unknown level', async function () {
    const dataDir = mkdtempSync(join(tmpdir(), 'aion-serve-'));
    const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--builtins', 'none', '--data-dir', dataDir, '--log-level', 'debug'], {
      env: { ...process.env, LOG_LEVEL: '', AION_LOG_LEVEL: '' },
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d) => {
          out += d;
          const m = /listening on (http:\/\/\S+)/.exec(out);
          if (m) resolve(m[1]!);
        });
        child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
      });
      await fetch(`${url}/healthz`);
      const line = await until(async () => stderr.split('\n').find((l) => l.includes('"path":"/healthz"')), 'the access line');
      assert.equal(JSON.parse(line).level, 30, 'the access line is info');
      // A request that is not HTTP is logged at debug only.
      const socket = connect(Number(new URL(url).port), new URL(url).hostname);
      socket.on('error', () => undefined);
      socket.end('NOT HTTP\r\n\r\n');
      const debug = await until(async () => stderr.split('\n').find((l) => l.includes('"msg":"client error"')), 'a debug line');
      assert.equal(JSON.parse(debug).level, 20);
    } finally {
      child.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
    const bad = await promisify(execFile)(process.execPath, [CLI, 'serve', '--port', '0', '--builtins', 'none', '--log-level', 'loud']).catch(
      (e) => e as { code: number; stderr: string },
    );
    assert.equal((bad as { code: number }).code, 1);
    assert.match((bad as { stderr: string }).stderr, /CONFIG_INVALID: --log-level must be one of/);
  });
});
