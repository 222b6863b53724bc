/**
 * VS Code glue only: settings, the token in SecretStorage, commands, the chat webview and the status
 * bar. Everything else is in `./core` (no `vscode` import there), tested against a real hub.
 */
import { basename } from 'node:path';
import * as vscode from 'vscode';
import { AionClient, type DeviceConnection } from '@aion/client';
import { ChatConversation } from './core/chat.js';
import { buildPreview, commentSelection, projectFor, projectPath, suggestRenames, summarizeFile } from './core/documents.js';
import { startWorkspaceDevice, statusText } from './core/workspaceDevice.js';
import type { WorkspaceSkillId } from './core/workspaceSkills.js';

const TOKEN_KEY = 'aion.hubToken';
const DEVICE_TOKEN_KEY = 'aion.deviceToken';

type Privacy = 'local-only' | 'hybrid' | 'allow-api';

export function activate(context: vscode.ExtensionContext): void {
  const output = vscode.window.createOutputChannel('Aion');
  const status = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 100);
  status.show();
  let device: DeviceConnection | undefined;
  let client: AionClient | undefined;
  const settings = () => vscode.workspace.getConfiguration('aion');
  const folder = () => vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;

  const clientOf = async (): Promise<AionClient> => {
    if (client) return client;
    const token = await context.secrets.get(TOKEN_KEY);
    if (!token) throw new Error('set a hub token first: Aion: Set Hub Token');
    client = new AionClient({ baseUrl: settings().get<string>('hubUrl', 'http://127.0.0.1:8080'), apiKey: token });
    return client;
  };

  const refreshStatus = async () => {
    let reachable = false;
    try {
      await (await clientOf()).health.live();
      reachable = true;
    } catch {
      reachable = false;
    }
    const s = statusText(reachable, device?.state);
    status.text = s.text;
    status.tooltip = s.tooltip;
  };
  const timer = setInterval(() => void refreshStatus(), 15_000);
  context.subscriptions.push({ dispose: () => clearInterval(timer) }, output, status);

  /** Runs a command on the active file with a progress notification; errors become one message. */
  const onActiveFile =
    (
      title: string,
      run: (
        c: AionClient,
        projectId: string,
        path: string,
        editor: vscode.TextEditor,
        progress: vscode.Progress<{ message?: string; increment?: number }>,
      ) => Promise<void>,
    ) =>
    async () => {
      const editor = vscode.window.activeTextEditor;
      const root = folder();
      if (!editor || !root) return void vscode.window.showWarningMessage('Open a file of the workspace first.');
      try {
        const c = await clientOf();
        const projectId = await projectFor(c, root, basename(root));
        await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: false }, (progress) =>
          run(c, projectId, projectPath(root, editor.document.uri.fsPath), editor, progress),
        );
      } catch (err) {
        const e = err as Error & { code?: string };
        vscode.window.showErrorMessage(`${title}: ${e.code ? `${e.code}: ` : ''}${e.message}`);
      }
    };
  const reporter = (progress: vscode.Progress<{ message?: string; increment?: number }>) => {
    let last = 0;
    return {
      report: (fraction: number, message: string) => (progress.report({ message, increment: Math.max(0, (fraction - last) * 100) }), (last = fraction)),
    };
  };
  const privacy = () => settings().get<Privacy>('privacy', 'hybrid');

  context.subscriptions.push(
    vscode.commands.registerCommand('aion.signIn', async () => {
      const token = await vscode.window.showInputBox({ prompt: 'An Aion API key (aion_…)', password: true, ignoreFocusOut: true });
      if (!token) return;
      await context.secrets.store(TOKEN_KEY, token);
      client = undefined;
      await refreshStatus();
    }),
    vscode.commands.registerCommand(
      'aion.summarizeFile',
      onActiveFile('Aion: Summarize File', async (c, projectId, path, _editor, progress) => {
        const { summary, keyPoints } = await summarizeFile(c, projectId, path, { privacy: privacy(), progress: reporter(progress) });
        output.appendLine(`# ${path}\n${summary}\n${keyPoints.map((p) => `- ${p}`).join('\n')}\n`);
        output.show(true);
      }),
    ),
    vscode.commands.registerCommand(
      'aion.suggestRenames',
      onActiveFile('Aion: Suggest Renames', async (c, projectId, path, editor, progress) => {
        const symbol = editor.document.getText(editor.document.getWordRangeAtPosition(editor.selection.active)) || undefined;
        const suggestions = await suggestRenames(c, projectId, path, { symbol, privacy: privacy(), progress: reporter(progress) });
        const picked = await vscode.window.showQuickPick(suggestions.map((s) => ({ label: `${s.from} → ${s.to}`, detail: s.reason, suggestion: s })));
        if (picked) await vscode.commands.executeCommand('editor.action.rename', editor.document.uri, editor.selection.active, picked.suggestion.to);
      }),
    ),
    vscode.commands.registerCommand(
      'aion.commentSelection',
      onActiveFile('Aion: Comment Selection', async (c, projectId, path, editor, progress) => {
        const lines = { start: editor.selection.start.line + 1, end: editor.selection.end.line + 1 };
        const comments = await commentSelection(c, projectId, path, lines, { privacy: privacy(), progress: reporter(progress) });
        await editor.edit((edit) => {
          for (const { line, comment } of comments) {
            const at = editor.document.lineAt(line - 1);
            edit.insert(at.range.start, `${at.text.slice(0, at.firstNonWhitespaceCharacterIndex)}// ${comment}\n`);
          }
        });
      }),
    ),
    vscode.commands.registerCommand(
      'aion.buildPreview',
      onActiveFile('Aion: Build Preview', async (c, projectId, _path, _editor, progress) => {
        const platform = settings().get<'web' | 'ios' | 'android'>('previewPlatform', 'web');
        const built = await buildPreview(c, projectId, platform, { progress: reporter(progress) });
        const open = await vscode.window.showInformationMessage(`Preview built (${built.builder ?? platform}, ${built.size} bytes).`, 'Download bundle');
        if (open) await vscode.env.openExternal(vscode.Uri.parse(built.downloadUrl));
      }),
    ),
    vscode.commands.registerCommand('aion.connectDevice', async () => {
      const root = folder();
      if (!root) return void vscode.window.showWarningMessage('Open a folder to expose it.');
      let token = await context.secrets.get(DEVICE_TOKEN_KEY);
      if (!token) {
        token = await vscode.window.showInputBox({ prompt: 'The device token from "aion devices add <name>"', password: true, ignoreFocusOut: true });
        if (!token) return;
        await context.secrets.store(DEVICE_TOKEN_KEY, token);
      }
      device?.stop();
      const name = settings().get<string>('device.name') || basename(root);
      device = startWorkspaceDevice({
        hubUrl: settings().get<string>('hubUrl', 'http://127.0.0.1:8080'),
        token,
        name,
        folder: root,
        skills: settings().get<WorkspaceSkillId[]>('device.skills', []),
        logger: { info: (m) => output.appendLine(m), warn: (m) => output.appendLine(m), error: (m) => output.appendLine(m) },
        onState: () => void refreshStatus(),
      }).connection;
    }),
    vscode.commands.registerCommand('aion.disconnectDevice', () => {
      device?.stop();
      device = undefined;
      void refreshStatus();
    }),
    vscode.window.registerWebviewViewProvider('aion.chat', new ChatViewProvider(clientOf, privacy)),
    { dispose: () => device?.stop() },
  );
  if (settings().get<boolean>('device.enabled')) void vscode.commands.executeCommand('aion.connectDevice');
  void refreshStatus();
}

export function deactivate(): void {}

/** The chat panel: a text box, the conversation, answers streamed in as they arrive. */
class ChatViewProvider implements vscode.WebviewViewProvider {
  private conversation?: ChatConversation;

  constructor(
    private readonly clientOf: () => Promise<AionClient>,
    private readonly privacy: () => Privacy,
  ) {}

  resolveWebviewView(view: vscode.WebviewView): void {
    view.webview.options = { enableScripts: true };
    view.webview.html = CHAT_HTML;
    view.webview.onDidReceiveMessage(async (message: { type: string; text?: string }) => {
      if (message.type !== 'send' || !message.text) return;
      try {
        const client = await this.clientOf();
        this.conversation ??= await ChatConversation.start(client, { privacy: this.privacy() });
        void view.webview.postMessage({ type: 'user', text: message.text });
        await this.conversation.send(message.text, (token) => void view.webview.postMessage({ type: 'token', text: token }));
        void view.webview.postMessage({ type: 'done' });
      } catch (err) {
        void view.webview.postMessage({ type: 'error', text: (err as Error).message });
      }
    });
  }
}

const CHAT_HTML = `<!DOCTYPE html><html><body>
<div id="log" style="white-space:pre-wrap"></div>
<form id="f"><input id="q" style="width:100%" placeholder="Ask the hub…"/></form>
<script>
const vscode = acquireVsCodeApi(); const log = document.getElementById('log'); let answer;
document.getElementById('f').onsubmit = (e) => { e.preventDefault(); const q = document.getElementById('q'); vscode.postMessage({ type: 'send', text: q.value }); q.value = ''; };
window.addEventListener('message', ({ data }) => {
  if (data.type === 'user') { const p = document.createElement('p'); p.textContent = '> ' + data.text; log.append(p); answer = document.createElement('p'); log.append(answer); }
  if (data.type === 'token' && answer) answer.textContent += data.text;
  if (data.type === 'error') { const p = document.createElement('p'); p.textContent = 'error: ' + data.text; log.append(p); }
});
</script></body></html>`;
