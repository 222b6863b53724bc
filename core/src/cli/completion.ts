import type { Command } from 'commander';

/** Every command path (`''`, `extensions`, `extensions list`) with the words that may follow it. */
function candidates(command: Command, path: string[] = [], out = new Map<string, string[]>()): Map<string, string[]> {
  const words = [
    ...command.commands.map((c) => c.name()),
    ...command.options
      .filter((o) => !(o as { hidden?: boolean }).hidden)
      .map((o) => o.long!)
      .filter(Boolean),
    '--help',
  ];
  out.set(path.join(' '), words);
  for (const sub of command.commands) candidates(sub, [...path, sub.name()], out);
  return out;
}

/** A completion script for bash, or for zsh through its bash compatibility layer. */
export function completionScript(program: Command, shell: 'bash' | 'zsh'): string {
  const cases = [...candidates(program)].map(([path, words]) => `    "${path}") words="${words.join(' ')}" ;;`).join('\n');
  const bash = `# aion completion: eval "$(aion completion ${shell})"
_aion_complete() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" path="" i words
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in -*) ;; *) path="\${path:+$path }\${COMP_WORDS[i]}" ;; esac
  done
  case "$path" in
${cases}
    *) words="" ;;
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _aion_complete aion
`;
  return shell === 'bash' ? bash : `autoload -U +X bashcompinit && bashcompinit\n${bash}`;
}
