import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { hasVirsh, virtplane as runCli } from './fixtures/cli.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

const run = promisify(execFile);

const xmlFor = (name: string) => `<domain type='test'><name>${name}</name><memory unit='KiB'>1000000</memory><currentMemory unit='KiB'>600000</currentMemory>
<vcpu current='2'>3</vcpu><os><type>hvm</type></os><devices><memballoon model='virtio'/></devices></domain>`;

/** Each script runs on a freshly defined domain (started first when it begins with `start`). */
const SCRIPTS: string[][] = [
  ['setmem 700000 --config'],
  ['setmem 2000000 --config'],
  ['setmaxmem 500000 --config', 'setmem 600000 --config'],
  ['setmaxmem 300000', 'setmem 100000 --config'],
  ['setvcpus 2 --config --maximum', 'setvcpus 3 --config'],
  ['setvcpus 5 --config --maximum', 'setvcpus 4 --config', 'setvcpus 1 --config'],
  ['setmem 100', 'setvcpus 1', 'setmem 100 --live', 'setvcpus 1 --live'],
  ['setmem 512M --config', 'setmem 1G --config', 'setmem 1000000 --config'],
  ['start', 'setmem 400000', 'setvcpus 1 --live', 'setmem 300000 --config', 'setmaxmem 100', 'setvcpus 3 --live', 'setvcpus 4 --live'],
  ['start', 'setmem 2000000 --live', 'setmaxmem 2000000 --config', 'setmem 1500000 --config', 'setvcpus 3 --current'],
];

/** What both leave behind: the memory and vCPU lines of the live and persistent XML, vcpucount, and dominfo's counts. */
const readBack = ['dumpxml', 'dumpxml --inactive', 'vcpucount', 'dominfo'];
const sizeLines = (text: string) =>
  text
    .split('\n')
    .filter((l) => /<(memory|currentMemory|vcpu)\b|^(maximum|current) |^(CPU\(s\)|Max memory|Used memory):/.test(l.trim()))
    // Attributes in one order: a document stored as defined keeps the order it was written in.
    .map((l) => l.trim().replace(/^<(\w+)((?: \w+='[^']*')*)>/, (_, tag: string, attrs: string) => `<${tag}${attrs.split(' ').filter(Boolean).sort().map((a) => ` ${a}`).join('')}>`));

describe.skipIf(!hasVirsh)('setmem, setmaxmem, setvcpus side by side with virsh -c test:///default', () => {
  let stack: Stack;
  let env: Record<string, string>;
  beforeAll(async () => {
    stack = await startStack();
    env = { VIRTPLANE_NATS_URL: stack.nats.url };
  }, 60_000);
  afterAll(async () => stack?.stop());

  const virtplane = async (args: string[]) => {
    const r = await runCli(env, ...args);
    return { ok: r.code === 0, stdout: r.stdout, stderr: r.stderr };
  };

  it.each(SCRIPTS.map((s, i) => [i, s] as const))('script %i: %j', { timeout: 120_000 }, async (i, script) => {
    const name = `vd${i}`;
    const file = join(stack.dataDir, `${name}.xml`);
    await writeFile(file, xmlFor(name));
    // virsh: one connection to the test driver for the whole script; each command's errors in order.
    const batch = [`define ${file}`, ...script.map((c) => (c === 'start' ? `start ${name}` : c.replace(/^(\S+)/, `$1 ${name}`))), ...readBack.map((c) => c.replace(/^(\S+)/, `$1 ${name}`))];
    const theirs = await run('virsh', ['-c', 'test:///default', batch.join(' ; ')]).then(
      (r) => ({ stdout: r.stdout, stderr: r.stderr }),
      (e: { stdout: string; stderr: string }) => ({ stdout: e.stdout, stderr: e.stderr }),
    );
    const ours = { stdout: '', stderr: '' };
    for (const c of [`define ${file}`, ...script.map((c) => (c === 'start' ? `start ${name}` : c.replace(/^(\S+)/, `$1 ${name}`)))]) {
      const r = await virtplane(c.split(' '));
      ours.stderr += r.stderr;
    }
    for (const c of readBack) ours.stdout += (await virtplane(c.replace(/^(\S+)/, `$1 ${name}`).split(' '))).stdout;
    const errors = (t: string) => t.split('\n').filter(Boolean).map((l) => l.replace(/ \[[a-z-]+\]$/, ''));
    expect({ errors: errors(ours.stderr), sizes: sizeLines(ours.stdout) }).toEqual({ errors: errors(theirs.stderr), sizes: sizeLines(theirs.stdout) });
  });
});
