import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { main } from '../cli/main.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

/**
 * The same scripts through libvirt's `virsh -c test:///default` and through `virtplane` on a real
 * stack, on test-driver domains: for every state a domain can be in and every ordered pair of
 * lifecycle commands sent back to back, both must agree on each command's success, the class of its
 * error (libvirt's error-number text, or virsh's own words), and the state and persistence left.
 */

const run = promisify(execFile);
const OPS = ['start', 'shutdown', 'destroy', 'suspend', 'resume', 'reboot', 'undefine', 'reset', 'managedsave', 'managedsave-remove', 'snapshot-revert'] as const;
type Op = (typeof OPS)[number];
/** Commands that only set a state up. */
type SetupOp = Op | 'snapshot-create-as';
/** Each command as typed: snapshot-revert goes back to the current snapshot, snapshot-create-as takes 's1'. */
const commandOf = (o: SetupOp, name: string): string[] =>
  o === 'snapshot-revert' ? [o, name, '--current'] : o === 'snapshot-create-as' ? [o, name, 's1'] : [o, name];
/** How each state is reached: the domain is defined (or, with `create`, created transient), then these commands. */
interface Setup {
  first: 'define' | 'create';
  ops: SetupOp[];
}
const SETUP: Record<string, Setup> = {
  'shut off': { first: 'define', ops: [] },
  running: { first: 'define', ops: ['start'] },
  paused: { first: 'define', ops: ['start', 'suspend'] },
  'running, undefined': { first: 'define', ops: ['start', 'undefine'] },
  'paused, undefined': { first: 'define', ops: ['start', 'suspend', 'undefine'] },
  'created transient': { first: 'create', ops: [] },
  'created transient, paused': { first: 'create', ops: ['suspend'] },
  'managed-saved': { first: 'define', ops: ['start', 'managedsave'] },
  'managed-saved from paused': { first: 'define', ops: ['start', 'suspend', 'managedsave'] },
  'snapshotted while running': { first: 'define', ops: ['start', 'snapshot-create-as'] },
};

interface Step {
  ok: boolean;
  /** libvirt's error-number text ("Requested operation is not valid") or virsh's words, names blanked. */
  errorClass: string | null;
  text: string;
}
interface Outcome {
  steps: Step[];
  /** What dominfo says afterwards: "running, persistent yes, managed save no", or "gone". */
  after: string;
}

const domainXml = (name: string) =>
  `<domain type='test'><name>${name}</name><memory unit='KiB'>8192</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>\n`;

const errorClass = (lines: string[]): string | null => {
  const errors = lines.filter((l) => l.startsWith('error: '));
  if (errors.length === 0) return null;
  const last = errors.at(-1)!.slice('error: '.length).replace(/ \[[a-z-]+\]$/, '');
  const colon = last.indexOf(': ');
  return (colon > 0 ? last.slice(0, colon) : last).replace(/'[^']*'/g, "'X'");
};

const afterFrom = (lines: string[]): string => {
  if (lines.some((l) => l.startsWith('error: '))) return 'gone';
  const field = (k: string) => lines.find((l) => l.startsWith(`${k}:`))?.slice(16).trim() ?? '?';
  return `${field('State')}, persistent ${field('Persistent')}, managed save ${field('Managed save')}`;
};

/**
 * Runs one virsh script. virsh 9.0's managedsave now and then never returns against the test driver
 * (the save is over before virsh starts watching its job, and the watch waits on): a script that has
 * not finished in a few seconds, where it takes a tenth of one, is run again from the start.
 */
const virshScript = async (script: string, quiet: boolean): Promise<string> => {
  for (let attempt = 0; ; attempt++) {
    const { stdout } = await run('sh', ['-c', `timeout 5 virsh ${quiet ? '-q ' : ''}-c test:///default "${script}" 2>&1; echo "@@rc=$?"`]);
    const rc = /@@rc=(\d+)\n?$/.exec(stdout)?.[1];
    if (rc !== '124') return stdout.replace(/@@rc=\d+\n?$/, '');
    if (attempt >= 8) throw new Error(`virsh did not finish the script in ${attempt + 1} tries: ${script}`);
  }
};

/** One virsh process per case: test:///default lives as long as the connection. */
const viaVirsh = async (dir: string, name: string, { first, ops: setup }: Setup, pair: [Op, Op]): Promise<Outcome> => {
  const file = join(dir, `${name}.xml`);
  await writeFile(file, domainXml(name));
  const commands = [`${first} ${file}`, ...setup.map((o) => commandOf(o, name).join(' ')), ...pair.map((o) => commandOf(o, name).join(' ')), `dominfo ${name}`];
  const script = commands.map((c, i) => `${c}; echo @@${i}`).join('; ');
  // One stream for both, so each error stays beside the command that printed it.
  const stdout = await virshScript(script, true);
  const segments: string[][] = [];
  let current: string[] = [];
  // Quiet virsh ends echo's output without a newline: put each marker on a line of its own.
  for (const line of stdout.replace(/@@(\d+)/g, '\n@@$1\n').split('\n')) {
    if (/^@@\d+$/.test(line)) {
      segments.push(current);
      current = [];
    } else if (line.trim()) current.push(line);
  }
  if (segments.length !== commands.length) throw new Error(`virsh output did not split into ${commands.length} parts:\n${stdout}`);
  const steps = segments.slice(1 + setup.length, 1 + setup.length + 2).map((lines) => ({ ok: errorClass(lines) === null, errorClass: errorClass(lines), text: lines.join(' / ') }));
  return { steps, after: afterFrom(segments.at(-1)!) };
};

/** The virtplane CLI itself, in this process, its output captured. */
const cli = async (...args: string[]): Promise<{ code: number; out: string[]; err: string[] }> => {
  const out: string[] = [];
  const err: string[] = [];
  const realOut = process.stdout.write.bind(process.stdout);
  const realErr = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((chunk: string | Uint8Array) => (out.push(String(chunk)), true)) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => (err.push(String(chunk)), true)) as typeof process.stderr.write;
  let code: number;
  try {
    code = await main(['node', 'virtplane', ...args]);
  } finally {
    process.stdout.write = realOut;
    process.stderr.write = realErr;
  }
  const lines = (parts: string[]) => parts.join('').split('\n').filter((l) => l.trim());
  return { code, out: lines(out), err: lines(err) };
};

const viaVirtplane = async (dir: string, name: string, { first, ops: setup }: Setup, pair: [Op, Op]): Promise<Outcome> => {
  const file = join(dir, `${name}.vp.xml`);
  await writeFile(file, domainXml(name));
  const defined = await cli(first, file);
  if (defined.code !== 0) throw new Error(`${first} ${name}: ${defined.err.join(' / ')}`);
  for (const o of setup) {
    const r = await cli(...commandOf(o, name));
    if (r.code !== 0) throw new Error(`setup ${o} ${name}: ${r.err.join(' / ')}`);
  }
  const steps: Step[] = [];
  for (const o of pair) {
    const r = await cli(...commandOf(o, name));
    const cls = errorClass(r.err);
    steps.push({ ok: r.code === 0, errorClass: r.code === 0 ? null : (cls ?? 'unclassified'), text: [...r.out, ...r.err].join(' / ') });
  }
  const info = await cli('dominfo', name);
  return { steps, after: afterFrom([...info.out, ...info.err]) };
};

const summary = (o: Outcome) =>
  `${o.steps.map((s) => (s.ok ? 'ok' : `fail(${s.errorClass})`)).join(' -> ')} => ${o.after}`;

describe('virtplane against virsh -c test:///default', () => {
  let stack: Stack;
  let dir: string;
  const savedUrl = process.env.VIRTPLANE_NATS_URL;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'virsh-diff-'));
    // Saved images go where virsh writes them too, so one script serves both.
    stack = await startStack({ env: { VIRTPLANE_SAVE_DIRS: dir } });
    process.env.VIRTPLANE_NATS_URL = stack.nats.url;
  });
  afterAll(async () => {
    if (savedUrl === undefined) delete process.env.VIRTPLANE_NATS_URL;
    else process.env.VIRTPLANE_NATS_URL = savedUrl;
    await stack?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** One script through one virsh process and through the CLI command by command: the same lines each. */
  const sameAsVirsh = async (commands: string[]) => {
    const script = commands.map((c, i) => `${c}; echo @@${i}`).join('; ');
    const stdout = await virshScript(script, false);
    const expected = stdout
      .replace(/@@(\d+)/g, '\n@@$1\n')
      .split(/\n@@\d+\n/)
      .slice(0, commands.length)
      .map((seg) => seg.split('\n').filter((l) => l.trim()));
    const got: string[][] = [];
    for (const c of commands) {
      const args = c.split(' ').map((a) => (a === "''" ? '' : a));
      const r = await cli(...args);
      got.push([...r.out, ...r.err].map((l) => l.replace(/ \[[a-z-]+\]$/, '')));
    }
    expect(got).toEqual(expected);
  };

  const xmlFile = async (name: string) => {
    const file = join(dir, `${name}.xml`);
    await writeFile(file, domainXml(name));
    return file;
  };

  it('desc shows and sets descriptions and titles on the live and persistent definitions as virsh does', { timeout: 120_000 }, async () => {
    const name = 'desc-dom';
    await sameAsVirsh([
      `define ${await xmlFile(name)}`,
      `desc ${name}`,
      `desc ${name} --new-desc hello`,
      `desc ${name}`,
      `desc ${name} --title --new-desc T1`,
      `desc ${name} --title`,
      `desc ${name} --live --new-desc nope`,
      `start ${name}`,
      `desc ${name} --new-desc live`,
      `desc ${name}`,
      `desc ${name} --config`,
      `desc ${name} --config --new-desc cfg`,
      `desc ${name} --config`,
      `desc ${name}`,
      `destroy ${name}`,
      `desc ${name}`,
      `desc ${name} --new-desc ''`,
      `desc ${name}`,
    ]);
  });

  it('domrename renames a shut off persistent domain and frees its old name, refusing as virsh does', { timeout: 120_000 }, async () => {
    const [a, b] = ['ren-a', 'ren-b'];
    const fileA = await xmlFile(a);
    await sameAsVirsh([
      `define ${fileA}`,
      `define ${await xmlFile(b)}`,
      `domrename ${a} ${b}`,
      `domrename ${a} ${a}`,
      `start ${a}`,
      `domrename ${a} ren-c`,
      `destroy ${a}`,
      `domrename ${a} ren-c`,
      `domstate ren-c`,
      `domstate ${a}`,
      `define ${fileA}`,
      `domstate ${a}`,
      `create ${await xmlFile('ren-t')}`,
      `domrename ren-t ren-u`,
    ]);
  });

  it('autostart marks and unmarks a domain, on a transient one too, and list filters by it, as virsh does', { timeout: 120_000 }, async () => {
    const name = 'auto-dom';
    await sameAsVirsh([
      `autostart nosuch`,
      `define ${await xmlFile(name)}`,
      `list --all --autostart --name`,
      `autostart ${name}`,
      `autostart ${name}`,
      `list --all --autostart --name`,
      `list --all --no-autostart --name --with-managed-save`,
      `autostart ${name} --disable`,
      `list --all --autostart --name`,
      `create ${await xmlFile('auto-t')}`,
      `autostart auto-t`,
      `list --autostart --name`,
      `destroy auto-t`,
      `autostart auto-t`,
    ]);
  });

  it('reset, managedsave and managedsave-remove say and refuse what virsh says', { timeout: 120_000 }, async () => {
    const name = 'save-dom';
    await sameAsVirsh([
      `define ${await xmlFile(name)}`,
      `reset ${name}`,
      `managedsave ${name}`,
      `managedsave-remove ${name}`,
      `start ${name}`,
      `reset ${name}`,
      `domstate ${name} --reason`,
      `suspend ${name}`,
      `reset ${name}`,
      `domstate ${name} --reason`,
      `managedsave ${name}`,
      `domstate ${name} --reason`,
      `list --all --with-managed-save --name`,
      `list --all --managed-save --with-managed-save`,
      `list --all --no-autostart --with-managed-save --name`,
      `undefine ${name}`,
      `start ${name}`,
      `domstate ${name} --reason`,
      `managedsave ${name}`,
      `managedsave-remove ${name}`,
      `managedsave-remove ${name}`,
      `list --all --with-managed-save --name`,
      `start ${name}`,
      `managedsave ${name}`,
      `undefine ${name} --managed-save`,
      `domstate ${name}`,
      `reset nosuch`,
      `managedsave nosuch`,
      `managedsave-remove nosuch`,
      `create ${await xmlFile('save-t')}`,
      `managedsave save-t`,
      `reset save-t`,
      `destroy save-t`,
    ]);
  });

  it('send-key, inject-nmi and blockresize say and refuse what virsh says', { timeout: 120_000 }, async () => {
    const name = 'keys-dom';
    await sameAsVirsh([
      `define ${await xmlFile(name)}`,
      `send-key ${name} KEY_A`,
      `inject-nmi ${name}`,
      `blockresize ${name} vda 10M`,
      `start ${name}`,
      `send-key ${name} KEY_LEFTCTRL KEY_LEFTALT KEY_DELETE`,
      `send-key ${name} --codeset qnum --holdtime 50 0x1e 0xc8`,
      `send-key ${name} --codeset xt 0xe048`,
      `send-key ${name} --codeset linux 1000`,
      `send-key ${name} --codeset xt_kbd 0xe05b`,
      `send-key ${name} KEY_FOO`,
      `send-key ${name} --codeset xt KEY_A`,
      `send-key ${name} --codeset foo 30`,
      `send-key ${name} KEY_A KEY_B KEY_C KEY_D KEY_E KEY_F KEY_G KEY_H KEY_I KEY_J KEY_K KEY_L KEY_M KEY_N KEY_O KEY_P KEY_Q`,
      `inject-nmi ${name}`,
      `blockresize ${name} vda 10M`,
      `suspend ${name}`,
      `send-key ${name} KEY_A`,
      `inject-nmi ${name}`,
      `domstate ${name} --reason`,
      `send-key nosuch KEY_A`,
      `inject-nmi nosuch`,
      `destroy ${name}`,
    ]);
  });

  it('save, restore and their refusals say what virsh says; a saved transient domain comes back transient', { timeout: 120_000 }, async () => {
    const name = 'sr-dom';
    const img = join(dir, 'sr-dom.sav');
    const img2 = join(dir, 'sr-t.sav');
    await sameAsVirsh([
      `define ${await xmlFile(name)}`,
      `save ${name} ${img}`,
      `start ${name}`,
      `save ${name} ${img}`,
      `domstate ${name} --reason`,
      `save ${name} ${img}`,
      `restore ${img}`,
      `domstate ${name} --reason`,
      `restore ${img}`,
      `suspend ${name}`,
      `save ${name} ${img}`,
      `restore ${img} --paused`,
      `restore ${img} --running`,
      `restore ${img}`,
      `domstate ${name} --reason`,
      `save ${name} ${img}`,
      `undefine ${name}`,
      `restore ${img}`,
      // Transient: managedsave refuses it (and other tests' domains do not show).
      `managedsave ${name}`,
      `destroy ${name}`,
      `domstate ${name}`,
      `create ${await xmlFile('sr-t')}`,
      `save sr-t ${img2}`,
      `domstate sr-t`,
      `restore ${img2}`,
      `managedsave sr-t`,
      `destroy sr-t`,
      `save nosuch ${img}`,
      `restore ${join(dir, 'nosuch.sav')}`,
    ]);
  });

  it('metadata sets, shows and removes application elements by namespace, live and persistent, as virsh does', { timeout: 120_000 }, async () => {
    const name = 'md-dom';
    await sameAsVirsh([
      `define ${await xmlFile(name)}`,
      `metadata ${name} --uri http://example.org/a`,
      `metadata ${name} --uri http://example.org/a --key app --set <foo/>`,
      `metadata ${name} --uri http://example.org/a`,
      `metadata ${name} --uri http://example.org/b --key bb --set <bar>text</bar>`,
      `metadata ${name} http://example.org/b`,
      `metadata ${name} --uri http://example.org/a --key app2 --set <foo><inner/></foo>`,
      `metadata ${name} --uri http://example.org/a`,
      `metadata ${name} --uri http://example.org/a --set <x/>`,
      `start ${name}`,
      `metadata ${name} --uri http://example.org/c --key c --set <live/> --live`,
      `metadata ${name} --uri http://example.org/c`,
      `metadata ${name} --uri http://example.org/c --config`,
      `metadata ${name} --uri http://example.org/d --key d --set <conf/> --config`,
      `metadata ${name} --uri http://example.org/d`,
      `metadata ${name} --uri http://example.org/d --config`,
      `metadata ${name} --uri http://example.org/b --remove`,
      `metadata ${name} --uri http://example.org/b`,
      `destroy ${name}`,
      `metadata ${name} --uri http://example.org/d`,
      `metadata ${name} --uri http://example.org/c`,
      `metadata nosuch --uri http://example.org/a`,
    ]);
  });

  it('every ordered pair of lifecycle commands from every state, back to back, ends the same', { timeout: 1_200_000 }, async () => {
    const mismatches: string[] = [];
    const transitions = new Map<string, boolean>();
    let n = 0;
    for (const [state, setup] of Object.entries(SETUP)) {
      for (const a of OPS) {
        for (const b of OPS) {
          const name = `vd${n++}`;
          const [expected, got] = await Promise.all([viaVirsh(dir, name, setup, [a, b]), viaVirtplane(dir, name, setup, [a, b])]);
          const same = summary(expected) === summary(got);
          transitions.set(`${state}: ${a}, ${b}`, same);
          if (process.env.VIRSH_DIFF_DUMP) await writeFile(process.env.VIRSH_DIFF_DUMP, `${state}: ${a}; ${b}: ${summary(expected)} | ${summary(got)}\n`, { flag: 'a' });
          if (!same) {
            mismatches.push(
              `${state}: ${a}; ${b}\n  virsh:     ${summary(expected)}   [${expected.steps.map((s) => s.text).join(' | ')}]\n  virtplane: ${summary(got)}   [${got.steps.map((s) => s.text).join(' | ')}]`,
            );
          }
        }
      }
    }
    const matching = [...transitions.values()].filter(Boolean).length;
    process.stdout.write(`virsh differential: ${matching} of ${transitions.size} command pairs match\n`);
    expect(mismatches, mismatches.join('\n')).toEqual([]);
    expect(transitions.size).toBe(Object.keys(SETUP).length * OPS.length * OPS.length);
  });
});
