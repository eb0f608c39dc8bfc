import { DEFAULT_TIMEOUT_MS } from '../../contracts/domain/commands.ts';
import { DiskModel } from '../../contracts/domain/definition.ts';
import type { AttachDiskRequest, ChangeMediaRequest, DetachDiskRequest, DeviceImpact, DeviceXmlRequest } from '../../contracts/domain/devices.ts';
import type { DomainOp } from '../../contracts/domain/events.ts';
import type { CommandMeta } from '../../contracts/envelope.ts';
import { fromZodError } from '../../contracts/errors.ts';
import { parseDeviceXml } from '../../contracts/xml/device.ts';
import { xmlError } from '../../contracts/xml/errors.ts';
import { defaultDiskBus, diskNameToIndex } from '../../contracts/xml/units.ts';
import { DISK_BUSES } from '../../contracts/xml/domain.ts';
import type { Accepted, DomainCommands } from './domain-commands.ts';

const impactOf = (r: DeviceImpact): DeviceImpact => ({
  ...(r.live ? { live: true } : {}),
  ...(r.config ? { config: true } : {}),
  ...(r.current ? { current: true } : {}),
  ...(r.persistent ? { persistent: true } : {}),
});

const timeoutOf = (r: { timeoutSeconds?: number | undefined }, op: DomainOp) => (r.timeoutSeconds !== undefined ? r.timeoutSeconds * 1000 : DEFAULT_TIMEOUT_MS[op]);

/**
 * A disk given as JSON (attach-disk) meets the checks a `<disk>` in a definition meets: its bus
 * defaults from its target's name as libvirt's does, and a target libvirt cannot name is refused.
 */
export const checkedDisk = (raw: unknown): DiskModel => {
  const parsed = DiskModel.safeParse(raw);
  if (!parsed.success) throw fromZodError(parsed.error);
  const disk = parsed.data;
  const dev = disk.target.dev;
  if (disk.address === undefined && diskNameToIndex(dev) === undefined) throw xmlError(`XML error: Unknown disk name '${dev}' and no address specified`);
  const bus = disk.target.bus ?? defaultDiskBus(dev, disk.device);
  if (!(DISK_BUSES as readonly string[]).includes(bus)) throw xmlError(`unknown disk bus type '${bus}'`);
  return { ...disk, target: { ...disk.target, bus } };
};

/** virsh's device verbs, resolved to the domain decider's disk commands (contracts/domain/devices.ts). */
export class DeviceCommands {
  constructor(private readonly domains: DomainCommands) {}

  attachDisk(req: AttachDiskRequest, meta: CommandMeta): Promise<Accepted> {
    const disk = checkedDisk(req.disk);
    return this.domains.run(req.domain, meta, { type: 'attach-disk', disk, impact: impactOf(req), timeoutMs: timeoutOf(req, 'attach-disk') });
  }

  detachDisk(req: DetachDiskRequest, meta: CommandMeta): Promise<Accepted> {
    return this.domains.run(req.domain, meta, { type: 'detach-disk', ref: req.target, impact: impactOf(req), timeoutMs: timeoutOf(req, 'detach-disk') });
  }

  changeMedia(req: ChangeMediaRequest, meta: CommandMeta): Promise<Accepted> {
    return this.domains.run(req.domain, meta, {
      type: 'change-media',
      ref: req.target,
      action: req.action,
      ...(req.source !== undefined ? { source: req.source } : {}),
      impact: impactOf(req),
      timeoutMs: timeoutOf(req, 'update-disk'),
    });
  }

  /** virsh attach-device: a `<disk>` is attached as attach-disk attaches it, an `<interface>` as attach-interface. */
  attachDevice(req: DeviceXmlRequest, meta: CommandMeta): Promise<Accepted> {
    const dev = parseDeviceXml(req.xml);
    const impact = impactOf(req);
    if (dev.kind === 'interface') {
      return this.domains.attachInterface({ domain: req.domain, iface: dev.iface, ...this.interfaceScope(impact), ...(req.timeoutSeconds ? { timeoutSeconds: req.timeoutSeconds } : {}) }, meta);
    }
    return this.domains.run(req.domain, meta, { type: 'attach-disk', disk: dev.disk, impact, timeoutMs: timeoutOf(req, 'attach-disk') });
  }

  /** virsh detach-device: libvirt matches a disk by its target, an interface by its MAC address. */
  detachDevice(req: DeviceXmlRequest, meta: CommandMeta): Promise<Accepted> {
    const dev = parseDeviceXml(req.xml);
    const impact = impactOf(req);
    if (dev.kind === 'interface') {
      if (!dev.iface.mac) throw xmlError('the <interface> to detach names no MAC address');
      return this.domains.detachInterface({ domain: req.domain, mac: dev.iface.mac, ...this.interfaceScope(impact), ...(req.timeoutSeconds ? { timeoutSeconds: req.timeoutSeconds } : {}) }, meta);
    }
    return this.domains.run(req.domain, meta, { type: 'detach-disk', ref: dev.disk.target.dev, exact: true, impact, timeoutMs: timeoutOf(req, 'detach-disk') });
  }

  /** virsh update-device: a disk's media (a cdrom's or floppy's source) on the running guest, or any of its settings in the definition. */
  updateDevice(req: DeviceXmlRequest, meta: CommandMeta): Promise<Accepted> {
    const dev = parseDeviceXml(req.xml);
    if (dev.kind !== 'disk') throw xmlError('unsupported configuration: only a <disk> can be updated here');
    return this.domains.run(req.domain, meta, { type: 'update-disk', disk: dev.disk, impact: impactOf(req), timeoutMs: timeoutOf(req, 'update-disk') });
  }

  /** attach-interface takes --live and --config only; --persistent and --current come to the same there. */
  private interfaceScope(i: DeviceImpact): { live?: boolean; config?: boolean } {
    return { ...(i.live || i.persistent ? { live: true } : {}), ...(i.config || i.persistent ? { config: true } : {}) };
  }
}
