/** The chat view's logic: one hub session per conversation, answers streamed, history kept on the hub. */
import type { AionClient, SessionMessage } from '@aion/client';

export interface ChatTurn {
  role: 'user' | 'assistant';
  content: string;
}

const textOf = (content: unknown) => (typeof content === 'string' ? content : JSON.stringify(content));

export class ChatConversation {
  private turns: ChatTurn[] = [];

  private constructor(
    private readonly client: AionClient,
    readonly sessionId: string,
    private readonly privacy: 'local-only' | 'hybrid' | 'allow-api',
  ) {}

  /** A new conversation, stored as a session on the hub. */
  static async start(client: AionClient, options: { title?: string; privacy?: 'local-only' | 'hybrid' | 'allow-api' } = {}): Promise<ChatConversation> {
    const session = await client.sessions.create({ title: options.title ?? 'VS Code chat', metadata: { source: 'vscode' } });
    return new ChatConversation(client, session.id, options.privacy ?? 'hybrid');
  }

  /** An earlier conversation, with its messages as the hub has them (synced from any device). */
  static async resume(client: AionClient, sessionId: string, options: { privacy?: 'local-only' | 'hybrid' | 'allow-api' } = {}): Promise<ChatConversation> {
    const conversation = new ChatConversation(client, sessionId, options.privacy ?? 'hybrid');
    await conversation.refresh();
    return conversation;
  }

  /** The user's recent conversations, newest first. */
  static async recent(client: AionClient, limit = 20): Promise<Array<{ id: string; title: string | null; messages: number; updatedAt: number }>> {
    const { sessions } = await client.sessions.list({ limit });
    return sessions.map((s) => ({ id: s.id, title: s.title, messages: s.message_count, updatedAt: s.updated_at }));
  }

  get history(): readonly ChatTurn[] {
    return this.turns;
  }

  /** Re-reads the messages from the hub (another device may have added some). */
  async refresh(): Promise<void> {
    const session = await this.client.sessions.get(this.sessionId, { limit: 200 });
    this.turns = session.messages
      .filter((m: SessionMessage) => m.role === 'user' || m.role === 'assistant')
      .map((m: SessionMessage) => ({ role: m.role as ChatTurn['role'], content: textOf(m.content) }));
  }

  /**
   * Sends the user's message and streams the answer to `onToken`; both are appended to the session.
   * Aborting `signal` cancels the task on the hub.
   */
  async send(text: string, onToken: (text: string) => void, signal?: AbortSignal): Promise<string> {
    await this.client.sessions.append(this.sessionId, { role: 'user', content: text }, { signal });
    this.turns.push({ role: 'user', content: text });
    const task = await this.client.tasks.run(
      {
        intent: 'chat',
        messages: this.turns.map((t) => ({ role: t.role, content: t.content })),
        privacy: this.privacy,
        metadata: { session_id: this.sessionId },
      },
      { onToken, signal },
    );
    if (task.status !== 'OK' || !task.result)
      throw Object.assign(new Error(task.error?.message ?? `the answer ${task.status}`), { code: task.error?.code ?? 'TASK_FAILED' });
    const answer = task.result.text;
    await this.client.sessions.append(this.sessionId, { role: 'assistant', content: answer, metadata: { engine: task.engine?.model ?? null } }, { signal });
    this.turns.push({ role: 'assistant', content: answer });
    return answer;
  }
}
