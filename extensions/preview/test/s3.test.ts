import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isAionError } from '@aion/extension-api';
import { call } from '@aion/ext-auth/testing';
import { S3BundleStore, type S3Settings } from '../src/storage/s3Store.js';
import { finalStatus, previewToken, registerProject, startBuild, startPreviewKernel, unzipList } from './helpers.js';

const S3rver = createRequire(import.meta.url)('s3rver') as new (options: Record<string, unknown>) => { run(): Promise<AddressInfo>; close(): Promise<void> };
const BUCKET = 'aion-previews';

/** A proxy in front of s3rver that answers the next `failPuts` PUTs with 503 SlowDown, and counts PUTs. */
function faultyProxy(target: number): Promise<{ server: Server; port: number; state: { failPuts: number; puts: number } }> {
  const state = { failPuts: 0, puts: 0 };
  const server = createServer((req, res) => {
    if (req.method === 'PUT') {
      state.puts++;
      if (state.failPuts > 0) {
        state.failPuts--;
        req.resume();
        req.on('end', () => {
          res.writeHead(503, { 'content-type': 'application/xml' });
          res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>');
        });
        return;
      }
    }
    const upstream = request({ host: '127.0.0.1', port: target, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port, state })));
}

describe('aion.preview S3 bundle store (against s3rver)', function () {
  this.timeout(120_000);
  let s3: InstanceType<typeof S3rver>;
  let s3Port: number;
  let proxy: Awaited<ReturnType<typeof faultyProxy>>;
  let dir: string;
  let file: string;
  const settings = (port: number, extra: Partial<S3Settings> = {}): S3Settings => ({
    bucket: BUCKET,
    region: 'us-east-1',
    endpoint: `http://127.0.0.1:${port}`,
    forcePathStyle: true,
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    retries: 3,
    retryDelayMs: 10,
    ...extra,
  });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'aion-s3rver-'));
    s3 = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: join(dir, 'data'), configureBuckets: [{ name: BUCKET }] });
    s3Port = (await s3.run()).port;
    proxy = await faultyProxy(s3Port);
    file = join(dir, 'bundle.zip');
    writeFileSync(file, Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 251)));
  });
  after(async () => {
    proxy?.server.close();
    await s3?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('stores, reads ranges, lists and deletes under previews/<project>/<job>/bundle.zip', async () => {
    const store = new S3BundleStore(settings(s3Port));
    try {
      const key = 'previews/p1/j1/bundle.zip';
      const stored = await store.put(key, file);
      assert.equal(stored.size, 5000);
      assert.equal((await store.stat(key))?.size, 5000);
      assert.deepEqual(await store.read(key, { start: 100, end: 109 }), Buffer.from(Array.from({ length: 10 }, (_, i) => (100 + i) % 251)));
      assert.equal((await store.read(key)).length, 5000);
      assert.deepEqual(
        (await store.list('previews/')).map((o) => o.key),
        [key],
      );
      assert.equal(await store.delete(key), true);
      assert.equal(await store.stat(key), undefined);
    } finally {
      store.close();
    }
  });

  it('retries transient failures (503 twice) and then succeeds', async () => {
    const log: string[] = [];
    const store = new S3BundleStore(settings(proxy.port), (line) => log.push(line));
    try {
      proxy.state.puts = 0;
      proxy.state.failPuts = 2;
      await store.put('previews/p1/transient/bundle.zip', file);
      assert.equal(proxy.state.puts, 3);
      assert.equal(log.length, 2);
      assert.equal((await store.stat('previews/p1/transient/bundle.zip'))?.size, 5000);
    } finally {
      store.close();
    }
  });

  it('gives up with STORAGE_UPLOAD_FAILED after 3 retries, leaving no object', async () => {
    const store = new S3BundleStore(settings(proxy.port));
    try {
      proxy.state.puts = 0;
      proxy.state.failPuts = 100;
      await assert.rejects(store.put('previews/p1/down/bundle.zip', file), (err) => isAionError(err) && err.code === 'STORAGE_UPLOAD_FAILED');
      assert.equal(proxy.state.puts, 4);
      proxy.state.failPuts = 0;
      assert.equal(await store.stat('previews/p1/down/bundle.zip'), undefined);
    } finally {
      store.close();
    }
  });

  it('does not retry a permanent failure (no such bucket)', async () => {
    const store = new S3BundleStore(settings(proxy.port, { bucket: 'no-such-bucket' }));
    try {
      proxy.state.puts = 0;
      await assert.rejects(
        store.put('previews/p1/j/bundle.zip', file),
        (err) => isAionError(err) && err.code === 'STORAGE_UPLOAD_FAILED' && /NoSuchBucket/.test(err.message),
      );
      assert.equal(proxy.state.puts, 1);
    } finally {
      store.close();
    }
  });

  it('serves a whole preview build from S3: upload, status, ranged download; a failing store fails the build', async () => {
    const secretsFile = join(dir, 'secrets.json');
    writeFileSync(secretsFile, JSON.stringify({ 'aion.preview': { PREVIEW_S3_ACCESS_KEY_ID: 'S3RVER', PREVIEW_S3_SECRET_ACCESS_KEY: 'S3RVER' } }));
    const k = await startPreviewKernel({
      secretsFile,
      builtins: ['aion.observability'],
      preview: { storage: { backend: 's3', s3: { bucket: BUCKET, endpoint: `http://127.0.0.1:${proxy.port}`, retries: 1, retryDelayMs: 10 } } },
    });
    try {
      const project = join(k.projectsRoot, 'site');
      mkdirSync(project);
      writeFileSync(join(project, 'index.html'), '<h1>from s3</h1>');
      const id = await registerProject(k, k.alice.access_token, project, 'site');
      const token = await previewToken(k, k.alice.access_token, id, 'web');
      const job = await startBuild(k, token);
      const status = await finalStatus(k, k.alice.access_token, job);
      assert.equal(status.status, 'success', JSON.stringify(status));
      const store = new S3BundleStore(settings(s3Port));
      const stored = await store.stat(`previews/${id}/${job}/bundle.zip`);
      store.close();
      assert.equal(stored?.size, status.bundle!.size);
      const res = await call(k.kernel, 'GET', `/v1/preview/download/${job}`, { token: k.alice.access_token });
      const zip = join(dir, 'from-s3.zip');
      writeFileSync(zip, Buffer.from(await res.arrayBuffer()));
      assert.deepEqual(unzipList(zip), ['artifacts/index.html', 'build.log', 'metadata.json']);
      const part = await call(k.kernel, 'GET', `/v1/preview/download/${job}`, { token: k.alice.access_token, headers: { range: 'bytes=0-3' } });
      assert.equal(part.status, 206);
      assert.deepEqual(Buffer.from(await part.arrayBuffer()), Buffer.from('PK\x03\x04', 'latin1'));

      proxy.state.failPuts = 100;
      const failing = await startBuild(k, token);
      const failed = await finalStatus(k, k.alice.access_token, failing);
      proxy.state.failPuts = 0;
      assert.equal(failed.status, 'failed');
      assert.equal(failed.error?.code, 'STORAGE_UPLOAD_FAILED');
      // The counters reach /metrics through aion.observability.
      const metrics = await (await call(k.kernel, 'GET', '/metrics', { token: k.admin.access_token })).text();
      assert.match(metrics, /^aion_preview_build_success_total 1$/m);
      assert.match(metrics, /^aion_preview_build_failures_total\{code="STORAGE_UPLOAD_FAILED"\} 1$/m);
      assert.match(metrics, /^aion_preview_upload_failures_total 1$/m);
      assert.match(metrics, /^aion_preview_build_time_seconds_count\{outcome="success"\} 1$/m);
    } finally {
      await k.stop();
    }
  });
});
