import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { JSONRPCMessageSchema, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { AsyncQueue } from '@aion/extension-api';

/**
 * An MCP transport over the lines of a stdio command: each stdin line is one JSON-RPC message,
 * each message sent is one stdout line. The connection ends when stdin ends.
 */
export class LineTransport implements Transport {
  readonly output = new AsyncQueue<string>({ onReturn: () => void this.close() });
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  private closed = false;
  /** Requests read but not yet answered: stdin may end before the last answers are written. */
  private readonly pending = new Set<string | number>();
  private drained?: () => void;

  constructor(private readonly lines: AsyncIterable<string>) {}

  async start(): Promise<void> {
    void this.read();
  }

  async send(message: JSONRPCMessage): Promise<void> {
    if (this.closed) return;
    this.output.push(JSON.stringify(message));
    if ('id' in message && !('method' in message) && message.id !== undefined && message.id !== null) {
      this.pending.delete(message.id);
      if (this.pending.size === 0) this.drained?.();
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.output.end();
    this.onclose?.();
  }

  private async read(): Promise<void> {
    try {
      for await (const line of this.lines) {
        if (this.closed) break;
        if (!line.trim()) continue;
        let message: JSONRPCMessage;
        try {
          message = JSONRPCMessageSchema.parse(JSON.parse(line));
        } catch (err) {
          this.onerror?.(new Error(`not a JSON-RPC message: ${(err as Error).message}`));
          this.output.push(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } }));
          continue;
        }
        if ('method' in message && 'id' in message) this.pending.add(message.id);
        this.onmessage?.(message);
      }
    } catch (err) {
      this.onerror?.(err as Error);
    } finally {
      if (this.pending.size > 0) {
        await new Promise<void>((resolve) => {
          this.drained = resolve;
          setTimeout(resolve, 30_000).unref();
        });
      }
      await this.close();
    }
  }
}
