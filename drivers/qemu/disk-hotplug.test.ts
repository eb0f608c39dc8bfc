import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DiskModel, type DomainDefinition } from '../../contracts/domain/definition.ts';
import { parseDomainXml } from '../../contracts/xml/index.ts';
import { buildTinyGuest, tinyGuestXml, waitForConsole, type TinyGuest } from '../../test/fixtures/guest/build.ts';
import { QemuDriver } from './driver.ts';
import { qemuAvailable } from './host.ts';

/** Disk hot-plug on a real guest, straight through the driver: every step may run twice. */

const avail = await qemuAvailable();
const BOOT_MS = 120_000;

describe.skipIf(!avail.ok)('QemuDriver disk hot-plug', () => {
  let guest: TinyGuest;
  let dir: string;
  let driver: QemuDriver;
  let def: DomainDefinition;
  const log = () => join(dir, 'qemu', def.uuid, 'console.log');
  const devices = async () => (await driver.monitorCommand<Array<{ name: string }>>(def.uuid, 'qom-list', { path: '/machine/peripheral' })).map((c) => c.name).filter((n) => n.startsWith('virtio-disk')).sort();
  const nodes = async () => (await driver.monitorCommand<Array<{ 'node-name': string }>>(def.uuid, 'query-named-block-nodes', { flat: true })).map((n) => n['node-name']).filter((n) => n.startsWith('libvirt-vd')).sort();

  beforeAll(async () => {
    guest = await buildTinyGuest();
    dir = await mkdtemp(join(tmpdir(), 'vp-qemu-disks-'));
    await writeFile(join(dir, 'a.img'), Buffer.alloc(4 << 20));
    driver = new QemuDriver({ stateDir: dir, destroyGraceMs: 3000, unplugRetryMs: 1000 });
    def = parseDomainXml(tinyGuestXml(guest, { type: avail.kvm ? 'kvm' : 'qemu', name: 'disks', extraCmdline: 'vp.blk=1' }));
    await driver.start(def);
    await waitForConsole(log(), 'virtplane-guest: disks []', { timeoutMs: BOOT_MS });
  }, BOOT_MS + 30_000);
  afterAll(async () => {
    await driver?.destroy(def.uuid).catch(() => undefined);
    await driver?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const vdb = DiskModel.parse({ source: { file: '' }, target: { dev: 'vdb', bus: 'virtio' } });
  const disk = () => ({ ...vdb, source: { file: join(dir, 'a.img') } });

  it('an attach run twice plugs one device; the guest sees one disk', { timeout: 90_000 }, async () => {
    await driver.attachDisk(def, disk());
    await driver.attachDisk(def, disk());
    expect(await devices()).toEqual(['virtio-disk1']);
    expect(await nodes()).toEqual(['libvirt-vdb-storage']);
    await waitForConsole(log(), 'virtplane-guest: disks [vda ]', { timeoutMs: 60_000 });
    expect((await driver.runtimeDisks(def))?.map((d) => d.target.dev)).toEqual(['vdb']);
  });

  it('a detach run twice unplugs once and closes the image; a repeated one is nothing to do', { timeout: 90_000 }, async () => {
    const live = { ...def, devices: { ...def.devices, disks: [disk()] } };
    await driver.detachDisk(live, 'vdb');
    expect(await devices()).toEqual([]);
    expect(await nodes()).toEqual([]);
    await driver.detachDisk(live, 'vdb');
    await waitForConsole(log(), 'virtplane-guest: disks []', { count: 2, timeoutMs: 60_000 });
    expect(await driver.runtimeDisks(def)).toEqual([]);
  });

  it('an attach cut short after blockdev-add (a driver that died) finishes on the next run with the node it left', { timeout: 90_000 }, async () => {
    await driver.monitorCommand(def.uuid, 'blockdev-add', { driver: 'file', filename: join(dir, 'a.img'), 'node-name': 'libvirt-vdb-storage', 'read-only': false, discard: 'unmap' });
    await driver.attachDisk(def, disk());
    expect(await devices()).toEqual(['virtio-disk1']);
    expect(await nodes()).toEqual(['libvirt-vdb-storage']);
    await driver.detachDisk({ ...def, devices: { ...def.devices, disks: [disk()] } }, 'vdb');
    expect(await nodes()).toEqual([]);
  });

  it('an unplug the guest finished while no driver watched (the agent died waiting): the next run only closes the image', { timeout: 90_000 }, async () => {
    await driver.attachDisk(def, disk());
    await driver.monitorCommand(def.uuid, 'device_del', { id: 'virtio-disk1' });
    const end = Date.now() + 60_000;
    while ((await devices()).length && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
    expect(await devices()).toEqual([]);
    expect(await nodes()).toEqual(['libvirt-vdb-storage']);
    await driver.detachDisk({ ...def, devices: { ...def.devices, disks: [disk()] } }, 'vdb');
    expect(await nodes()).toEqual([]);
    expect(await driver.runtimeDisks(def)).toEqual([]);
  });

  it('a disk the guest booted with unplugs too, and its nodes close', { timeout: 120_000 }, async () => {
    await writeFile(join(dir, 'cold.img'), Buffer.alloc(4 << 20));
    const coldXml = `<disk type='file' device='disk'><source file='${join(dir, 'cold.img')}'/><target dev='vdc' bus='virtio'/></disk>`;
    const cold = parseDomainXml(tinyGuestXml(guest, { type: avail.kvm ? 'kvm' : 'qemu', name: 'cold', extraCmdline: 'vp.blk=1', devicesXml: coldXml }));
    await driver.start(cold);
    try {
      const coldLog = join(dir, 'qemu', cold.uuid, 'console.log');
      await waitForConsole(coldLog, 'virtplane-guest: disks [vda ]', { timeoutMs: BOOT_MS });
      const storage = async () => (await driver.monitorCommand<Array<{ 'node-name': string; file: string }>>(cold.uuid, 'query-named-block-nodes', { flat: true })).filter((n) => n.file === join(dir, 'cold.img'));
      expect((await storage()).length).toBeGreaterThan(0);
      // The guest may have said "disks []" before its driver found vda: count from there.
      const seen = (await readFile(coldLog, 'utf8')).split('virtplane-guest: disks []').length - 1;
      await driver.detachDisk(cold, 'vdc');
      await waitForConsole(coldLog, 'virtplane-guest: disks []', { count: seen + 1, timeoutMs: 60_000 });
      expect(await storage()).toEqual([]);
      expect(await driver.runtimeDisks(cold)).toEqual([]);
    } finally {
      await driver.destroy(cold.uuid);
    }
  });

  it("libvirt's refusals: no cdrom hot-plug, no ide hot-plug, no disk without a source", async () => {
    await expect(driver.attachDisk(def, { ...disk(), device: 'cdrom' })).rejects.toMatchObject({ code: 'operation-unsupported', message: /cdrom\/floppy device hotplug isn't supported/ });
    await expect(driver.attachDisk(def, { ...disk(), target: { dev: 'hdb', bus: 'ide' } })).rejects.toMatchObject({ code: 'operation-unsupported', message: /disk bus 'ide' cannot be hotplugged/ });
    await expect(driver.attachDisk(def, { ...vdb, source: {} })).rejects.toMatchObject({ code: 'xml-error' });
    expect(await devices()).toEqual([]);
  });
});
