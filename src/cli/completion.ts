import type { Command } from 'commander';

export const SHELLS = ['bash', 'zsh'] as const;
export type Shell = (typeof SHELLS)[number];

/** A shell word: only the characters of commands and option flags, anything else refused. */
function word(text: string): string {
  if (!/^[A-Za-z0-9-]+$/.test(text)) throw new Error(`cannot complete ${JSON.stringify(text)}`);
  return text;
}

/** Every visible flag of a command (long and short), and those that take a value. */
function flags(cmd: Command): { all: string[]; withValue: string[] } {
  const visible = cmd.options.filter((o) => !o.hidden);
  const names = (o: (typeof visible)[number]) => [o.long, o.short].filter((f): f is string => !!f).map(word);
  return {
    all: [...visible.flatMap(names), '--help'],
    withValue: visible.filter((o) => o.required).flatMap(names),
  };
}

/** Options that may come before the command (common.ts's commandFirst), with their value. */
const GLOBAL_WITH_VALUE = ['-c', '--config', '-i', '--ipc-file', '--ipc'];

/**
 * The bash completion function, made from the program itself so it never misses a command or
 * an option: the first word that is not a global option (nor its value) is the command; before
 * it the commands are offered, after it that command's options; the value of an option that
 * takes one is completed as a file name (options differ by command: `-s` is `--script` for
 * `daemon` but `--suspended` for `restart`).
 */
function bashFunction(program: Command): string {
  const commands = program.commands.map((c) => word(c.name()));
  const cases = program.commands.map((c) => {
    const f = flags(c);
    const args = c.name() === 'completion' ? ` ${SHELLS.join(' ')}` : '';
    return `    ${word(c.name())}) words="${f.all.join(' ')}${args}" values="${f.withValue.join(' ')}" ;;`;
  });
  const global = GLOBAL_WITH_VALUE.join(' ');
  return `_nodesockd() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="" cmd="" words="" values="" i
  [ "$COMP_CWORD" -gt 0 ] && prev="\${COMP_WORDS[COMP_CWORD-1]}"
  COMPREPLY=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in
      ${GLOBAL_WITH_VALUE.join('|')}) i=$((i + 1)) ;;
      -*) ;;
      *) cmd="\${COMP_WORDS[i]}"; break ;;
    esac
  done
  case "$cmd" in
    "") words="${commands.join(' ')} -c --config -i --ipc-file --debug --help --version" values="${global}" ;;
${cases.join('\n')}
  esac
  if [[ -n "$prev" && " $values " == *" $prev "* ]]; then
    COMPREPLY=($(compgen -f -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
  fi
}
complete -o default -F _nodesockd nodesockd`;
}

/** The completion script for `shell`: bash's function; zsh runs it through bashcompinit. */
export function completionScript(program: Command, shell: Shell): string {
  const install =
    shell === 'bash'
      ? `# nodesockd completion for bash. Load it in this shell: eval "$(nodesockd completion bash)";
# for every shell: nodesockd completion bash > /etc/bash_completion.d/nodesockd`
      : `# nodesockd completion for zsh. Load it in this shell: eval "$(nodesockd completion zsh)";
# for every shell, add that line to ~/.zshrc (after compinit).
autoload -U +X bashcompinit && bashcompinit`;
  return `${install}\n${bashFunction(program)}\n`;
}
