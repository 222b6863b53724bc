import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A folder of stand-in vendor tools for a test; put it on PATH so detectors find them as they would the real ones. */
export class FakeTools {
  readonly dir = mkdtempSync(join(tmpdir(), 'aion-fake-tools-'));

  /** Writes an executable `/bin/sh` script named like the vendor tool; it runs with PATH holding only this folder, so it calls other programs by absolute path. */
  write(name: string, script: string): string {
    const path = join(this.dir, name);
    writeFileSync(path, `#!/bin/sh\n${script}\n`);
    chmodSync(path, 0o755);
    return path;
  }

  /** A tool that prints `text` exactly (quoted for the shell) and exits with `exitCode`. */
  printing(name: string, text: string, exitCode = 0): string {
    return this.write(name, `/bin/cat <<'AION_FIXTURE_EOF'\n${text}\nAION_FIXTURE_EOF\nexit ${exitCode}`);
  }

  /** Runs `fn` with PATH set to this folder only (plus what `extra` names), restoring PATH after. */
  async onPath<T>(fn: () => Promise<T>, extra: string[] = []): Promise<T> {
    const saved = process.env.PATH;
    process.env.PATH = [this.dir, ...extra].join(':');
    try {
      return await fn();
    } finally {
      process.env.PATH = saved;
    }
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Text for a heredoc: the fixture's own final newline is the heredoc's. */
export function heredoc(text: string): string {
  return text.endsWith('\n') ? text.slice(0, -1) : text;
}
