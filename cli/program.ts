import type { Command } from 'commander';
import pkg from '../package.json' with { type: 'json' };
import { UsageError } from './errors.ts';

const EXAMPLES = `
Examples:
  virtplane up                                         start the embedded default in the background
  virtplane define --name web1 --memory 512 --vcpus 2  define a domain (or: virtplane define dom.xml)
  virtplane start web1 && virtplane list --all
  virtplane -s nats://nats1:4222 --context ops host-list
  virtplane help start                                 one verb's options and examples
  source <(virtplane completion bash)                  completion (zsh: virtplane completion zsh)

Settings come from ~/.config/virtplane/config.json (or --settings), then VIRTPLANE_* variables, then
flags, each overriding the one before. Exit status: 0 success, 1 error, 2 bad usage.`;

/** What every invocation shares: the version, examples, and usage mistakes that exit 2 with one hint. */
export const setUpProgram = (program: Command): void => {
  program
    .version(pkg.version, '-v, --version', 'print the version')
    .helpOption('-h, --help', 'show help (also: virtplane help <verb>)')
    .addHelpText('after', EXAMPLES)
    .showHelpAfterError('(`virtplane help` lists the verbs, `virtplane help <verb>` shows one)')
    // Commander would exit by itself; thrown, its errors become exit status 2 in main().
    .exitOverride();
};

const VERB_EXAMPLES: Record<string, string> = {
  define: 'virtplane define --name web1 --memory 512 --vcpus 2\n  virtplane define guest.xml\n  virtplane define dom.json --host host-a',
  start: 'virtplane start web1\n  virtplane start web1 --paused --timeout 30',
  list: 'virtplane list\n  virtplane list --all --state shutoff --json',
  event: 'virtplane event --loop\n  virtplane event --domain web1 --all --timeout 10',
  shutdown: 'virtplane shutdown web1 --wait',
  destroy: 'virtplane destroy web1\n  virtplane destroy web1 --force   # its host is lost and known to be off',
  save: 'virtplane save web1 /var/lib/virtplane/save/web1.sav   # inside the host\'s image directories',
  restore: 'virtplane restore /var/lib/virtplane/save/web1.sav\n  virtplane restore /var/lib/virtplane/save/web1.sav --host host-a --paused',
  validate: 'virtplane validate *.xml\n  virtplane validate --format guest.xml',
  'attach-disk': 'virtplane attach-disk web1 /var/tmp/data.img vdb\n  virtplane attach-disk web1 /var/tmp/data.qcow2 vdc --subdriver qcow2 --persistent',
  'change-media': 'virtplane change-media web1 hdc /var/tmp/new.iso --update\n  virtplane change-media web1 hdc --eject',
};

/** Shell completion of verbs and their options, generated from the program itself so it never drifts. */
export const registerCompletion = (program: Command): void => {
  for (const c of program.commands) {
    const ex = VERB_EXAMPLES[c.name()];
    if (ex) c.addHelpText('after', `\nExamples:\n  ${ex}`);
  }
  program
    .command('completion')
    .description('print a completion script: bash or zsh')
    .argument('<shell>', 'bash or zsh')
    .addHelpText('after', '\nExamples:\n  source <(virtplane completion bash)\n  virtplane completion zsh > "${fpath[1]}/_virtplane"')
    .action((shell: string) => {
      if (shell !== 'bash' && shell !== 'zsh') throw new UsageError(`completion: no completion for '${shell}': give bash or zsh`);
      process.stdout.write(shell === 'bash' ? bashCompletion(program) : zshCompletion(program));
    });
};

const optionNames = (c: Command): string[] => c.options.flatMap((o) => [o.long, o.short].filter((f): f is string => Boolean(f)));

const verbs = (program: Command) => program.commands.filter((c) => c.name() !== 'completion').map((c) => ({ name: c.name(), description: c.description(), options: optionNames(c) }));

export const bashCompletion = (program: Command): string => {
  const vs = verbs(program);
  const cases = vs.map((v) => `    ${v.name}) opts="${v.options.join(' ')}" ;;`).join('\n');
  return `# bash completion for virtplane: source <(virtplane completion bash)
_virtplane() {
  local cur verb i opts
  cur="\${COMP_WORDS[COMP_CWORD]}"
  verb=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in -*) ;; *) verb="\${COMP_WORDS[i]}"; break ;; esac
  done
  if [[ -z "$verb" ]]; then
    if [[ "$cur" == -* ]]; then
      COMPREPLY=($(compgen -W "${optionNames(program).join(' ')}" -- "$cur"))
    else
      COMPREPLY=($(compgen -W "${vs.map((v) => v.name).join(' ')}" -- "$cur"))
    fi
    return
  fi
  case "$verb" in
${cases}
    help) COMPREPLY=($(compgen -W "${vs.map((v) => v.name).join(' ')}" -- "$cur")); return ;;
    completion) COMPREPLY=($(compgen -W "bash zsh" -- "$cur")); return ;;
    *) opts="" ;;
  esac
  if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W "$opts --help" -- "$cur")); else COMPREPLY=($(compgen -f -- "$cur")); fi
}
complete -F _virtplane virtplane
`;
};

export const zshCompletion = (program: Command): string => {
  const vs = verbs(program);
  const quote = (s: string) => s.replace(/[\\'"[\]:]/g, ' ');
  const cases = vs.map((v) => `    ${v.name}) _arguments '*:file:_files' ${v.options.map((o) => `'${o}'`).join(' ')} ;;`).join('\n');
  return `#compdef virtplane
# zsh completion for virtplane: virtplane completion zsh > "\${fpath[1]}/_virtplane"
_virtplane() {
  local -a verbs
  verbs=(
${vs.map((v) => `    '${v.name}:${quote(v.description)}'`).join('\n')}
  )
  if (( CURRENT == 2 )); then
    _describe 'virtplane verb' verbs
    return
  fi
  case "\${words[2]}" in
${cases}
    help) _describe 'virtplane verb' verbs ;;
    completion) _values 'shell' bash zsh ;;
  esac
}
if [[ "\${funcstack[1]}" == "_virtplane" ]]; then _virtplane "$@"; else compdef _virtplane virtplane; fi
`;
};
