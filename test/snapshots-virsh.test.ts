import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { hasVirsh, virtplane as runCli } from './fixtures/cli.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

const run = promisify(execFile);

const xmlFor = (name: string) => `<domain type='test'><name>${name}</name><memory unit='KiB'>1000000</memory><vcpu>1</vcpu><os><type>hvm</type></os>
<devices><disk type='file' device='disk'><source file='/guest/${name}.img'/><target dev='vda' bus='virtio'/></disk></devices></domain>`;

/** Each script runs on a freshly defined domain; every verb takes the domain's name first. */
const SCRIPTS: string[][] = [
  [
    'snapshot-list', 'snapshot-list --current', 'snapshot-list --tree --name', 'snapshot-list --roots --leaves', 'snapshot-create-as s1 --description first', 'snapshot-create-as s2', 'snapshot-list', 'snapshot-list --parent',
    'snapshot-list --tree', 'snapshot-list --roots', 'snapshot-list --leaves', 'snapshot-list --name', 'snapshot-info s1',
    'snapshot-info --current', 'snapshot-current --name', 'snapshot-parent s2', 'snapshot-parent s1', 'snapshot-create-as s1',
    'snapshot-revert s1', 'snapshot-current --name', 'snapshot-list --current --name', 'snapshot-create-as s3', 'snapshot-list --tree',
    'snapshot-delete s1', 'snapshot-list --tree', 'snapshot-info nosuch', 'snapshot-delete nosuch', 'snapshot-info', 'snapshot-dumpxml s2',
  ],
  [
    'start', 'snapshot-create-as r1', 'suspend', 'snapshot-create-as p1', 'snapshot-revert r1', 'domstate --reason', 'snapshot-revert p1', 'domstate --reason',
    'snapshot-revert r1 --paused', 'domstate', 'snapshot-revert r1 --running --paused', 'destroy', 'snapshot-revert p1', 'domstate', 'snapshot-dumpxml p1',
  ],
  [
    'snapshot-create-as off1', 'start', 'snapshot-revert off1', 'domstate', 'snapshot-revert off1 --running', 'domstate --reason', 'snapshot-info off1',
    'undefine', 'snapshot-delete off1 --metadata', 'snapshot-delete off1 --children-only', 'undefine --snapshots-metadata', 'snapshot-list',
  ],
  [
    'snapshot-create-as a', 'snapshot-create-as b', 'snapshot-create-as c', 'snapshot-revert a', 'snapshot-create-as d', 'snapshot-list --tree',
    'snapshot-delete b --children', 'snapshot-list --parent', 'snapshot-current --name', 'snapshot-delete a --children-only', 'snapshot-list --name',
    'snapshot-current --name', 'snapshot-delete --current', 'snapshot-current', 'snapshot-list', 'snapshot-create-as e', 'snapshot-create-as f',
    'snapshot-current e', 'snapshot-current --name', 'snapshot-current nosuch', 'snapshot-current e --name', 'snapshot-create-as g', 'snapshot-list --parent',
  ],
  ['snapshot-create SNAPXML', 'snapshot-dumpxml x1', 'snapshot-list --name', 'snapshot-create SNAPXML', 'snapshot-create-as y --disk-only'],
];

/** A <domainsnapshot> document for snapshot-create: libvirt takes the name and description, and decides the rest. */
const SNAPSHOT_XML = `<domainsnapshot><name>x1</name><description>hello &amp; welcome</description><state>paused</state><creationTime>1</creationTime></domainsnapshot>`;

/**
 * What is compared: every line either prints, but creation times (taken a moment apart) and the
 * domain document inside a snapshot (each side formats its own domain XML) are masked, and blank
 * lines (virsh ends some verbs with one) dropped.
 */
const normalise = (text: string): string[] =>
  text
    .replace(/<domain type=[\s\S]*?<\/domain>/g, '<domain/>')
    .replace(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}/g, 'TIME')
    .replace(/<creationTime>\d+<\/creationTime>/g, '<creationTime/>')
    .split('\n')
    .map((l) => l.trimEnd().replace(/ \[[a-z-]+\]$/, ''))
    .filter(Boolean);

describe.skipIf(!hasVirsh)('snapshot verbs side by side with virsh -c test:///default', () => {
  let stack: Stack;
  let env: Record<string, string>;
  beforeAll(async () => {
    stack = await startStack();
    env = { VIRTPLANE_NATS_URL: stack.nats.url };
  }, 60_000);
  afterAll(async () => stack?.stop());

  it.each(SCRIPTS.map((s, i) => [i, s] as const))('script %i', { timeout: 240_000 }, async (i, script) => {
    const name = `sv${i}`;
    const file = join(stack.dataDir, `${name}.xml`);
    await writeFile(file, xmlFor(name));
    const snapFile = join(stack.dataDir, `${name}-snap.xml`);
    await writeFile(snapFile, SNAPSHOT_XML);
    const commands = [`define ${file}`, ...script.map((c) => c.replace(/^(\S+)/, `$1 ${name}`).replace('SNAPXML', snapFile))];
    // One connection for the whole script (the test driver's state lives in it), each command's output
    // and errors in order (unbuffered), an echo marking where each command ends.
    const batch = commands.flatMap((c) => [c, 'echo ----']).join(' ; ');
    const v = await run('sh', ['-c', 'stdbuf -o0 -e0 virsh -c test:///default "$0" 2>&1', batch]);
    const theirs = normalise(v.stdout);
    const ours: string[] = [];
    for (const c of commands) {
      const r = await runCli(env, ...c.split(' '));
      ours.push(...normalise(r.stdout + '\n' + r.stderr), '----');
    }
    if (process.env.SNAPSHOT_DIFF_DUMP) console.log(ours.join('\n'));
    expect(ours.join('\n')).toBe(theirs.join('\n'));
  });
});
