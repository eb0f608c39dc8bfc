import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLI, hasVirsh } from './fixtures/cli.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

const run = promisify(execFile);

const XML = `<domain type='test'><name>hr</name><memory unit='KiB'>100000</memory><vcpu current='2'>3</vcpu><os><type>hvm</type></os></domain>`;
const PINNED = `<domain type='test'><name>hp</name><memory unit='KiB'>100000</memory><vcpu cpuset='1,3'>2</vcpu><os><type>hvm</type></os></domain>`;

/**
 * The host reading verbs through virsh on libvirt's test driver and through virtplane on a test-driver
 * host: the same output and the same errors. vcpuinfo's CPU time is made up from the clock by both,
 * so it is compared as `N`.
 */
const COMMANDS: Array<[setup: string, cmd: string]> = [
  ['', 'vcpuinfo hr'],
  ['', 'vcpuinfo hr --pretty'],
  ['start hr', 'vcpuinfo hr'],
  ['start hr', 'vcpuinfo hr --pretty'],
  ['start hp', 'vcpuinfo hp'],
  ['start hp', 'vcpuinfo hp --pretty'],
  ['', 'vcpuinfo nosuch'],
  ['', 'vcpuinfo *'],
  ['', 'maxvcpus'],
  ['', 'maxvcpus --type kvm'],
  ['', 'maxvcpus --type qemu'],
  ['', 'nodecpustats'],
  ['', 'nodecpustats --cpu 0'],
  ['', 'nodecpustats --cpu -1'],
  ['', 'nodecpustats --cpu 99999'],
  ['', 'nodecpustats --cpu -2'],
  ['', 'nodecpustats --cpu abc'],
  ['', 'nodecpustats --percent'],
  ['', 'nodecpumap'],
  ['', 'nodecpumap --pretty'],
  ['', 'sysinfo'],
  ['', 'domtime hr'],
  ['start hr', 'domtime hr'],
  ['start hr', 'domtime hr --pretty'],
  ['', 'domtime nosuch'],
  ['', 'domtime >'],
];

const clockFree = (text: string) => text.replace(/CPU time: +\d+\.\d+s/g, 'CPU time: N');

describe.skipIf(!hasVirsh)('host reading verbs side by side with virsh -c test:///default', () => {
  let stack: Stack;
  let env: NodeJS.ProcessEnv;
  let files: Record<string, string>;
  const cli = (args: string[]) => run(process.execPath, [CLI, ...args], { env });
  beforeAll(async () => {
    stack = await startStack();
    env = { ...process.env, VIRTPLANE_NATS_URL: stack.nats.url };
    files = { hr: join(stack.dataDir, 'hr.xml'), hp: join(stack.dataDir, 'hp.xml') };
    await writeFile(files.hr!, XML);
    await writeFile(files.hp!, PINNED);
    for (const f of Object.values(files)) await cli(['define', f]);
  }, 60_000);
  afterAll(async () => stack?.stop());

  it.each(COMMANDS)('%s; %s', { timeout: 60_000 }, async (setup, cmd) => {
    const settle = (p: Promise<{ stdout: string; stderr: string }>) => p.then((r) => ({ ok: true, ...r }), (e: { stdout: string; stderr: string }) => ({ ok: false, stdout: e.stdout, stderr: e.stderr }));
    const defines = Object.values(files).map((f) => `define ${f} ; `).join('');
    const quoted = cmd.replace(/ ([*>])$/, " '$1'");
    const theirs = await settle(run('virsh', ['-c', 'test:///default', `${defines}${setup ? `${setup} ; ` : ''}${quoted}`]));
    theirs.stdout = theirs.stdout.replace(/^(Domain '\w+' (defined from .*|started)\n\n)+/, '');
    const [domain] = /^start (\w+)/.exec(setup)?.slice(1) ?? [];
    if (domain) await cli(['start', domain]);
    try {
      const ours = await settle(cli(cmd.split(' ')));
      const norm = (r: { ok: boolean; stdout: string; stderr: string }) => ({
        ok: r.ok,
        stdout: clockFree(r.stdout.replace(/^\n+/, '').trimEnd()),
        stderr: r.stderr
          .trim()
          .split('\n')
          .map((l) => l.replace(/ \[[a-z-]+\]$/, ''))
          .join('\n'),
      });
      expect(norm(ours)).toEqual(norm(theirs));
    } finally {
      if (domain) await cli(['destroy', domain]);
    }
  });

  it('hostile input is refused before any host is asked, in clear words', { timeout: 60_000 }, async () => {
    const fails = async (args: string[]) => cli(args).then(() => ({ code: 0, stderr: '' }), (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr.trim() }));
    expect(await fails(['maxvcpus', '--type', '*'])).toEqual({ code: 1, stderr: 'error: invalid argument: type: Invalid string: must match pattern /^[A-Za-z0-9_-]{1,32}$/ [invalid-arg]' });
    expect(await fails(['nodecpustats', '--cpu', '99999999999'])).toEqual({ code: 2, stderr: "error: Numeric value '99999999999' for <cpu> option is malformed or out of range" });
    expect(await fails(['nodecpustats', '--cpu', '1.5'])).toEqual({ code: 2, stderr: "error: Numeric value '1.5' for <cpu> option is malformed or out of range" });
    for (const host of ['*', '>', 'nosuch']) {
      for (const verb of ['nodecpumap', 'nodecpustats', 'sysinfo', 'maxvcpus']) {
        expect(await fails([verb, '--host', host])).toEqual({ code: 1, stderr: `error: no host with id '${host}' has registered [no-host]` });
      }
    }
  });
});
