/**
 * The share of virsh's commands the virtplane CLI offers, by virsh's own groups (`virsh help`).
 * Run: node --import tsx scripts/virsh-coverage.ts [--markdown]
 * Needs virsh (libvirt-clients) for its command list; virtplane's comes from the CLI's program.
 */
import { execFileSync } from 'node:child_process';
import { buildProgram } from '../cli/main.ts';

/** virsh's groups as `virsh help` prints them: " Domain Management (help keyword 'domain'):" then indented commands. */
export const virshGroups = (help: string): Map<string, string[]> => {
  const groups = new Map<string, string[]>();
  let current: string[] | null = null;
  for (const line of help.split('\n')) {
    const head = line.match(/^ (\S.*) \(help keyword '[^']+'\):$/);
    if (head) {
      current = [];
      groups.set(head[1]!, current);
      continue;
    }
    const cmd = line.match(/^ {4}(\S+)\s/);
    if (cmd && current) current.push(cmd[1]!);
  }
  return groups;
};

/** Groups about virsh the program rather than what it manages. */
const LEFT_OUT = new Set(['Virsh itself']);

const main = () => {
  const help = execFileSync('virsh', ['help'], { encoding: 'utf8' });
  const ours = new Set(buildProgram().commands.map((c) => c.name()));
  const rows: Array<[string, number, number, string[]]> = [];
  for (const [group, commands] of virshGroups(help)) {
    if (LEFT_OUT.has(group)) continue;
    const offered = commands.filter((c) => ours.has(c));
    rows.push([group, offered.length, commands.length, offered]);
  }
  const offered = rows.reduce((n, r) => n + r[1], 0);
  const total = rows.reduce((n, r) => n + r[2], 0);
  const pct = (a: number, b: number) => `${b ? Math.round((100 * a) / b) : 0}%`;
  if (process.argv.includes('--markdown')) {
    console.log('| virsh group | offered | of | share |\n|---|---|---|---|');
    for (const [g, a, b] of rows) console.log(`| ${g} | ${a} | ${b} | ${pct(a, b)} |`);
    console.log(`| **all** | **${offered}** | **${total}** | **${pct(offered, total)}** |`);
  } else {
    for (const [g, a, b, names] of rows) console.log(`${g.padEnd(22)} ${String(a).padStart(3)} / ${String(b).padEnd(3)} ${pct(a, b).padStart(4)}  ${names.join(' ')}`);
    console.log(`${'all'.padEnd(22)} ${String(offered).padStart(3)} / ${String(total).padEnd(3)} ${pct(offered, total).padStart(4)}`);
  }
};

main();
