import { z } from 'zod';
import type { DiskModel, DomainDefinition } from './definition.ts';
import { virtError } from '../errors.ts';
import { formatDomainXml } from '../xml/domain.ts';
import type { SnapshotRecord } from './snapshots.ts';

/**
 * External disk-only snapshots (virsh snapshot-create --disk-only), as libvirt 9.0's QEMU driver
 * takes and deletes them. Each selected disk gets a new qcow2 overlay whose backing file is the
 * image it had; the domain's definition then names the overlay, and the snapshot is the image left
 * below it. Deleting the snapshot merges the overlay back (block commit) and points the disk at its
 * old image again. The decider settles every path here, so the task the host runs names each file,
 * and the log says which image each disk uses once the host reports.
 */

/** One disk's overlay: `overlay` goes on top of `source` (a `format` image); a delete merges it back. */
export const ExternalDisk = z.object({
  dev: z.string().min(1),
  source: z.string().min(1),
  format: z.string().min(1),
  overlay: z.string().min(1),
});
export type ExternalDisk = z.infer<typeof ExternalDisk>;

/** A `<disk>` of a <domainsnapshot> document, or a virsh --diskspec. */
export const SnapshotDiskSpec = z.object({
  name: z.string().min(1).max(64),
  snapshot: z.enum(['external', 'internal', 'no']).optional(),
  file: z.string().min(1).max(4096).optional(),
});
export type SnapshotDiskSpec = z.infer<typeof SnapshotDiskSpec>;

/** What a snapshot's <disks> says of each disk: snapshot-dumpxml shows it. */
export const SnapshotDiskRecord = z.object({
  name: z.string().min(1),
  snapshot: z.enum(['external', 'no']),
  file: z.string().optional(),
  driverType: z.string().optional(),
});
export type SnapshotDiskRecord = z.infer<typeof SnapshotDiskRecord>;

const unsupportedConfig = (msg: string) => virtError('config-unsupported', msg);

/** virDomainSnapshotDefAssignExternalNames: the source with its extension replaced by the snapshot's name. */
export const defaultOverlay = (source: string, snapshot: string): string => {
  const dot = source.lastIndexOf('.');
  const base = dot >= 0 && !source.slice(dot).includes('/') ? source.slice(0, dot) : source;
  return `${base}.${snapshot}`;
};

const sourceOf = (d: DiskModel): string | undefined => (d.type === 'block' ? d.source?.dev : d.type === 'file' ? d.source?.file : undefined);

/**
 * virDomainSnapshotAlignDisks with external as the default, and qemuSnapshotPrepare's checks: every
 * writable disk gets an overlay unless the document or the disk says snapshot='no'; read-only disks
 * and cdroms are left out.
 */
export const planExternal = (def: DomainDefinition, name: string, specs: readonly SnapshotDiskSpec[] = []): { external: ExternalDisk[]; disks: SnapshotDiskRecord[] } => {
  const byName = new Map<string, SnapshotDiskSpec>();
  for (const s of specs) {
    if (!def.devices.disks.some((d) => d.target.dev === s.name)) throw unsupportedConfig(`no disk named '${s.name}'`);
    if (byName.has(s.name)) throw unsupportedConfig(`disk '${s.name}' specified twice`);
    byName.set(s.name, s);
  }
  const external: ExternalDisk[] = [];
  const disks: SnapshotDiskRecord[] = [];
  for (const d of def.devices.disks) {
    const spec = byName.get(d.target.dev);
    const dev = d.target.dev;
    const skip = spec?.snapshot === 'no' || (!spec?.snapshot && (d.snapshot === 'no' || d.readonly || d.device === 'cdrom' || d.device === 'floppy'));
    if (skip) {
      disks.push({ name: dev, snapshot: 'no' });
      continue;
    }
    if (spec?.snapshot === 'internal' || (!spec?.snapshot && d.snapshot === 'internal')) {
      throw unsupportedConfig('mixing internal and external targets for a snapshot is not yet supported');
    }
    const source = sourceOf(d);
    if (!source) throw unsupportedConfig(`cannot generate external snapshot name for disk '${dev}' without source`);
    if (d.type !== 'file' && !spec?.file) throw unsupportedConfig(`cannot generate external snapshot name for disk '${dev}' on a '${d.type}' device`);
    const overlay = spec?.file ?? defaultOverlay(source, name);
    if (!overlay.startsWith('/')) throw unsupportedConfig(`external snapshot file for disk ${dev} must be an absolute path: ${overlay}`);
    // What the path says is what it is before the host looks at any link (as for saved images, SECURITY.md).
    // eslint-disable-next-line no-control-regex
    const problem = /[\u0000-\u001f\u007f]/.test(overlay) || overlay.slice(1).split('/').some((x) => x === '' || x === '.' || x === '..');
    if (problem) throw virtError('invalid-arg', `external snapshot file for disk ${dev} is not a normalised absolute path: ${JSON.stringify(overlay)}`);
    if (overlay === source) throw unsupportedConfig(`external snapshot file for disk ${dev} is the disk's own image: ${overlay}`);
    const clash = external.find((x) => x.overlay === overlay || x.source === overlay);
    if (clash) throw unsupportedConfig(`cannot generate external snapshot name for disk '${dev}': collision with disk '${clash.dev}'`);
    external.push({ dev, source, format: d.driver?.type ?? 'raw', overlay });
    disks.push({ name: dev, snapshot: 'external', file: overlay, driverType: 'qcow2' });
  }
  if (external.length === 0) throw unsupportedConfig('disk-only snapshots require at least one disk to be selected for snapshot');
  return { external, disks };
};

export const isExternal = (snap: Pick<SnapshotRecord, 'state' | 'disks'>): boolean =>
  snap.state === 'disk-snapshot' || (snap.disks ?? []).some((d) => d.snapshot === 'external');

/**
 * qemuSnapshotDeleteValidate (libvirt 9.0) for an external snapshot, with its words; what passes is
 * the merge of each overlay into the image the snapshot's definition had for that disk. Only the
 * snapshot whose overlays are the disks' active images can be merged: a commit of an image below
 * another snapshot's overlay is not offered.
 */
export const planExternalDelete = (
  list: readonly SnapshotRecord[],
  snap: SnapshotRecord,
  current: DomainDefinition,
  withChildren: boolean,
): ExternalDisk[] => {
  if (withChildren) throw unsupportedConfig('deletion of external disk snapshots with children not supported');
  const children = list.filter((x) => x.parent === snap.name);
  if (children.length > 1) throw unsupportedConfig('deletion of external disk snapshot with multiple children snapshots not supported');
  if (children.length === 1 && !isExternal(children[0]!)) {
    throw unsupportedConfig('deletion of external disk snapshot with internal children disk snapshots not supported');
  }
  if (children.length === 1) {
    throw virtError('operation-unsupported', `deletion of external disk snapshot '${snap.name}' that is not the last one in its chain is not supported: delete '${children[0]!.name}' first`);
  }
  const out: ExternalDisk[] = [];
  for (const d of snap.disks ?? []) {
    if (d.snapshot !== 'external' || !d.file) continue;
    const now = current.devices.disks.find((x) => x.target.dev === d.name);
    if (!now || now.source?.file !== d.file) {
      throw virtError('operation-unsupported', `snapshot '${snap.name}' disk '${d.name}' is not the disk's current image ${d.file}: its data cannot be merged`);
    }
    const then = snap.definition.devices.disks.find((x) => x.target.dev === d.name);
    const source = then ? sourceOf(then) : undefined;
    if (!then || !source) throw virtError('operation-failed', `snapshot '${snap.name}' does not say which image disk '${d.name}' had`);
    out.push({ dev: d.name, source, format: then.driver?.type ?? 'raw', overlay: d.file });
  }
  return out;
};

/** The stored document, which dumpxml shows, is written anew with the disks as they now are. */
const changeDisks = (def: DomainDefinition, change: (d: DiskModel) => DiskModel): DomainDefinition => {
  const next = { ...def, devices: { ...def.devices, disks: def.devices.disks.map(change) } };
  return def.xml ? { ...next, xml: formatDomainXml(next) } : next;
};

/** After a create: each disk names its overlay, with the image it had as its <backingStore>. */
export const withOverlays = (def: DomainDefinition, external: readonly ExternalDisk[]): DomainDefinition =>
  changeDisks(def, (d) => {
    const x = external.find((e) => e.dev === d.target.dev);
    if (!x || sourceOf(d) !== x.source) return d;
    const { backingStore, source, type } = d;
    return {
      ...d,
      type: 'file',
      source: { file: x.overlay },
      driver: { ...d.driver, type: 'qcow2' },
      backingStore: { type, format: x.format, ...(source ? { source } : {}), backingStore: backingStore ?? {} },
    };
  });

/** After a delete: each merged disk names the image it had when the snapshot was taken, as it was then. */
export const withoutOverlays = (def: DomainDefinition, external: readonly ExternalDisk[], then: DomainDefinition): DomainDefinition =>
  changeDisks(def, (d) => {
    const x = external.find((e) => e.dev === d.target.dev);
    const old = then.devices.disks.find((o) => o.target.dev === d.target.dev);
    if (!x || !old || d.source?.file !== x.overlay) return d;
    const { backingStore: _b, ...rest } = d;
    return {
      ...rest,
      type: old.type,
      ...(old.source ? { source: old.source } : {}),
      driver: { ...d.driver, type: old.driver?.type ?? 'raw' },
      ...(old.backingStore ? { backingStore: old.backingStore } : {}),
    };
  });

/** A running guest's own record after a merge: each merged disk back on the image below its overlay. */
export const withSources = (def: DomainDefinition, external: readonly ExternalDisk[]): DomainDefinition =>
  changeDisks(def, (d) => {
    const x = external.find((e) => e.dev === d.target.dev);
    if (!x || d.source?.file !== x.overlay) return d;
    const { backingStore, ...rest } = d;
    return { ...rest, source: backingStore?.source ?? { file: x.source }, driver: { ...d.driver, type: x.format }, ...(backingStore?.type ? { type: backingStore.type as DiskModel['type'] } : {}), ...(backingStore?.backingStore?.source ? { backingStore: backingStore.backingStore } : {}) };
  });

/**
 * An internal snapshot lives in the images its disks had when it was taken. Once an external
 * snapshot put an overlay on one of them, qemu-img and savevm/loadvm/delvm see the overlay, not the
 * image holding the snapshot: reverting to it or deleting its data is refused rather than done on
 * the wrong image (or, for a delete, silently left in the image below).
 */
export const checkInternalImages = (snap: SnapshotRecord, current: DomainDefinition): void => {
  if (isExternal(snap)) return;
  const below = new Set<string>();
  for (const d of current.devices.disks) {
    for (let b = d.backingStore; b; b = b.backingStore) {
      const f = b.source?.file ?? b.source?.dev;
      if (f) below.add(f);
    }
  }
  for (const d of snap.definition.devices.disks) {
    const f = sourceOf(d);
    if (f && below.has(f)) {
      throw virtError('operation-unsupported', `internal snapshot '${snap.name}' is held in ${f}, which an external snapshot has since put below an overlay: delete that external snapshot first`);
    }
  }
};
