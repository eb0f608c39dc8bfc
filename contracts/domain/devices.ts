import { z } from 'zod';
import { DiskModel, type DomainDefinition } from './definition.ts';
import { isActive } from './state.ts';
import { virtError, type VirtError } from '../errors.ts';
import { CommandHeader, DomainRef } from './commands.ts';
import type { DomainEventBody } from './events.ts';
import type { DomainAggregate } from './decider.ts';
import { DEFAULT_LIMITS } from '../xml/limits.ts';
import { formatDomainXml } from '../xml/domain.ts';

/**
 * virsh's disk verbs (attach-disk, detach-disk, attach-device, detach-device, update-device,
 * change-media), checked with libvirt's rules and words before anything is recorded. A change of
 * the running guest is an operation its host carries out (blockdev-add and device_add on qemu); a
 * change of the persistent definition alone is a new definition. Which of the two a verb touches
 * follows virDomainObjUpdateModificationImpact.
 */

/**
 * What the caller said, as virsh's flags. With none, attach-disk/detach-disk/attach-device and
 * detach-device call the flagless API, which is the live guest; update-device and change-media pass
 * AFFECT_CURRENT, which the CLI sends as `current`.
 */
export const DeviceImpact = z.object({
  live: z.boolean().optional(),
  config: z.boolean().optional(),
  /** The running guest when it runs, the persistent definition otherwise. */
  current: z.boolean().optional(),
  /** virsh --persistent: the persistent definition, and the running guest too when it runs. */
  persistent: z.boolean().optional(),
});
export type DeviceImpact = z.infer<typeof DeviceImpact>;

const Impact = DeviceImpact.shape;
const DiskRef = z.string().min(1).max(4096);
/** A device document is one element: a quarter of a definition's limit is plenty and bounds the log. */
export const MAX_DEVICE_XML_BYTES = DEFAULT_LIMITS.maxBytes / 4;

export const AttachDiskRequest = CommandHeader.extend({ domain: DomainRef, disk: z.unknown(), timeoutSeconds: z.number().positive().max(3600).optional(), ...Impact });
export type AttachDiskRequest = z.infer<typeof AttachDiskRequest>;

/** `target`: the disk's target (vdb) or its source path, as virsh detach-disk takes either. */
export const DetachDiskRequest = CommandHeader.extend({ domain: DomainRef, target: DiskRef, timeoutSeconds: z.number().positive().max(3600).optional(), ...Impact });
export type DetachDiskRequest = z.infer<typeof DetachDiskRequest>;

/** attach-device, detach-device, update-device: one device element of libvirt's domain XML. */
export const DeviceXmlRequest = CommandHeader.extend({
  domain: DomainRef,
  xml: z.string().min(1).refine((x) => Buffer.byteLength(x, 'utf8') <= MAX_DEVICE_XML_BYTES, {
    message: `the device XML is larger than the ${MAX_DEVICE_XML_BYTES / 1024} KiB limit for devices`,
  }),
  timeoutSeconds: z.number().positive().max(3600).optional(),
  ...Impact,
});
export type DeviceXmlRequest = z.infer<typeof DeviceXmlRequest>;

export const MediaAction = z.enum(['eject', 'insert', 'update']);
export type MediaAction = z.infer<typeof MediaAction>;

/** virsh change-media: `target` is a cdrom or floppy's target or its current source path. */
export const ChangeMediaRequest = CommandHeader.extend({
  domain: DomainRef,
  target: DiskRef,
  action: MediaAction,
  source: z.string().min(1).max(4096).optional(),
  timeoutSeconds: z.number().positive().max(3600).optional(),
  ...Impact,
});
export type ChangeMediaRequest = z.infer<typeof ChangeMediaRequest>;

export type DiskCommand =
  /** The host found the running guest with these disks (the resync): the live definition follows. */
  | { type: 'observe-disks'; disks: DiskModel[] }
  | { type: 'attach-disk'; disk: DiskModel; impact: DeviceImpact; timeoutMs: number }
  /** `exact`: `ref` is a target from a device document, matched as libvirt does, not looked up as virsh does. */
  | { type: 'detach-disk'; ref: string; exact?: boolean; impact: DeviceImpact; timeoutMs: number }
  | { type: 'update-disk'; disk: DiskModel; impact: DeviceImpact; timeoutMs: number }
  | { type: 'change-media'; ref: string; action: MediaAction; source?: string; impact: DeviceImpact; timeoutMs: number };

/** Plugging or unplugging on the host, and the persistent definition too when `persistent`. */
export type HostDiskRequest = (op: 'attach-disk' | 'detach-disk' | 'update-disk', args: { disk?: DiskModel; target?: string; persistent: boolean }) => DomainEventBody[];

/** virDomainObjUpdateModificationImpact, with virsh's choice of flags folded in. */
export const resolveImpact = (s: DomainAggregate, impact: DeviceImpact): { live: boolean; config: boolean } => {
  const active = isActive(s.observed.state);
  let live: boolean;
  let config: boolean;
  if (impact.persistent) {
    config = true;
    live = active || Boolean(impact.live);
  } else if (impact.current) {
    live = active;
    config = !active;
  } else if (!impact.live && !impact.config) {
    live = true;
    config = false;
  } else {
    live = Boolean(impact.live);
    config = Boolean(impact.config);
  }
  if (live && !active) throw virtError('operation-invalid', 'domain is not running', { domain: s.name });
  if (config && !s.persistent) throw virtError('operation-invalid', 'transient domains do not have any persistent config', { domain: s.name });
  return { live, config };
};

/** virsh's own lookup (virshFindDisk): by target or by source path; no libvirt call made it. */
const noDisk = (ref: string): VirtError => virtError('invalid-arg', `No disk found whose source path or target is ${ref}`, { lookup: 'virsh' });

/** The XML virsh reads to find a disk: the inactive one for --config alone, the live one otherwise. */
const lookupDef = (s: DomainAggregate, impact: DeviceImpact): DomainDefinition =>
  impact.config && !impact.live && !impact.persistent ? (s.nextDefinition ?? s.definition!) : s.definition!;

const sourcePath = (d: DiskModel): string | undefined => d.source?.file ?? d.source?.dev ?? d.source?.dir ?? d.source?.volume ?? d.source?.name;

const findDisk = (def: DomainDefinition, ref: string, changeable = false): DiskModel | undefined =>
  def.devices.disks.find((d) => (!changeable || d.device === 'cdrom' || d.device === 'floppy') && (d.target.dev === ref || sourcePath(d) === ref));

/** The definition with one disk added, put in the place of the one of its target, or taken out. */
export const withDisk = (def: DomainDefinition, op: 'attach-disk' | 'detach-disk' | 'update-disk', disk?: DiskModel, target?: string): DomainDefinition => {
  const dev = disk?.target.dev ?? target;
  const disks =
    op === 'attach-disk' && disk
      ? [...def.devices.disks.filter((d) => d.target.dev !== dev), disk]
      : op === 'update-disk' && disk
        ? def.devices.disks.map((d) => (d.target.dev === dev ? disk : d))
        : def.devices.disks.filter((d) => d.target.dev !== dev);
  const next = { ...def, devices: { ...def.devices, disks } };
  // The stored document is what dumpxml shows: it is written anew with the disks as they now are.
  return def.xml ? { ...next, xml: formatDomainXml(next) } : next;
};

const configOnly = (s: DomainAggregate, definition: DomainDefinition): DomainEventBody[] => [
  { type: 'DomainDefined', data: { definition, hostId: s.hostId, placementEpoch: s.placementEpoch, added: false } },
];

export const decideDisk = (cmd: DiskCommand, s: DomainAggregate, host: HostDiskRequest): DomainEventBody[] => {
  const liveDef = s.definition!;
  const configDef = s.nextDefinition ?? s.definition!;
  switch (cmd.type) {
    case 'observe-disks': {
      // Only a running guest with nothing in flight has disks to compare: an operation reports its own.
      if (!isActive(s.observed.state) || s.pending) return [];
      const have = new Set(cmd.disks.map((d) => d.target.dev));
      const known = new Set(liveDef.devices.disks.map((d) => d.target.dev));
      const added = cmd.disks.filter((d) => !known.has(d.target.dev));
      const removed = [...known].filter((t) => !have.has(t));
      return added.length || removed.length ? [{ type: 'DomainDisksObserved', data: { added, removed } }] : [];
    }
    case 'attach-disk': {
      const { live, config } = resolveImpact(s, cmd.impact);
      const dev = cmd.disk.target.dev;
      // qemuDomainAttachDeviceConfig, then qemuDomainAttachDeviceDiskLive, in libvirt's order and words.
      if (config && configDef.devices.disks.some((d) => d.target.dev === dev)) throw virtError('operation-invalid', `target ${dev} already exists`);
      if (live && liveDef.devices.disks.some((d) => d.target.dev === dev)) throw virtError('operation-failed', `target ${dev} already exists`);
      if (live) return host('attach-disk', { disk: cmd.disk, persistent: config });
      return configOnly(s, withDisk(configDef, 'attach-disk', cmd.disk));
    }
    case 'detach-disk': {
      let dev = cmd.ref;
      if (!cmd.exact) {
        // virsh looks the disk up before it calls libvirt.
        const found = findDisk(lookupDef(s, cmd.impact), cmd.ref);
        if (!found) throw noDisk(cmd.ref);
        dev = found.target.dev;
      }
      const { live, config } = resolveImpact(s, cmd.impact);
      if (config && !configDef.devices.disks.some((d) => d.target.dev === dev)) throw virtError('operation-failed', `no target device ${dev}`);
      if (live && !liveDef.devices.disks.some((d) => d.target.dev === dev)) throw virtError('operation-failed', `disk ${dev} not found`);
      if (live) return host('detach-disk', { target: dev, persistent: config });
      return configOnly(s, withDisk(configDef, 'detach-disk', undefined, dev));
    }
    case 'update-disk':
      return updateDisk(s, cmd.disk, resolveImpact(s, cmd.impact), host);
    case 'change-media': {
      // virshUpdateDiskXML's checks, on the XML virsh would have read, before it calls libvirt.
      const disk = findDisk(lookupDef(s, cmd.impact), cmd.ref, true);
      if (!disk) throw noDisk(cmd.ref);
      const dev = disk.target.dev;
      const hasMedia = sourcePath(disk) !== undefined;
      if (cmd.action === 'eject' && !hasMedia) throw virtError('invalid-arg', `The disk device '${dev}' doesn't have media`, { lookup: 'virsh' });
      if (cmd.action === 'insert' && hasMedia) throw virtError('invalid-arg', `The disk device '${dev}' already has media`, { lookup: 'virsh' });
      if (cmd.action === 'insert' && !cmd.source) throw virtError('invalid-arg', 'No source is specified for inserting media', { lookup: 'virsh' });
      const { source: _old, ...rest } = disk;
      const next: DiskModel = cmd.source && cmd.action !== 'eject' ? { ...rest, source: sourceFor(disk, cmd.source) } : rest;
      return updateDisk(s, next, resolveImpact(s, cmd.impact), host);
    }
  }
};

const sourceFor = (disk: DiskModel, path: string): DiskModel['source'] => (disk.type === 'block' ? { dev: path } : { file: path });

/** qemuDomainUpdateDeviceConfig and qemuDomainChangeDiskLive: only a removable disk's media changes on a running guest. */
const updateDisk = (s: DomainAggregate, disk: DiskModel, { live, config }: { live: boolean; config: boolean }, host: HostDiskRequest): DomainEventBody[] => {
  const liveDef = s.definition!;
  const configDef = s.nextDefinition ?? s.definition!;
  const dev = disk.target.dev;
  if (config && !configDef.devices.disks.some((d) => d.target.dev === dev)) throw virtError('invalid-arg', `target ${dev} doesn't exist.`);
  if (live) {
    const orig = liveDef.devices.disks.find((d) => d.target.dev === dev);
    if (!orig) throw virtError('internal-error', `No device with bus '${disk.target.bus ?? ''}' and target '${dev}'`);
    if (orig.device !== 'cdrom' && orig.device !== 'floppy' && sourcePath(orig) !== sourcePath(disk)) {
      throw virtError('operation-unsupported', `disk source path cannot be changed for disk of type '${orig.device}'`);
    }
    return host('update-disk', { disk, persistent: config });
  }
  return configOnly(s, withDisk(configDef, 'update-disk', disk));
};

/** The live definition as the guest is; the next boot keeps the definition it had. */
export const evolveDisksObserved = (s: DomainAggregate, data: { added: DiskModel[]; removed: string[] }): Partial<Pick<DomainAggregate, 'definition' | 'nextDefinition'>> => {
  if (!s.definition) return {};
  let live = s.definition;
  for (const t of data.removed) live = withDisk(live, 'detach-disk', undefined, t);
  for (const d of data.added) live = withDisk(live, 'attach-disk', d);
  return { definition: live, nextDefinition: s.nextDefinition ?? s.definition };
};

/**
 * What a finished live disk change does to the definitions: the running one always changes; the next
 * boot's only when the change was asked for the persistent definition too.
 */
export const diskChange = (
  s: DomainAggregate,
  p: { op: string; disk?: DiskModel; target?: string; persistent?: boolean },
): Partial<Pick<DomainAggregate, 'definition' | 'nextDefinition'>> => {
  if ((p.op !== 'attach-disk' && p.op !== 'detach-disk' && p.op !== 'update-disk') || !s.definition) return {};
  const change = (d: DomainDefinition) => withDisk(d, p.op as 'attach-disk', p.disk, p.target);
  const definition = change(s.definition);
  if (p.persistent) return { definition, nextDefinition: change(s.nextDefinition ?? s.definition) };
  return { definition, nextDefinition: s.nextDefinition ?? s.definition };
};
