import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { call } from '@aion/ext-auth/testing';
import { createGitRepo } from '@aion/ext-projects/testing';
import type { BundleMetadata } from '../src/api.js';
import { FIXTURES, finalStatus, previewToken, registerProject, startBuild, startPreviewKernel, unzipFile, unzipList, type PreviewKernel } from './helpers.js';

function writeProject(root: string, name: string, files: Record<string, string>): string {
  const dir = join(root, name);
  for (const [file, content] of Object.entries(files)) {
    mkdirSync(join(dir, file, '..'), { recursive: true });
    writeFileSync(join(dir, file), content);
  }
  return dir;
}

/** A build script that starts a grandchild (its pid written to `pidFile`) and never ends. */
function hangingBuild(pidFile: string): string {
  return `const { spawn } = require('child_process'); const c = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' }); require('fs').writeFileSync(${JSON.stringify(pidFile)}, String(c.pid)); console.log('hanging'); setInterval(() => {}, 1000);\n`;
}

async function assertKilled(pid: number): Promise<void> {
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  for (let i = 0; i < 50 && alive(); i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(alive(), false, 'the grandchild of the build script was killed with its group');
}

/** A project with one dependency (a folder inside it, so no registry is needed) that its build script requires. */
const NPM_PROJECT = {
  'package.json': JSON.stringify({
    name: 'npm-demo',
    version: '1.0.0',
    private: true,
    scripts: { build: 'node build.js' },
    dependencies: { greeting: 'file:vendor/greeting' },
  }),
  'package-lock.json': JSON.stringify({
    name: 'npm-demo',
    version: '1.0.0',
    lockfileVersion: 3,
    requires: true,
    packages: {
      '': { name: 'npm-demo', version: '1.0.0', dependencies: { greeting: 'file:vendor/greeting' } },
      'node_modules/greeting': { resolved: 'vendor/greeting', link: true },
      'vendor/greeting': { version: '1.0.0' },
    },
  }),
  'vendor/greeting/package.json': JSON.stringify({ name: 'greeting', version: '1.0.0', main: 'index.js' }),
  'vendor/greeting/index.js': "module.exports = 'built';\n",
  'build.js':
    "const fs = require('fs'); fs.mkdirSync('dist', { recursive: true }); fs.writeFileSync('dist/index.html', '<h1>' + require('greeting') + '</h1>'); console.log('build ok');\n",
};

describe('aion.preview builds', function () {
  this.timeout(180_000);
  let k: PreviewKernel;
  let staticId: string;
  let staticJob: string;
  let staticToken: string;

  before(async () => {
    k = await startPreviewKernel({
      extensions: [join(FIXTURES, 'custom-builder')],
      grants: { 'fixtures.custom-builder': { filesystem: 'all' } },
    });
    const dir = writeProject(k.projectsRoot, 'site', { 'index.html': '<h1>hello</h1>', 'css/site.css': 'h1{color:red}', 'node_modules/junk.js': 'x' });
    staticId = await registerProject(k, k.alice.access_token, dir, 'site');
    staticToken = await previewToken(k, k.alice.access_token, staticId, 'web');
  });
  after(async () => k?.stop());

  const download = (jobId: string, headers: Record<string, string> = {}, token = k.alice.access_token) =>
    call(k.kernel, 'GET', `/v1/preview/download/${jobId}`, { token, headers });

  it('builds a static project into bundle.zip with artifacts, metadata and log, in stages', async () => {
    staticJob = await startBuild(k, staticToken);
    const status = await finalStatus(k, k.alice.access_token, staticJob);
    assert.equal(status.status, 'success', JSON.stringify(status));
    assert.equal(status.progress, 1);
    assert.equal(status.stage, 'done');
    assert.equal(status.builder, 'static');
    const res = await download(staticJob);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/zip');
    assert.equal(res.headers.get('accept-ranges'), 'bytes');
    const zip = Buffer.from(await res.arrayBuffer());
    assert.equal(zip.length, status.bundle!.size);
    const path = join(k.kernel.dataDir, 'got.zip');
    writeFileSync(path, zip);
    assert.deepEqual(unzipList(path), ['artifacts/css/site.css', 'artifacts/index.html', 'build.log', 'metadata.json']);
    const metadata = JSON.parse(unzipFile(path, 'metadata.json')) as BundleMetadata;
    assert.equal(metadata.job_id, staticJob);
    assert.equal(metadata.project_id, staticId);
    assert.equal(metadata.platform, 'web');
    assert.equal(metadata.token_version, 1);
    assert.equal(metadata.timeout, false);
    assert.ok(Date.parse(metadata.built_at) > 0);
    // Stored where the data directory keeps previews; the temp folder is gone.
    assert.ok(existsSync(join(k.kernel.dataDir, 'previews', staticId, staticJob, 'bundle.zip')));
    assert.ok(!existsSync(join(k.kernel.dataDir, 'tmp', `preview-job-${staticJob}`)));
    const jobLogs = (await (await call(k.kernel, 'GET', `/v1/jobs/${staticJob}`, { token: k.alice.access_token })).json()) as { status: string };
    assert.ok(jobLogs);
  });

  it('serves byte ranges: 206 with Content-Range, suffix and open ranges, 416 outside the bundle', async () => {
    const whole = Buffer.from(await (await download(staticJob)).arrayBuffer());
    const part = await download(staticJob, { range: 'bytes=10-29' });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 10-29/${whole.length}`);
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), whole.subarray(10, 30));
    const suffix = await download(staticJob, { range: 'bytes=-16' });
    assert.equal(suffix.status, 206);
    assert.deepEqual(Buffer.from(await suffix.arrayBuffer()), whole.subarray(whole.length - 16));
    const open = await download(staticJob, { range: `bytes=${whole.length - 5}-` });
    assert.equal(open.headers.get('content-range'), `bytes ${whole.length - 5}-${whole.length - 1}/${whole.length}`);
    assert.equal((await open.arrayBuffer()).byteLength, 5);
    const beyond = await download(staticJob, { range: `bytes=${whole.length}-` });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers.get('content-range'), `bytes */${whole.length}`);
    assert.equal(((await beyond.json()) as { error: { code: string } }).error.code, 'RANGE_NOT_SATISFIABLE');
    // Syntax the server does not serve as a range is answered with the whole bundle.
    const several = await download(staticJob, { range: 'bytes=0-1,5-6' });
    assert.equal(several.status, 200);
    assert.equal((await several.arrayBuffer()).byteLength, whole.length);
  });

  it("lets the build's user, or a live token of its project and platform, read it; nobody else", async () => {
    assert.equal((await call(k.kernel, 'GET', `/v1/preview/status/${staticJob}`, { token: k.bob.access_token })).status, 404);
    assert.equal((await download(staticJob, {}, k.bob.access_token)).status, 404);
    assert.equal((await call(k.kernel, 'GET', `/v1/preview/logs/${staticJob}`, { token: k.bob.access_token })).status, 404);
    const anonymous = await call(k.kernel, 'GET', `/v1/preview/status/${staticJob}`);
    assert.equal(anonymous.status, 401);
    const byToken = await call(k.kernel, 'GET', `/v1/preview/download/${staticJob}`, { headers: { 'x-preview-token': staticToken } });
    assert.equal(byToken.status, 200);
    const android = await previewToken(k, k.alice.access_token, staticId, 'android');
    const wrong = await call(k.kernel, 'GET', `/v1/preview/status/${staticJob}`, { headers: { 'x-preview-token': android } });
    assert.equal(wrong.status, 401);
    assert.equal(((await wrong.json()) as { error: { code: string } }).error.code, 'PREVIEW_TOKEN_MISMATCH');
    const forged = await call(k.kernel, 'GET', `/v1/preview/status/${staticJob}?token=${encodeURIComponent(staticToken.slice(0, -2) + 'AA')}`);
    assert.equal(forged.status, 401);
    assert.equal(((await forged.json()) as { error: { code: string } }).error.code, 'PREVIEW_TOKEN_INVALID');
    // Bob cannot get a token for Alice's project.
    const stolen = await call(k.kernel, 'POST', '/v1/preview/token', { token: k.bob.access_token, body: { project_id: staticId, platform: 'web' } });
    assert.equal(stolen.status, 404);
    const logs = await call(k.kernel, 'GET', `/v1/preview/logs/${staticJob}`, { token: k.alice.access_token });
    assert.equal(logs.status, 200);
    assert.match(await logs.text(), /preview build .*project/);
  });

  it('refuses bad token requests and bad builds with stable codes', async () => {
    const noScope = await call(k.kernel, 'POST', '/v1/preview/token', { body: { project_id: staticId, platform: 'web' } });
    assert.equal(noScope.status, 401);
    const badPlatform = await call(k.kernel, 'POST', '/v1/preview/token', { token: k.alice.access_token, body: { project_id: staticId, platform: 'windows' } });
    assert.equal(badPlatform.status, 400);
    const tampered = JSON.parse(Buffer.from(staticToken.split('.')[1]!, 'base64url').toString());
    tampered.platform = 'ios';
    const forgedBody = `pv1.${Buffer.from(JSON.stringify(tampered)).toString('base64url')}.${staticToken.split('.')[2]}`;
    for (const [token, code] of [
      [forgedBody, 'PREVIEW_TOKEN_INVALID'],
      ['nonsense', 'PREVIEW_TOKEN_INVALID'],
      [42, 'PREVIEW_TOKEN_INVALID'],
    ] as const) {
      const res = await call(k.kernel, 'POST', '/v1/preview/build', { body: { token } });
      assert.equal(res.status, 401);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, code);
    }
    const wrongPlatform = await call(k.kernel, 'POST', '/v1/preview/build', { body: { token: staticToken, platform: 'ios' } });
    assert.equal(wrongPlatform.status, 401);
    assert.equal(((await wrongPlatform.json()) as { error: { code: string } }).error.code, 'PREVIEW_TOKEN_WRONG_PLATFORM');
    for (const ref of ['--upload-pack=touch /tmp/pwned', '-b', 'a..b', 'main;rm -rf /', '']) {
      const res = await call(k.kernel, 'POST', '/v1/preview/build', { body: { token: staticToken, git_ref: ref } });
      assert.equal(res.status, 400, ref);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'INVALID_GIT_REF');
    }
  });

  it('checks out a git ref in a temp folder without touching the repository', async () => {
    const repo = await createGitRepo({ 'index.html': '<h1>main</h1>' }, { parent: k.projectsRoot });
    await repo.git('checkout', '--quiet', '-b', 'feature');
    writeFileSync(join(repo.path, 'index.html'), '<h1>feature</h1>');
    await repo.git('commit', '--quiet', '-am', 'feature');
    await repo.git('checkout', '--quiet', 'main');
    writeFileSync(join(repo.path, 'index.html'), '<h1>uncommitted</h1>');
    const before = {
      status: await repo.git('status', '--porcelain'),
      refs: await repo.git('for-each-ref'),
      worktrees: await repo.git('worktree', 'list'),
      files: readdirSync(join(repo.path, '.git')).sort(),
    };
    const id = await registerProject(k, k.alice.access_token, repo.path, 'repo');
    const token = await previewToken(k, k.alice.access_token, id, 'web');
    const job = await startBuild(k, token, 'feature');
    const status = await finalStatus(k, k.alice.access_token, job);
    assert.equal(status.status, 'success', JSON.stringify(status));
    const path = join(k.kernel.dataDir, 'feature.zip');
    writeFileSync(path, Buffer.from(await (await download(job)).arrayBuffer()));
    assert.equal(unzipFile(path, 'artifacts/index.html'), '<h1>feature</h1>');
    const metadata = JSON.parse(unzipFile(path, 'metadata.json')) as BundleMetadata;
    assert.equal(metadata.git_ref, 'feature');
    assert.match(metadata.commit ?? '', /^[0-9a-f]{40}$/);
    assert.deepEqual(
      {
        status: await repo.git('status', '--porcelain'),
        refs: await repo.git('for-each-ref'),
        worktrees: await repo.git('worktree', 'list'),
        files: readdirSync(join(repo.path, '.git')).sort(),
      },
      before,
    );
    const missing = await startBuild(k, token, 'no-such-branch');
    const failed = await finalStatus(k, k.alice.access_token, missing);
    assert.equal(failed.status, 'failed');
    assert.equal(failed.error?.code, 'INVALID_GIT_REF');
  });

  it('runs the npm build script, restores dependencies from the lockfile cache the second time', async () => {
    // A hostile build script reads its environment: the kernel's secrets must not be in it.
    process.env.AION_PREVIEW_TEST_CANARY = 'kernel-secret-value';
    const dir = writeProject(k.projectsRoot, 'npm', {
      ...NPM_PROJECT,
      'build.js': NPM_PROJECT['build.js'] + "fs.writeFileSync('dist/env.json', JSON.stringify(process.env));\n",
    });
    const id = await registerProject(k, k.alice.access_token, dir, 'npm');
    const token = await previewToken(k, k.alice.access_token, id, 'web');
    const first = await finalStatus(k, k.alice.access_token, await startBuild(k, token));
    assert.equal(first.status, 'success', JSON.stringify(first));
    assert.equal(first.builder, 'npm-script');
    const cache = join(k.kernel.dataDir, 'cache', 'preview_deps');
    assert.equal(readdirSync(cache).filter((n) => !n.startsWith('.')).length, 1);
    const firstZip = join(k.kernel.dataDir, 'npm.zip');
    writeFileSync(firstZip, Buffer.from(await (await download(first.job_id)).arrayBuffer()));
    assert.equal(unzipFile(firstZip, 'artifacts/index.html'), '<h1>built</h1>');
    const env = JSON.parse(unzipFile(firstZip, 'artifacts/env.json')) as Record<string, string>;
    delete process.env.AION_PREVIEW_TEST_CANARY;
    assert.equal(env.AION_PREVIEW_TEST_CANARY, undefined);
    assert.ok(env.PATH);
    const secondJob = await startBuild(k, token);
    const second = await finalStatus(k, k.alice.access_token, secondJob);
    assert.equal(second.status, 'success');
    const log = await (await call(k.kernel, 'GET', `/v1/preview/logs/${secondJob}`, { token: k.alice.access_token })).text();
    assert.match(log, /build ok/);
    assert.doesNotMatch(log, /\$ npm ci/);
    assert.match(log, /dependencies: cache/);
    assert.ok(!existsSync(join(dir, 'node_modules')), 'the project folder itself is never written');
    assert.ok(!existsSync(join(dir, 'dist')));
  });

  it('fails with PREVIEW_BUILD_FAILED, MISSING_DEPENDENCIES and INVALID_PROJECT_STRUCTURE', async () => {
    const cases: Array<[string, Record<string, string>, string, string]> = [
      ['broken', { ...NPM_PROJECT, 'build.js': "console.error('syntax is fine but the build fails'); process.exit(3);\n" }, 'web', 'PREVIEW_BUILD_FAILED'],
      [
        'nodeps',
        {
          'package.json': JSON.stringify({
            name: 'nodeps',
            version: '1.0.0',
            scripts: { build: 'node build.js' },
            dependencies: { missing: 'file:does-not-exist.tgz' },
          }),
          'build.js': '',
        },
        'web',
        'MISSING_DEPENDENCIES',
      ],
      ['empty', { 'README.md': 'nothing to build' }, 'web', 'INVALID_PROJECT_STRUCTURE'],
      ['site-for-ios', { 'index.html': '<h1>web only</h1>' }, 'ios', 'INVALID_PROJECT_STRUCTURE'],
      ['no-output', { ...NPM_PROJECT, 'build.js': "console.log('wrote nothing');\n" }, 'web', 'INVALID_PROJECT_STRUCTURE'],
      [
        'rn-without-modules',
        {
          'package.json': JSON.stringify({ name: 'rn', version: '1.0.0', dependencies: {}, devDependencies: { 'react-native': '0.76.9' } }),
          'package-lock.json': NPM_PROJECT['package-lock.json'],
          'index.js': '',
        },
        'android',
        'MISSING_DEPENDENCIES',
      ],
    ];
    for (const [name, files, platform, code] of cases) {
      const id = await registerProject(k, k.alice.access_token, writeProject(k.projectsRoot, name, files), name);
      const status = await finalStatus(k, k.alice.access_token, await startBuild(k, await previewToken(k, k.alice.access_token, id, platform)));
      assert.equal(status.status, 'failed', name);
      assert.equal(status.error?.code, code, `${name}: ${JSON.stringify(status.error)}`);
    }
  });

  it('answers 409 BUNDLE_NOT_READY while building, and a canceled build takes its process group down', async () => {
    const pidFile = join(k.projectsRoot, 'cancel-grandchild.pid');
    const dir = writeProject(k.projectsRoot, 'cancel', {
      'package.json': JSON.stringify({ name: 'cancel', scripts: { build: 'node build.js' } }),
      'build.js': hangingBuild(pidFile),
    });
    const id = await registerProject(k, k.alice.access_token, dir, 'cancel');
    const job = await startBuild(k, await previewToken(k, k.alice.access_token, id, 'web'));
    const deadline = Date.now() + 60_000;
    while (!existsSync(pidFile) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const running = await download(job);
    assert.equal(running.status, 409);
    assert.equal(running.headers.get('retry-after'), '5');
    assert.equal(((await running.json()) as { error: { code: string } }).error.code, 'BUNDLE_NOT_READY');
    const status = (await (await call(k.kernel, 'GET', `/v1/preview/status/${job}`, { token: k.alice.access_token })).json()) as {
      status: string;
      stage: string;
      progress: number;
    };
    assert.deepEqual([status.status, status.stage, status.progress], ['running', 'build', 0.5]);
    assert.equal((await call(k.kernel, 'POST', `/v1/jobs/${job}/cancel`, { token: k.alice.access_token })).status, 200);
    assert.equal((await finalStatus(k, k.alice.access_token, job)).status, 'canceled');
    await assertKilled(Number(readFileSync(pidFile, 'utf8')));
  });

  it('uses a builder another extension contributes, running in another host', async () => {
    const dir = writeProject(k.projectsRoot, 'custom', { 'custom.txt': 'shout', 'index.html': 'x' });
    const id = await registerProject(k, k.alice.access_token, dir, 'custom');
    const job = await startBuild(k, await previewToken(k, k.alice.access_token, id, 'web'));
    const status = await finalStatus(k, k.alice.access_token, job);
    assert.equal(status.status, 'success', JSON.stringify(status));
    assert.equal(status.builder, 'fixture-custom');
    const path = join(k.kernel.dataDir, 'custom.zip');
    writeFileSync(path, Buffer.from(await (await download(job)).arrayBuffer()));
    assert.equal(unzipFile(path, 'artifacts/CUSTOM.TXT'), 'SHOUT');
  });

  it('cleans up expired bundles, orphaned objects, stale temp folders of dead jobs and old logs', async () => {
    const data = k.kernel.dataDir;
    const old = new Date(Date.now() - 30 * 86_400_000);
    const expired = join(data, 'previews', staticId, staticJob, 'bundle.zip');
    utimesSync(expired, old, old);
    mkdirSync(join(data, 'previews', 'ghost-project', 'ghost-job'), { recursive: true });
    writeFileSync(join(data, 'previews', 'ghost-project', 'ghost-job', 'bundle.zip'), 'orphan');
    mkdirSync(join(data, 'tmp', 'preview-job-dead-job', 'src'), { recursive: true });
    writeFileSync(join(data, 'logs', 'preview', 'ancient.log'), 'old');
    utimesSync(join(data, 'logs', 'preview', 'ancient.log'), old, old);
    const keptLogs = readdirSync(join(data, 'logs', 'preview')).length - 1;
    const report = await k.kernel.executeCommand<Record<string, number>>('preview.cleanup');
    assert.deepEqual(report, { expired_bundles: 1, orphaned_objects: 1, stale_temp_dirs: 1, old_logs: 1 });
    assert.ok(!existsSync(expired));
    assert.ok(!existsSync(join(data, 'previews', 'ghost-project')));
    assert.ok(!existsSync(join(data, 'tmp', 'preview-job-dead-job')));
    assert.equal(readdirSync(join(data, 'logs', 'preview')).length, keptLogs);
    const gone = await download(staticJob);
    assert.equal(gone.status, 404);
    assert.match(((await gone.json()) as { error: { message: string } }).error.message, /expired/);
    // The other bundles are younger and have their jobs: they stay.
    assert.ok(readdirSync(join(data, 'previews')).length > 0);
    assert.ok(readFileSync(join(data, 'storage', 'aion.preview', 'preview-secret'), 'utf8').length >= 32);
  });
});

describe('aion.preview timeout', function () {
  this.timeout(120_000);
  let k: PreviewKernel;
  before(async () => {
    k = await startPreviewKernel({ preview: { maxTimeoutMs: 4000, tokenTtlSeconds: 10 } });
  });
  after(async () => k?.stop());

  it('refuses an expired preview token over HTTP with 401 PREVIEW_TOKEN_EXPIRED', async () => {
    const dir = writeProject(k.projectsRoot, 'site', { 'index.html': 'x' });
    const token = await previewToken(k, k.alice.access_token, await registerProject(k, k.alice.access_token, dir, 'site'), 'web');
    await new Promise((r) => setTimeout(r, 10_500));
    const res = await call(k.kernel, 'POST', '/v1/preview/build', { body: { token } });
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'PREVIEW_TOKEN_EXPIRED');
  });

  it("kills the builder's whole process group past the limit, fails with PREVIEW_TIMEOUT and records timeout: true", async () => {
    const pidFile = join(k.projectsRoot, 'grandchild.pid');
    const dir = writeProject(k.projectsRoot, 'hang', {
      'package.json': JSON.stringify({ name: 'hang', scripts: { build: 'node build.js' } }),
      'build.js': hangingBuild(pidFile),
    });
    const id = await registerProject(k, k.alice.access_token, dir, 'hang');
    const started = Date.now();
    const job = await startBuild(k, await previewToken(k, k.alice.access_token, id, 'web'));
    const status = await finalStatus(k, k.alice.access_token, job);
    assert.equal(status.status, 'failed');
    assert.equal(status.error?.code, 'PREVIEW_TIMEOUT');
    assert.ok(Date.now() - started < 60_000);
    await assertKilled(Number(readFileSync(pidFile, 'utf8')));
    const res = await call(k.kernel, 'GET', `/v1/preview/download/${job}`, { token: k.alice.access_token });
    assert.equal(res.status, 200);
    const path = join(k.kernel.dataDir, 'timeout.zip');
    writeFileSync(path, Buffer.from(await res.arrayBuffer()));
    const metadata = JSON.parse(unzipFile(path, 'metadata.json')) as BundleMetadata;
    assert.equal(metadata.timeout, true);
    assert.match(unzipFile(path, 'build.log'), /hanging[\s\S]*PREVIEW_TIMEOUT/);
  });
});
