import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AionClient, type AionApiError, type DeviceConnection } from '@aion/client';
import { ChatConversation } from '../src/core/chat.js';
import { buildPreview, commentSelection, projectFor, projectPath, summarizeFile } from '../src/core/documents.js';
import { startWorkspaceDevice, statusText } from '../src/core/workspaceDevice.js';
import { startHub, type Hub } from './hub.js';

const MATH = ['export function add(a: number, b: number) {', '  return a + b;', '}', '', 'export class Calculator {}', ''].join('\n');

describe('vscode-aion core against a real hub', function () {
  this.timeout(120_000);
  let hub: Hub;
  let user: AionClient;
  let root: string;
  let workspace: string;
  let device: DeviceConnection | undefined;

  before(async () => {
    root = realpathSync(mkdtempSync(join(tmpdir(), 'vscode-aion-')));
    workspace = join(root, 'my-app');
    mkdirSync(join(workspace, 'src'), { recursive: true });
    writeFileSync(join(workspace, 'index.html'), '<h1>my app</h1>');
    writeFileSync(join(workspace, 'src', 'math.ts'), MATH);
    writeFileSync(join(root, 'secret.txt'), 'not for the hub');
    symlinkSync(join(root, 'secret.txt'), join(workspace, 'src', 'escape.txt'));
    hub = await startHub([root]);
    user = new AionClient({ baseUrl: hub.url });
    await user.auth.login(hub.admin.username, hub.admin.password);
  });
  after(async () => {
    device?.stop();
    user?.close();
    await hub?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  describe('the workspace as a device', () => {
    before(async () => {
      const { token } = await user.devices.add({ name: 'my-app' });
      const states: string[] = [];
      device = startWorkspaceDevice({
        hubUrl: hub.url,
        token,
        name: 'my-app',
        folder: workspace,
        skills: ['workspace.search', 'workspace.read', 'workspace.symbols'],
        onState: (s) => states.push(s),
      }).connection;
      await device.waitOnline(10_000);
      assert.deepEqual(statusText(true, 'online').text, '$(broadcast) Aion: connected');
      assert.ok(states.includes('online'));
    });

    it('is online on the hub with its three read-only skills', async () => {
      const [listed] = await user.devices.list();
      assert.deepEqual([listed!.name, listed!.status, listed!.skills_count], ['my-app', 'online', 3]);
    });

    it('serves calls from the hub: read, search, symbols', async () => {
      const read = await user.skills.execute<{ text: string; totalLines: number }>('my-app/workspace.read', { path: 'src/math.ts', startLine: 1, endLine: 2 });
      assert.equal(read.result.text, 'export function add(a: number, b: number) {\n  return a + b;');
      const search = await user.skills.execute<{ matches: Array<{ path: string; line: number }> }>('my-app/workspace.search', { query: 'A + B' });
      assert.deepEqual(
        search.result.matches.map((m) => [m.path, m.line]),
        [['src/math.ts', 2]],
      );
      const symbols = await user.skills.execute<{ symbols: Array<{ name: string; kind: string; line: number }> }>('my-app/workspace.symbols', {
        path: 'src/math.ts',
      });
      assert.deepEqual(symbols.result.symbols, [
        { name: 'add', kind: 'function', line: 1 },
        { name: 'Calculator', kind: 'class', line: 5 },
      ]);
    });

    it('refuses a path outside the workspace: .., an absolute path, a symlink that leads out', async () => {
      for (const path of ['../secret.txt', join(root, 'secret.txt'), 'src/escape.txt', 'src/../../secret.txt']) {
        const err = await user.skills.execute('my-app/workspace.read', { path }).then(
          () => assert.fail(`${path} was read`),
          (e: AionApiError) => e,
        );
        assert.equal(err.code, 'PATH_OUTSIDE_WORKSPACE', `${path}: ${err.message}`);
      }
    });

    it('refuses what the hub checks first: bad arguments never reach the workspace', async () => {
      const err = await user.skills.execute('my-app/workspace.read', { file: 'src/math.ts' }).then(
        () => assert.fail('expected a refusal'),
        (e: AionApiError) => e,
      );
      assert.equal(err.code, 'VALIDATION_FAILED');
    });
  });

  it('chats with streamed answers, and the history is the hub session any device sees', async () => {
    const chat = await ChatConversation.start(user, { privacy: 'allow-api' });
    const tokens: string[] = [];
    const answer = await chat.send('hello?', (t) => tokens.push(t));
    assert.equal(answer, 'Hello from the hub');
    assert.deepEqual(tokens, ['Hello', ' from', ' the', ' hub']);
    const elsewhere = new AionClient({ baseUrl: hub.url });
    await elsewhere.auth.login(hub.admin.username, hub.admin.password);
    const resumed = await ChatConversation.resume(elsewhere, chat.sessionId);
    assert.deepEqual(resumed.history, [
      { role: 'user', content: 'hello?' },
      { role: 'assistant', content: 'Hello from the hub' },
    ]);
    assert.ok((await ChatConversation.recent(elsewhere)).some((c) => c.id === chat.sessionId && c.messages === 2));
    elsewhere.close();
  });

  it('runs AI documentation jobs on the workspace project, with progress', async () => {
    const projectId = await projectFor(user, workspace, 'my-app');
    assert.equal(await projectFor(user, workspace, 'my-app'), projectId, 'the folder is registered once');
    const path = projectPath(workspace, join(workspace, 'src', 'math.ts'));
    assert.equal(path, 'src/math.ts');
    const reports: Array<[number, string]> = [];
    const { summary } = await summarizeFile(user, projectId, path, { privacy: 'allow-api', progress: { report: (f, m) => reports.push([f, m]) } });
    assert.equal(summary, 'summary of src/math.ts');
    assert.equal(reports.at(-1)![0], 1);
    const comments = await commentSelection(user, projectId, path, { start: 1, end: 2 }, { privacy: 'allow-api' });
    assert.deepEqual(
      comments.map((c) => c.line),
      [2, 1],
      'bottom first, for inserting',
    );
    assert.throws(() => projectPath(workspace, join(root, 'secret.txt')), /not inside the workspace/);
  });

  it('builds a preview and ends with a link that downloads the bundle', async () => {
    const projectId = await projectFor(user, workspace, 'my-app');
    const stages: string[] = [];
    const built = await buildPreview(user, projectId, 'web', { progress: { report: (_f, m) => stages.push(m) } });
    assert.equal(built.builder, 'static');
    assert.ok(stages.length > 0);
    const res = await fetch(built.downloadUrl);
    assert.equal(res.status, 200);
    assert.equal(Buffer.from(await res.arrayBuffer()).length, built.size);
  });
});
