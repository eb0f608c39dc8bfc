import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { qemuAvailable } from '../drivers/qemu/index.ts';
import { buildTinyGuest, READY_MARKER, tinyGuestXml, waitForConsole, type TinyGuest } from './fixtures/guest/build.ts';
import { virtplane as runCli } from './fixtures/cli.ts';
import { GuestShell } from './fixtures/guest-shell.ts';
import { startStack, type Stack } from './fixtures/stack.ts';

const run = promisify(execFile);
const availability = await qemuAvailable();

/**
 * External disk-only snapshots of a real guest through the CLI, as libvirt 9.0 takes them: the
 * guest's writes go to a new overlay while the image below stays as it was; deleting the snapshot
 * merges them back into the image and the overlay goes; reverting is refused with libvirt's words.
 * Taken of the running guest (QMP transaction, block-commit) and of the shut off one (qemu-img).
 */
describe.skipIf(!availability.ok)('external snapshots of a real qemu guest through the CLI', () => {
  let stack: Stack;
  let guest: TinyGuest;
  let dir: string;
  const domainType = availability.kvm ? 'kvm' : 'qemu';
  const virtplane = async (...args: string[]) => {
    const r = await runCli({ VIRTPLANE_NATS_URL: stack.nats.url }, ...args);
    return r.code === 0 ? r.stdout.trimEnd() : `exit ${r.code}: ${r.stderr.trim()}`;
  };
  const consoleLog = (uuid: string) => join(stack.dataDir, 'hosts', stack.hostId, 'qemu', uuid, 'console.log');

  const shell = new GuestShell(() => stack.nats.url);
  const { attach, write, expectDisk } = shell;
  const sha = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex');
  /** The first line of an image's first sector, as the guest would see it, read with qemu-img. */
  const firstLine = async (file: string) => {
    const out = join(dir, 'read.raw');
    await run('qemu-img', ['convert', '-U', '-O', 'raw', file, out]);
    const text = (await readFile(out)).subarray(0, 512).toString('latin1').split('\n')[0];
    await rm(out);
    return text;
  };
  const chain = async (file: string) =>
    (JSON.parse((await run('qemu-img', ['info', '-U', '--backing-chain', '--output=json', file])).stdout) as Array<{ filename: string }>).map((x) => x.filename);
  const ownData = async (file: string) =>
    (JSON.parse((await run('qemu-img', ['map', '-U', '--output=json', file])).stdout) as Array<{ depth: number; data: boolean }>).some((m) => m.depth === 0 && m.data);

  beforeAll(async () => {
    guest = await buildTinyGuest();
    dir = await mkdtemp(join(tmpdir(), 'vp-extsnap-'));
    stack = await startStack({ env: { VIRTPLANE_DRIVER: 'qemu', VIRTPLANE_ACK_WAIT_MS: '3000' } });
  }, 180_000);
  afterAll(async () => {
    shell.close();
    for (const v of (await stack?.client.list({ all: false }).catch(() => [])) ?? []) {
      await stack.client.destroy(v.id).then((a) => stack.client.outcome(a, 60_000)).catch(() => undefined);
    }
    await stack?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('running guest: the overlay takes the writes, the image stays; delete merges them back; revert is refused', async () => {
    const disk = join(dir, 'ext.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '16M']);
    const file = join(dir, 'ext.xml');
    const devicesXml = `<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${disk}'/><target dev='vda' bus='virtio'/></disk>`;
    await writeFile(file, tinyGuestXml(guest, { name: 'extg', type: domainType, extraCmdline: 'vp.disk=1', devicesXml }));
    expect(await virtplane('define', file)).toBe(`Domain 'extg' defined from ${file}`);
    const uuid = JSON.parse(await virtplane('dominfo', 'extg', '--json')).id as string;
    expect(await virtplane('start', 'extg', '--timeout', '120')).toBe("Domain 'extg' started");
    await waitForConsole(consoleLog(uuid), READY_MARKER, { timeoutMs: 120_000 });
    await attach('extg');
    await write('alpha');

    expect(await virtplane('snapshot-create-as', 'extg', 'e1', '--disk-only')).toBe('Domain snapshot e1 created');
    const overlay = join(dir, 'ext.e1');
    expect(await chain(overlay)).toEqual([overlay, disk]);
    const xml = await virtplane('dumpxml', 'extg');
    expect(xml).toContain(`<source file='${overlay}'/>`);
    expect(xml).toContain(`<backingStore type='file'>`);
    expect(xml).toContain(`<source file='${disk}'/>`);
    const snapXml = await virtplane('snapshot-dumpxml', 'extg', 'e1');
    expect(snapXml).toContain('<state>disk-snapshot</state>');
    expect(snapXml).toContain("<memory snapshot='no'/>");
    expect(snapXml).toContain(`<disk name='vda' snapshot='external' type='file'>\n      <driver type='qcow2'/>\n      <source file='${overlay}'/>\n    </disk>`);
    const info = await virtplane('snapshot-info', 'extg', 'e1');
    expect(info).toMatch(/^State:\s+disk-snapshot$/m);
    expect(info).toMatch(/^Location:\s+external$/m);

    // The guest writes: the overlay grows, the image below does not change.
    const base = await sha(disk);
    expect(await ownData(overlay)).toBe(false);
    await write('bravo');
    await expectDisk('bravo');
    expect(await ownData(overlay)).toBe(true);
    expect(await sha(disk)).toBe(base);
    expect(await firstLine(disk)).toBe('alpha');

    expect(await virtplane('snapshot-revert', 'extg', 'e1')).toBe(
      'exit 1: error: Failed to revert snapshot e1\nerror: unsupported configuration: revert to external snapshot not supported yet [config-unsupported]',
    );

    // Delete: an active block-commit into the image, pivoted; the overlay goes, the guest runs on.
    expect(await virtplane('snapshot-delete', 'extg', 'e1')).toBe('Domain snapshot e1 deleted');
    expect(existsSync(overlay)).toBe(false);
    expect(await firstLine(disk)).toBe('bravo');
    const after = await virtplane('dumpxml', 'extg');
    expect(after).toContain(`<source file='${disk}'/>`);
    expect(after).not.toContain('backingStore');
    await expectDisk('bravo');
    await write('charlie');
    expect(await firstLine(disk)).toBe('charlie');
    expect(await virtplane('snapshot-list', 'extg', '--name')).toBe('');

    // A file already at the overlay's path is refused, with libvirt's words, and left alone.
    await writeFile(join(dir, 'ext.e9'), 'mine');
    expect(await virtplane('snapshot-create-as', 'extg', 'e9', '--disk-only')).toBe(
      `exit 1: error: Operation not supported: external snapshot file for disk vda already exists and is not a block device: ${join(dir, 'ext.e9')} [operation-unsupported]`,
    );
    expect(await readFile(join(dir, 'ext.e9'), 'utf8')).toBe('mine');
    expect(await virtplane('dumpxml', 'extg')).toContain(`<source file='${disk}'/>`);
    expect(await virtplane('destroy', 'extg')).toBe("Domain 'extg' destroyed");
  }, 600_000);

  it('shut off guest: qemu-img makes the overlay from a <domainsnapshot> document; the next boot writes there; delete commits it', async () => {
    const disk = join(dir, 'ext.qcow2');
    const uuid = JSON.parse(await virtplane('dominfo', 'extg', '--json')).id as string;
    const overlay = join(dir, 'custom-overlay.qcow2');
    const doc = join(dir, 'e2.xml');
    await writeFile(doc, `<domainsnapshot><name>e2</name><disks><disk name='vda' snapshot='external'><source file='${overlay}'/></disk></disks></domainsnapshot>`);
    expect(await virtplane('snapshot-create', 'extg', doc, '--disk-only')).toBe(`Domain snapshot e2 created from '${doc}'`);
    expect(await chain(overlay)).toEqual([overlay, disk]);
    expect(await virtplane('domstate', 'extg')).toBe('shut off');
    const base = await sha(disk);

    expect(await virtplane('start', 'extg', '--timeout', '120')).toBe("Domain 'extg' started");
    await waitForConsole(consoleLog(uuid), READY_MARKER, { timeoutMs: 120_000 });
    await attach('extg');
    await expectDisk('charlie');
    await write('delta');
    expect(await virtplane('destroy', 'extg')).toBe("Domain 'extg' destroyed");
    expect(await sha(disk)).toBe(base);
    expect(await firstLine(overlay)).toBe('delta');
    expect(await firstLine(disk)).toBe('charlie');

    expect(await virtplane('snapshot-revert', 'extg', 'e2', '--running')).toMatch(/revert to external snapshot not supported yet/);
    expect(await virtplane('snapshot-delete', 'extg', 'e2', '--children')).toBe(
      'exit 1: error: Failed to delete snapshot e2\nerror: unsupported configuration: deletion of external disk snapshots with children not supported [config-unsupported]',
    );
    expect(await virtplane('snapshot-delete', 'extg', 'e2')).toBe('Domain snapshot e2 deleted');
    expect(existsSync(overlay)).toBe(false);
    expect(await firstLine(disk)).toBe('delta');
    expect(await virtplane('dumpxml', 'extg')).toContain(`<source file='${disk}'/>`);
    expect(await virtplane('undefine', 'extg')).toBe("Domain 'extg' has been undefined");
  }, 600_000);
});
