/** Text pushed by llama.cpp's callbacks, read as an async iterator by the chat stream. */
export class TokenChannel implements AsyncIterable<string> {
  private readonly buffered: string[] = [];
  private wake?: () => void;
  private finished = false;
  private failure: unknown;

  push(text: string): void {
    this.buffered.push(text);
    this.wake?.();
  }

  end(failure?: unknown): void {
    this.finished = true;
    this.failure = failure;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<string> {
    for (;;) {
      if (this.buffered.length > 0) {
        yield this.buffered.splice(0).join('');
        continue;
      }
      if (this.finished) {
        if (this.failure !== undefined) throw this.failure;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}
