import type { DiskModel, DomainDefinition } from '../../contracts/domain/definition.ts';
import { VirtError } from '../../contracts/errors.ts';
import type { OperationOptions } from '../hypervisor.ts';
import { diskNameIndex } from './argv.ts';
import type { QemuContext } from './context.ts';
import type { Domain } from './guest.ts';
import { monitor, persist } from './monitor.ts';
import { QmpError, type QmpClient } from './qmp.ts';

/**
 * Disk hot-plug over QMP, as libvirt's qemuDomainAttachDiskGeneric and qemuDomainRemoveDiskDevice do
 * it: the image is opened with blockdev-add (a protocol node, and a format node above it for any
 * format but raw), then a virtio-blk device is added on it; unplugging asks the guest to let go with
 * device_del, waits for DEVICE_DELETED, and only then closes the nodes with blockdev-del. Every step
 * first looks at what qemu already has, so a task run again after the agent died part way finishes
 * the job instead of doing it twice.
 */

export interface UnplugTiming {
  /** How long the guest gets to release the disk when the operation has no abort signal. */
  timeoutMs: number;
  /** How often device_del is repeated: a guest drops requests that come before its OS set up hot-plug. */
  retryMs: number;
}

/** libvirt's names: the device alias virtio-diskN, and the nodes of a hot-plugged disk by its target. */
export const diskIds = (disk: DiskModel) => ({
  device: `virtio-disk${diskNameIndex(disk.target.dev)}`,
  storage: `libvirt-${disk.target.dev}-storage`,
  format: `libvirt-${disk.target.dev}-format`,
});

const unsupported = (msg: string) => new VirtError('operation-unsupported', `Operation not supported: ${msg}`);

/** The ids of the devices qemu has (`/machine/peripheral`). */
export const presentDevices = async (qmp: QmpClient): Promise<Set<string>> =>
  new Set((await qmp.execute<Array<{ name: string }>>('qom-list', { path: '/machine/peripheral' })).map((c) => c.name));

const nodeNames = async (qmp: QmpClient): Promise<Set<string>> =>
  new Set((await qmp.execute<Array<{ 'node-name': string }>>('query-named-block-nodes', { flat: true })).map((n) => n['node-name']));

const sourcePath = (disk: DiskModel): string | undefined => (disk.type === 'block' ? disk.source?.dev : disk.type === 'file' ? disk.source?.file : undefined);

export const plugDisk = async (qmp: QmpClient, disk: DiskModel, opts: OperationOptions = {}): Promise<void> => {
  // libvirt's own refusals (qemuDomainAttachDeviceDiskLiveInternal), in its words.
  if (disk.device === 'cdrom' || disk.device === 'floppy') throw unsupported('cdrom/floppy device hotplug isn\'t supported');
  if ((disk.target.bus ?? 'virtio') !== 'virtio') throw unsupported(`disk bus '${disk.target.bus}' cannot be hotplugged.`);
  if (disk.type !== 'file' && disk.type !== 'block') throw unsupported(`disk type '${disk.type}' cannot be hotplugged by the qemu driver`);
  const path = sourcePath(disk);
  if (!path) throw new VirtError('xml-error', `XML error: disk '${disk.target.dev}' has no source`);
  const ids = diskIds(disk);
  if ((await presentDevices(qmp)).has(ids.device)) return;
  const format = disk.driver?.type ?? 'raw';
  const readOnly = disk.readonly;
  const nodes = await nodeNames(qmp);
  const protocol = disk.type === 'block' ? 'host_device' : 'file';
  opts.progress?.(`opening ${path}`);
  if (!nodes.has(ids.storage)) {
    await qmp.execute('blockdev-add', {
      driver: protocol,
      filename: path,
      'node-name': ids.storage,
      ...(format === 'raw' ? { 'read-only': readOnly } : { 'auto-read-only': true }),
      discard: 'unmap',
    });
  }
  let top = ids.storage;
  if (format !== 'raw') {
    top = ids.format;
    if (!nodes.has(ids.format)) await qmp.execute('blockdev-add', { 'node-name': ids.format, 'read-only': readOnly, driver: format, file: ids.storage });
  }
  opts.progress?.(`adding virtio-blk ${ids.device}`);
  try {
    await qmp.execute('device_add', {
      driver: 'virtio-blk-pci',
      drive: top,
      id: ids.device,
      ...(disk.shareable ? { 'share-rw': true } : {}),
      ...(disk.serial ? { serial: disk.serial } : {}),
    });
  } catch (e) {
    // Nothing uses the nodes: close them, so a later attach of the target starts clean.
    await closeNodes(qmp, top);
    throw e;
  }
};

/** Closes a node and, under libvirt's naming, the protocol node beneath a format node. */
const closeNodes = async (qmp: QmpClient, top: string): Promise<void> => {
  const drop = (node: string) =>
    qmp.execute('blockdev-del', { 'node-name': node }).catch((e: unknown) => {
      if (!(e instanceof QmpError)) throw e;
      // Already closed: an earlier try got this far.
    });
  await drop(top);
  if (top.endsWith('-format')) await drop(`${top.slice(0, -'-format'.length)}-storage`);
};

/** The node a device reads from, which query-block knows by the device's qdev path. */
const nodeOf = async (qmp: QmpClient, device: string): Promise<string | undefined> => {
  const blocks = await qmp.execute<Array<{ qdev?: string; inserted?: { 'node-name'?: string } }>>('query-block');
  return blocks.find((b) => b.qdev === device || b.qdev?.startsWith(`/machine/peripheral/${device}/`))?.inserted?.['node-name'];
};

export const unplugDisk = async (qmp: QmpClient, disk: DiskModel, timing: UnplugTiming, name: string, opts: OperationOptions = {}): Promise<void> => {
  const ids = diskIds(disk);
  if ((disk.target.bus ?? 'virtio') !== 'virtio') throw unsupported(`This type of disk cannot be hot unplugged`);
  if (!(await presentDevices(qmp)).has(ids.device)) {
    // Released while no agent was watching: only its nodes may be left.
    const nodes = await nodeNames(qmp);
    if (nodes.has(ids.format)) await closeNodes(qmp, ids.format);
    else if (nodes.has(ids.storage)) await closeNodes(qmp, ids.storage);
    return;
  }
  const node = (await nodeOf(qmp, ids.device)) ?? ids.format;
  const stop = new AbortController();
  const deleted = qmp.waitForEvent((e) => e.event === 'DEVICE_DELETED' && e.data?.device === ids.device, { timeoutMs: Infinity, signal: stop.signal });
  deleted.catch(() => undefined);
  const limit = opts.signal ? undefined : setTimeout(() => stop.abort(), timing.timeoutMs);
  let retry: NodeJS.Timeout | undefined;
  try {
    for (;;) {
      if (opts.signal?.aborted || stop.signal.aborted) {
        throw new VirtError('timeout', `detaching disk ${disk.target.dev} from domain '${name}': the guest did not release it`);
      }
      try {
        await qmp.execute('device_del', { id: ids.device });
      } catch (e) {
        if (!(e instanceof QmpError)) throw e;
        if (e.errorClass === 'DeviceNotFound') break;
        if (!/already in the process of unplug/i.test(e.message)) throw e;
      }
      opts.progress?.(`waiting for the guest to release ${ids.device}`);
      const tick = new Promise<'tick'>((r) => (retry = setTimeout(() => r('tick'), timing.retryMs)));
      const aborted = new Promise<'aborted'>((r) => {
        opts.signal?.addEventListener('abort', () => r('aborted'), { once: true });
        stop.signal.addEventListener('abort', () => r('aborted'), { once: true });
      });
      const what = await Promise.race([deleted.then(() => 'released' as const, () => 'aborted' as const), tick, aborted]);
      if (what === 'released') break;
    }
  } finally {
    clearTimeout(retry);
    clearTimeout(limit);
    stop.abort();
  }
  await closeNodes(qmp, node);
};

/** The qdev id libvirt gives a removable disk on its bus (as the command line builds it). */
const removableId = (disk: DiskModel): string => {
  const index = diskNameIndex(disk.target.dev);
  switch (disk.target.bus) {
    case 'ide':
      return `ide${Math.floor(index / 4)}-${Math.floor((index % 4) / 2)}-${index % 2}`;
    case 'sata':
      return `sata0-0-${index % 6}`;
    case 'scsi':
      return `scsi${Math.floor(index / 7)}-0-${index % 7}`;
    default:
      throw unsupported(`disk bus '${disk.target.bus}' cannot be updated.`);
  }
};

/** qemuDomainChangeEjectableMedia: eject, or put the new media in the drive. */
export const changeMedia = async (qmp: QmpClient, disk: DiskModel): Promise<void> => {
  if (disk.device !== 'cdrom' && disk.device !== 'floppy') throw unsupported(`disk device type '${disk.device}' cannot be updated`);
  const id = removableId(disk);
  const path = sourcePath(disk);
  if (!path) {
    await qmp.execute('eject', { id, force: true }).catch((e: unknown) => {
      // An empty drive is ejected already.
      if (!(e instanceof QmpError && /no medium|not inserted|is empty/i.test(e.message))) throw e;
    });
    return;
  }
  await qmp.execute('blockdev-change-medium', { id, filename: path, format: disk.driver?.type ?? 'raw', 'read-only-mode': 'retain' });
};

/** plugDisk on a running guest, with the disk in its record for as long as qemu may have it. */
export async function attachDisk(ctx: QemuContext, d: Domain, disk: DiskModel, opts: OperationOptions): Promise<void> {
  const dev = disk.target.dev;
  // Recorded first: a driver that dies before qemu answers still knows what it may have plugged.
  d.rec.disks = [...(d.rec.disks ?? []).filter((x) => x.target.dev !== dev), disk];
  await persist(ctx, d);
  try {
    await plugDisk(await monitor(ctx, d), disk, opts);
  } catch (e) {
    d.rec.disks = d.rec.disks.filter((x) => x !== disk);
    await persist(ctx, d);
    throw e;
  }
}

export async function detachDisk(ctx: QemuContext, d: Domain, disk: DiskModel, timing: UnplugTiming, opts: OperationOptions): Promise<void> {
  await unplugDisk(await monitor(ctx, d), disk, timing, d.rec.name, opts);
  d.rec.disks = (d.rec.disks ?? []).filter((x) => x.target.dev !== disk.target.dev);
  await persist(ctx, d);
}

/** The boot-time disks and the hot-plugged ones, each as long as qemu still has its device. */
export async function runtimeDisks(ctx: QemuContext, d: Domain): Promise<DiskModel[]> {
  const have = await presentDevices(await monitor(ctx, d));
  const plugged = (disk: DiskModel) => (disk.target.bus ?? 'virtio') !== 'virtio' || have.has(diskIds(disk).device);
  const hot = (d.rec.disks ?? []).filter(plugged);
  const cold = d.rec.def.devices.disks.filter((x) => plugged(x) && !hot.some((h) => h.target.dev === x.target.dev));
  return [...cold, ...hot];
}

/**
 * qemuDomainBlockResize: QMP block_resize on the node that reads the disk's image, found by its file
 * (a disk given at boot and one plugged later are named differently); the definition stays as it is.
 */
export async function resizeDisk(ctx: QemuContext, d: Domain, def: DomainDefinition, target: string, bytes: number): Promise<void> {
  const disk = def.devices.disks.find((x) => x.target.dev === target);
  const file = disk?.source?.file ?? disk?.source?.dev;
  if (!disk || !file) throw new VirtError('invalid-arg', `disk '${target}' was not found in the domain config`);
  const qmp = await monitor(ctx, d);
  const blocks = await qmp.execute<Array<{ inserted?: { file?: string; 'node-name'?: string; image?: { filename?: string } } }>>('query-block');
  const node = blocks.find((b) => b.inserted?.file === file || b.inserted?.image?.filename === file)?.inserted?.['node-name'];
  if (!node) throw new VirtError('invalid-arg', `disk '${target}' was not found in the domain config`);
  await qmp.execute('block_resize', { 'node-name': node, size: bytes });
}
