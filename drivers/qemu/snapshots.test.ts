import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDomainXml } from '../../contracts/xml/index.ts';
import { buildTinyGuest, READY_MARKER, tinyGuestXml, waitForConsole } from '../../test/fixtures/guest/build.ts';
import { QemuDriver } from './driver.ts';
import { qemuAvailable } from './host.ts';
import { snapshotTags } from './snapshots.ts';

const run = promisify(execFile);
const avail = await qemuAvailable();

/**
 * The QEMU driver's snapshot steps on a real guest and real images: each is safe to repeat, as a
 * task redelivered after the agent was killed repeats it, and none does its work twice.
 */
describe.skipIf(!avail.ok)('QemuDriver snapshots', () => {
  let dir: string;
  let driver: QemuDriver;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vp-qsnap-'));
    driver = new QemuDriver({ stateDir: join(dir, 'state'), destroyGraceMs: 3000 });
  });
  afterAll(async () => {
    await driver?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const imageTags = async (file: string) => snapshotTags((await run('qemu-img', ['snapshot', '-l', '-U', file])).stdout);
  const imageRows = async (file: string) => (await run('qemu-img', ['snapshot', '-l', '-U', file])).stdout.split('\n').filter((l) => /^\S+\s+\S+\s+\d/.test(l));

  it('takes a running guest\'s snapshot once however often asked, loads it, and deletes it once; a shut off guest\'s likewise with qemu-img', async () => {
    const guest = await buildTinyGuest();
    const disk = join(dir, 'g.qcow2');
    await run('qemu-img', ['create', '-f', 'qcow2', disk, '8M']);
    const def = parseDomainXml(
      tinyGuestXml(guest, {
        name: 'qsnap',
        type: avail.kvm ? 'kvm' : 'qemu',
        extraCmdline: 'vp.disk=1',
        devicesXml: `<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${disk}'/><target dev='vda' bus='virtio'/></disk>`,
      }),
    );
    await driver.start(def);
    await waitForConsole(driver.console(def.uuid)!.log, READY_MARKER, { timeoutMs: 120_000 });

    expect(await driver.snapshotCreate(def, { name: 'one' })).toEqual({ state: 'running', reason: 'booted' });
    const first = await imageRows(disk);
    // Again, as a redelivered task: the snapshot already there is kept as it was, not taken anew.
    await driver.snapshotCreate(def, { name: 'one' });
    expect(await imageRows(disk)).toEqual(first);
    expect(await driver.snapshotNames(def)).toEqual(['one']);

    expect(await driver.snapshotRevert(def, { name: 'one', target: 'paused', withMemory: true })).toEqual({ state: 'paused', reason: 'from-snapshot' });
    expect(await driver.state(def.uuid)).toMatchObject({ state: 'paused' });
    await expect(driver.snapshotRevert(def, { name: 'none', target: 'running', withMemory: true })).rejects.toMatchObject({ code: 'operation-failed' });

    await driver.snapshotDelete(def, { name: 'one', names: ['one'] });
    await driver.snapshotDelete(def, { name: 'one', names: ['one'] });
    expect(await imageTags(disk)).toEqual([]);

    // A snapshot with memory brings a shut off guest back running: qemu starts paused, loads it, runs.
    await driver.snapshotCreate(def, { name: 'mem' });
    await driver.destroy(def.uuid);
    expect(await driver.snapshotRevert(def, { name: 'mem', target: 'running', withMemory: true })).toEqual({ state: 'running', reason: 'from-snapshot' });
    expect(await driver.state(def.uuid)).toMatchObject({ state: 'running' });
    await driver.snapshotDelete(def, { name: 'mem', names: ['mem'] });

    // A tag left by an abandoned task (one that timed out after savevm) is not another task's
    // snapshot: a new request of the same name takes it anew; only the same task keeps what it made.
    await driver.snapshotCreate(def, { name: 'stale' }, { taskId: 'abandoned' });
    const stale = await imageRows(disk);
    await driver.snapshotCreate(def, { name: 'stale' }, { taskId: 'abandoned' });
    expect(await imageRows(disk)).toEqual(stale);
    await driver.snapshotCreate(def, { name: 'stale' }, { taskId: 'next' });
    const retaken = await imageRows(disk);
    expect(retaken).toHaveLength(1);
    expect(retaken).not.toEqual(stale);
    await driver.snapshotCreate(def, { name: 'stale' }, { taskId: 'next' });
    expect(await imageRows(disk)).toEqual(retaken);
    await driver.snapshotDelete(def, { name: 'stale', names: ['stale'] });

    await driver.destroy(def.uuid);
    await driver.snapshotCreate(def, { name: 'off' });
    // Shut off, the same with qemu-img, told by content: the tag holds what the disk held when the
    // new task ran, not what it held for the abandoned one; a repeat of the new task keeps it.
    const fill = (byte: string) => run('qemu-io', ['-f', 'qcow2', '-c', `write -P ${byte} 0 4k`, disk]);
    await fill('0x41');
    await driver.snapshotCreate(def, { name: 'off2' }, { taskId: 'old' });
    await fill('0x42');
    await driver.snapshotCreate(def, { name: 'off2' }, { taskId: 'new' });
    await fill('0x43');
    await driver.snapshotCreate(def, { name: 'off2' }, { taskId: 'new' });
    expect((await imageRows(disk)).filter((r) => r.includes('off2'))).toHaveLength(1);
    await driver.snapshotRevert(def, { name: 'off2', target: 'shutoff', withMemory: false });
    expect((await run('qemu-io', ['-f', 'qcow2', '-c', 'read -P 0x42 0 4k', disk])).stdout).not.toContain('Pattern verification failed');
    await driver.snapshotDelete(def, { name: 'off2', names: ['off2'] });
    await driver.snapshotCreate(def, { name: 'off' });
    expect(await imageTags(disk)).toEqual(['off']);
    expect(await driver.snapshotRevert(def, { name: 'off', target: 'shutoff', withMemory: false })).toEqual({ state: 'shutoff', reason: 'from-snapshot' });
    await driver.snapshotDelete(def, { name: 'off', names: ['off', 'gone-already'] });
    expect(await imageTags(disk)).toEqual([]);
  }, 300_000);

  it('refuses a disk that cannot hold an internal snapshot, as libvirt does', async () => {
    const guest = await buildTinyGuest();
    const raw = join(dir, 'r.img');
    await run('qemu-img', ['create', '-f', 'raw', raw, '1M']);
    const def = parseDomainXml(
      tinyGuestXml(guest, { name: 'qraw', type: 'qemu', devicesXml: `<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${raw}'/><target dev='vda' bus='virtio'/></disk>` }),
    );
    await expect(driver.snapshotCreate(def, { name: 'x' })).rejects.toMatchObject({ code: 'operation-unsupported', message: 'internal snapshot for disk vda unsupported for storage type raw' });
  });
});
