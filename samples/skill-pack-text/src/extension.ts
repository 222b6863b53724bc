import * as aion from '@aion/extension-api';

export interface WrapArgs {
  text: string;
  width?: number;
  indent?: string;
}

/** Re-flows each paragraph into lines of at most `width` characters; a word longer than that gets a line of its own. */
export function wrap({ text, width = 72, indent = '' }: WrapArgs): { text: string; lines: number } {
  const room = Math.max(1, width - indent.length);
  const out: string[] = [];
  const paragraphs = text.split(/\n[ \t]*\n/);
  paragraphs.forEach((paragraph, i) => {
    if (i > 0) out.push('');
    let line = '';
    for (const word of paragraph.split(/\s+/).filter(Boolean)) {
      if (line && line.length + 1 + word.length > room) {
        out.push(indent + line);
        line = word;
      } else line = line ? `${line} ${word}` : word;
    }
    if (line) out.push(indent + line);
  });
  while (out.length && out[out.length - 1] === '') out.pop();
  return { text: out.join('\n'), lines: out.length };
}

/** The `js` skill of this pack: trusted code of this extension, run in its host when the gatekeeper lets a call through. */
export function activate(ctx: aion.ExtensionContext): void {
  ctx.subscriptions.push(aion.contributions.register('skills', 'text.wrap', { run: async (args: WrapArgs) => wrap(args) }));
}
