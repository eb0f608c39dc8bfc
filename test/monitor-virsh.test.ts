import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLI, hasVirsh } from './fixtures/cli.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

const run = promisify(execFile);

const XML = `<domain type='test'><name>mv</name><memory unit='KiB'>1000000</memory><currentMemory unit='KiB'>600000</currentMemory>
<vcpu current='2'>3</vcpu><os><type>hvm</type></os><devices>
<disk type='block' device='cdrom'><source dev='/dev/sr0'/><target dev='hdc' bus='ide'/></disk>
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/x/y.qcow2'/><target dev='vdb' bus='virtio'/></disk>
<interface type='bridge'><source bridge='br0'/><mac address='52:54:00:00:00:01'/></interface>
<memballoon model='virtio'/></devices></domain>`;

/**
 * The monitoring verbs on a running test domain, through virsh on libvirt's test driver and through
 * virtplane: the same output, byte for byte, except the counters the test driver derives from the
 * clock (compared as `N`), and the same errors.
 */
const COMMANDS = [
  'domblklist mv',
  'domblklist mv --details',
  'domblkinfo mv vdb',
  'domblkinfo mv /x/y.qcow2',
  'domblkinfo mv --all',
  'domblkinfo mv --all --human',
  'domblkinfo mv hdc --human',
  'domblkinfo mv vdz',
  'domblkstat mv vdb',
  'domblkstat mv /x/y.qcow2 --human',
  'domblkstat mv vdz',
  'domifstat mv testnet0',
  'domifstat mv 52:54:00:00:00:01',
  'domifstat mv vnet9',
  'dommemstat mv',
  'cpu-stats mv',
  'cpu-stats mv --total',
  'cpu-stats mv --start 1',
  'cpu-stats mv --start 0 --count 1',
  'domstats mv',
  'domstats mv --state --cpu-total --balloon --vcpu --interface --block',
  'dommemstat nosuch',
  'cpu-stats nosuch',
  'domblklist nosuch',
];

const clockFree = (cmd: string, text: string) => (/^(domblkstat|domifstat)/.test(cmd) ? text.replace(/\d{6,}/g, 'N') : text);

describe.skipIf(!hasVirsh)('monitoring verbs side by side with virsh -c test:///default', () => {
  let stack: Stack;
  let env: Record<string, string>;
  let file: string;
  beforeAll(async () => {
    stack = await startStack();
    env = { VIRTPLANE_NATS_URL: stack.nats.url };
    file = join(stack.dataDir, 'mv.xml');
    await writeFile(file, XML);
    for (const c of [['define', file], ['start', 'mv']]) await run(process.execPath, [CLI, ...c], { env: { ...process.env, ...env } });
  }, 60_000);
  afterAll(async () => stack?.stop());

  it.each(COMMANDS)('%s', { timeout: 60_000 }, async (cmd) => {
    const settle = (p: Promise<{ stdout: string; stderr: string }>) => p.then((r) => ({ ok: true, ...r }), (e: { stdout: string; stderr: string }) => ({ ok: false, stdout: e.stdout, stderr: e.stderr }));
    // Not quiet (-q drops table headers): the define and start lines are cut off instead.
    const theirs = await settle(run('virsh', ['-c', 'test:///default', `define ${file} ; start mv ; ${cmd}`]));
    theirs.stdout = theirs.stdout.replace(/^Domain 'mv' defined from .*\n\nDomain 'mv' started\n/, '');
    const ours = await settle(run(process.execPath, [CLI, ...cmd.split(' ')], { env: { ...process.env, ...env } }));
    const norm = (r: { ok: boolean; stdout: string; stderr: string }) => ({
      ok: r.ok,
      stdout: clockFree(cmd, r.stdout.replace(/^\n+/, '').trimEnd()),
      stderr: r.stderr
        .trim()
        .split('\n')
        .map((l) => l.replace(/ \[[a-z-]+\]$/, ''))
        .join('\n'),
    });
    expect(norm(ours)).toEqual(norm(theirs));
  });
});
