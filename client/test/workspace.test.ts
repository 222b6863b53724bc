import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AionApiError, AionClient, type PreviewStatus } from '../src/index.js';
import { startHub, type Hub } from './hub.js';

const SOURCE = ['export function add(a: number, b: number) {', '  return a + b;', '}', ''].join('\n');

async function rejects(promise: Promise<unknown>): Promise<AionApiError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof AionApiError, `an AionApiError, not ${String(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}

describe('@aion/client: projects, preview builds and AI documentation against a real hub', function () {
  this.timeout(120_000);
  let hub: Hub;
  let aion: AionClient;
  let root: string;
  let projectId: string;

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'aion-client-workspace-'));
    const site = join(root, 'site');
    mkdirSync(join(site, 'src'), { recursive: true });
    writeFileSync(join(site, 'index.html'), '<h1>hello</h1>');
    writeFileSync(join(site, 'src', 'math.ts'), SOURCE);
    hub = await startHub({ workspace: { localRoots: [root] } });
    aion = new AionClient({ baseUrl: hub.url });
    await aion.auth.login(hub.admin.username, hub.admin.password);
    projectId = (await aion.projects.create({ name: 'site', repository: site })).id;
  });
  after(async () => {
    aion?.close();
    await hub?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('registers, lists and reads projects; another id is NOT_FOUND', async () => {
    const { projects } = await aion.projects.list();
    assert.deepEqual(
      projects.map((p) => p.name),
      ['site'],
    );
    assert.equal((await aion.projects.get(projectId)).kind, 'local');
    assert.equal((await rejects(aion.projects.get('no-such-project'))).status, 404);
  });

  it('builds a preview: token, build, progress through the stages, then the bundle and a range of it', async () => {
    const seen: PreviewStatus[] = [];
    const done = await aion.preview.buildProject({ project_id: projectId, platform: 'web' }, { onProgress: (s) => seen.push(s), intervalMs: 50 });
    assert.equal(done.status, 'success');
    assert.equal(done.builder, 'static');
    assert.equal(seen.at(-1)!.progress, 1, 'the last progress report is the finished build');
    assert.ok(seen.length >= 2, 'progress was reported while the build ran');
    const whole = await aion.preview.download(done.job_id, { token: done.token });
    assert.equal(whole.status, 200);
    assert.equal(Buffer.from(whole.bytes.subarray(0, 2)).toString('latin1'), 'PK', 'a zip');
    assert.equal(whole.bytes.length, done.bundle!.size);
    const part = await aion.preview.download(done.job_id, { token: done.token, range: { start: 0, end: 9 } });
    assert.equal(part.status, 206);
    assert.equal(part.bytes.length, 10);
    assert.equal(part.contentRange, `bytes 0-9/${done.bundle!.size}`);
    const viaUrl = await fetch(done.download_url);
    assert.equal(viaUrl.status, 200, 'the download link works on its own, with the token in it');
    assert.match(await aion.preview.logs(done.job_id, { token: done.token }), /static/);
  });

  it('answers a forged preview token with its stable code', async () => {
    const err = await rejects(aion.preview.build({ token: 'pv1.forged.token' }));
    assert.equal(err.code, 'PREVIEW_TOKEN_INVALID');
    assert.equal(err.status, 401);
  });

  it('summarizes a file, comments lines and suggests renames, reporting progress', async () => {
    const stages: string[] = [];
    const summary = await aion.aiDocs.summarizeFile(
      { project_id: projectId, path: 'src/math.ts' },
      { onProgress: (j) => stages.push(j.status), intervalMs: 50 },
    );
    assert.equal(summary.status, 'success');
    assert.equal(summary.result!.summary, 'summary of src/math.ts');
    assert.equal(summary.engine!.provider, 'openai');
    assert.equal(stages.at(-1), 'success');
    const comments = await aion.aiDocs.commentLines({ project_id: projectId, path: 'src/math.ts', range: { start_line: 1, end_line: 2 } }, { intervalMs: 50 });
    assert.deepEqual(comments.result!.comments, [{ line: 1, comment: 'declares add' }]);
    const renames = await aion.aiDocs.suggestRenames({ project_id: projectId, path: 'src/math.ts', symbol: 'add' }, { intervalMs: 50 });
    assert.equal(renames.result!.suggestions[0]!.to, 'sum');
  });

  it('refuses a path outside the project with a typed error, before any job runs', async () => {
    const err = await rejects(aion.aiDocs.start('file-summary', { project_id: projectId, path: '../../etc/passwd' }));
    assert.equal(err.status, 400);
    assert.equal(err.code, 'PATH_OUTSIDE_PROJECT');
  });

  it('throws the code of a job that failed', async () => {
    writeFileSync(join(root, 'site', 'src', 'big.ts'), `// ${'x'.repeat(300_000)}\n`);
    const err = await rejects(aion.aiDocs.summarizeFile({ project_id: projectId, path: 'src/big.ts' }, { intervalMs: 50 }));
    assert.equal(err.code, 'FILE_TOO_LARGE');
    assert.equal((err.details as { status: string }).status, 'failed');
  });

  it('stops waiting when the caller aborts', async () => {
    const { job_id } = await aion.aiDocs.start('file-summary', { project_id: projectId, path: 'src/math.ts' });
    const controller = new AbortController();
    controller.abort(new Error('user closed the panel'));
    const err = await rejects(aion.aiDocs.wait(job_id, { signal: controller.signal }));
    assert.equal(err.code, 'ABORTED');
  });
});
