import { z } from 'zod';
import { DomainDefinition } from './definition.ts';
import { DomainStateName, isActive } from './state.ts';
import { virtError } from '../errors.ts';
import type { DomainAggregate } from './decider.ts';
import type { DomainEventBody } from './events.ts';
import type { Envelope } from '../envelope.ts';
import { CommandHeader, DomainRef } from './commands.ts';
import { ExternalDisk, SnapshotDiskRecord, SnapshotDiskSpec, checkInternalImages, isExternal, planExternal, planExternalDelete, withOverlays, withoutOverlays } from './external-snapshots.ts';

/**
 * The domain decider's section for snapshots (virsh snapshot-*). The log keeps the metadata libvirt
 * keeps in its snapshot XML files: the tree, which snapshot is current, each one's state, creation
 * time and the domain's definition when it was taken. The disk and memory work is a host operation
 * (snapshot-create, snapshot-revert, snapshot-delete): a snapshot enters the tree only once its host
 * reports it taken, and leaves it once its host reports it deleted, so the tree never names data that
 * is not on the host. Only `--metadata` deletes (and undefine --snapshots-metadata) change the tree
 * without the host, as libvirt's do.
 */

/** libvirt refuses '/' in a snapshot name (it names a file); control characters would break virsh's table. */
export const SnapshotName = z
  .string()
  .min(1)
  .max(255)
  .refine((s) => !s.includes('/'), { message: "snapshot name may not contain '/'" })
  // eslint-disable-next-line no-control-regex
  .refine((s) => !/[\u0000-\u001f\u007f]/.test(s), { message: 'snapshot name may not contain control characters' });

export const SnapshotRecord = z.object({
  name: SnapshotName,
  description: z.string().max(65536).optional(),
  /**
   * The domain's state when it was taken: a running or paused one carries the guest's memory too.
   * `disk-snapshot`: an external disk-only snapshot (external-snapshots.ts), the disks alone.
   */
  state: z.union([DomainStateName, z.literal('disk-snapshot')]),
  /** Seconds since the epoch, as libvirt's <creationTime>. */
  creationTime: z.number().int().nonnegative(),
  parent: z.string().optional(),
  /** The domain's definition when it was taken: snapshot-dumpxml shows it, and a revert restores it. */
  definition: DomainDefinition,
  /** An external snapshot's disks: the overlay each got, or none (snapshot='no'). */
  disks: z.array(SnapshotDiskRecord).optional(),
});
export type SnapshotRecord = z.infer<typeof SnapshotRecord>;

/**
 * What a host operation on snapshots carries in its intent, and so in its task. A snapshot's domain
 * definition is not in it: a pending operation keeps the domain's definition as it is, so the
 * completion takes it from the domain then.
 */
export const SnapshotTask = z.object({
  name: SnapshotName,
  /** snapshot-create: the record the log keeps once the host has taken it. */
  record: SnapshotRecord.omit({ definition: true }).optional(),
  /** snapshot-revert: the state the guest is left in, and whether the snapshot holds its memory. */
  target: DomainStateName.optional(),
  withMemory: z.boolean().optional(),
  /** snapshot-delete: every snapshot whose data goes, children before parents. */
  names: z.array(SnapshotName).optional(),
  /** snapshot-delete --children-only: the named snapshot stays, its descendants go. */
  childrenOnly: z.boolean().optional(),
  /** An external snapshot: the overlays a create puts on the disks, or a delete merges back. */
  external: z.array(ExternalDisk).optional(),
});
export type SnapshotTask = z.infer<typeof SnapshotTask>;

export type SnapshotCommand =
  /** `diskOnly`: virsh --disk-only, an external snapshot of the disks alone; `disks`: its <disks> or --diskspec. */
  | { type: 'snapshot-create'; name?: string; description?: string; diskOnly?: boolean; disks?: SnapshotDiskSpec[]; timeoutMs: number }
  /** `start`: virsh --running / --paused; neither leaves the guest as the snapshot was. */
  | { type: 'snapshot-revert'; name?: string; running?: boolean; paused?: boolean; timeoutMs: number }
  | { type: 'snapshot-delete'; name?: string; children?: boolean; childrenOnly?: boolean; metadata?: boolean; timeoutMs: number }
  /** virsh snapshot-current <name>: metadata only, as libvirt redefines the snapshot as current. */
  | { type: 'snapshot-set-current'; name: string };

/** The snapshot metadata one domain keeps, bounded so that its view stays well inside one message. */
export const MAX_SNAPSHOT_METADATA_BYTES = 256 * 1024;

export type SnapshotOp = 'snapshot-create' | 'snapshot-revert' | 'snapshot-delete';

/**
 * The model alone: the stored document it was parsed from could be a megabyte, and the view carries
 * every snapshot's definition.
 */
const modelOf = (d: DomainDefinition): DomainDefinition => {
  const { xml: _xml, ...model } = d;
  return model;
};

const noSnapshot = (name: string) => virtError('no-domain-snapshot', `no domain snapshot with matching name '${name}'`);
const noCurrent = () => virtError('no-domain-snapshot', 'the domain does not have a current snapshot');

export const snapshotsOf = (s: Pick<DomainAggregate, 'snapshots'>): SnapshotRecord[] => s.snapshots ?? [];

export const findSnapshot = (s: Pick<DomainAggregate, 'snapshots'>, name: string): SnapshotRecord | undefined => snapshotsOf(s).find((x) => x.name === name);

/** Every descendant of `name`, deepest first, so a host deletes children before their parents. */
export const descendantsOf = (list: readonly SnapshotRecord[], name: string): string[] => {
  const out: string[] = [];
  const walk = (n: string): void => {
    for (const c of list.filter((x) => x.parent === n)) {
      walk(c.name);
      out.push(c.name);
    }
  };
  walk(name);
  return out;
};

const resolve = (s: DomainAggregate, name: string | undefined): SnapshotRecord => {
  if (name === undefined) {
    if (!s.currentSnapshot) throw noCurrent();
    return findSnapshot(s, s.currentSnapshot)!;
  }
  const found = findSnapshot(s, name);
  if (!found) throw noSnapshot(name);
  return found;
};

/** libvirt's test driver keeps snapshot XML only: it takes no external (disk-only) snapshot and deletes no metadata alone. */
const unsupportedFlags = (flags: number, fn: string) => virtError('invalid-arg', `unsupported flags (0x${flags.toString(16)}) in function ${fn}`);

/**
 * The checks libvirt makes before it touches a disk, with its words; what passes becomes an intent
 * for the domain's host (`operation`), which a running operation blocks as any other.
 */
export const decideSnapshot = (
  cmd: SnapshotCommand,
  s: DomainAggregate,
  now: Date,
  onTest: boolean,
  operation: (op: SnapshotOp, snapshot: SnapshotTask) => DomainEventBody[],
): DomainEventBody[] => {
  switch (cmd.type) {
    case 'snapshot-create': {
      // virsh snapshot-create-as without a name: libvirt names it by the creation time.
      const creationTime = Math.floor(now.getTime() / 1000);
      const name = cmd.name ?? String(creationTime);
      // libvirt's test driver takes no external snapshot (and reads no <disks>).
      if (cmd.diskOnly && onTest) throw unsupportedFlags(0x10, 'testDomainSnapshotCreateXML');
      const wantsExternal = !onTest && (cmd.disks ?? []).some((d) => d.snapshot === 'external');
      if (wantsExternal && !cmd.diskOnly && isActive(s.observed.state)) {
        throw virtError('config-unsupported', 'external snapshots of a running domain with its memory are not supported: use --disk-only');
      }
      const diskOnly = !onTest && (cmd.diskOnly || wantsExternal);
      if (findSnapshot(s, name)) throw virtError('operation-failed', `domain moment ${name} already exists`);
      const plan = diskOnly ? planExternal(s.definition!, name, cmd.disks) : undefined;
      const record = {
        name,
        ...(cmd.description ? { description: cmd.description } : {}),
        state: plan ? ('disk-snapshot' as const) : s.observed.state,
        creationTime,
        ...(s.currentSnapshot ? { parent: s.currentSnapshot } : {}),
        ...(plan ? { disks: plan.disks } : {}),
      };
      const size = Buffer.byteLength(JSON.stringify([...snapshotsOf(s), { ...record, definition: modelOf(s.definition!) }]), 'utf8');
      if (size > MAX_SNAPSHOT_METADATA_BYTES) {
        throw virtError('operation-failed', `domain '${s.name}' has ${snapshotsOf(s).length} snapshots whose metadata would exceed ${MAX_SNAPSHOT_METADATA_BYTES / 1024} KiB with this one: delete some first`);
      }
      return operation('snapshot-create', { name, record, ...(plan ? { external: plan.external } : {}) });
    }
    case 'snapshot-revert': {
      const snap = resolve(s, cmd.name);
      // qemuSnapshotRevertValidate (libvirt 9.0).
      if (!onTest && isExternal(snap)) throw virtError('config-unsupported', 'revert to external snapshot not supported yet');
      if (!onTest) checkInternalImages(snap, s.definition!);
      if (cmd.running && cmd.paused) {
        throw virtError('invalid-arg', "Flags 'VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING' and 'VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED' are mutually exclusive");
      }
      const withMemory = snap.state !== 'disk-snapshot' && isActive(snap.state);
      const asked = cmd.running ? 'running' : cmd.paused ? 'paused' : undefined;
      let target: SnapshotTask['target'];
      if (withMemory) target = asked ?? (snap.state === 'paused' ? 'paused' : 'running');
      // The test driver leaves an inactive snapshot's domain shut off whatever the flags say; the
      // QEMU driver starts it from the reverted disks when asked to.
      else target = onTest ? 'shutoff' : (asked ?? 'shutoff');
      return operation('snapshot-revert', { name: snap.name, target, withMemory });
    }
    case 'snapshot-delete': {
      const snap = resolve(s, cmd.name);
      if (cmd.metadata && onTest) throw unsupportedFlags(0x2, 'testDomainSnapshotDelete');
      const below = cmd.children || cmd.childrenOnly ? descendantsOf(snapshotsOf(s), snap.name) : [];
      const names = cmd.childrenOnly ? below : [...below, snap.name];
      if (cmd.metadata) return names.length ? [{ type: 'DomainSnapshotsForgotten', data: { names } }] : [];
      const list = snapshotsOf(s);
      // libvirt 9.0 refuses --children and --children-only for an external snapshot, even without children.
      if (!onTest && (isExternal(snap) || names.some((n) => isExternal(findSnapshot(s, n)!)))) {
        const external = planExternalDelete(list, snap, s.definition!, (cmd.children || cmd.childrenOnly) === true);
        return operation('snapshot-delete', { name: snap.name, names, external });
      }
      // Nothing below to delete: libvirt says it deleted the children all the same.
      if (names.length === 0) return [];
      if (!onTest) for (const n of names) checkInternalImages(findSnapshot(s, n)!, s.definition!);
      return operation('snapshot-delete', { name: snap.name, names, ...(cmd.childrenOnly ? { childrenOnly: true } : {}) });
    }
    case 'snapshot-set-current': {
      const snap = resolve(s, cmd.name);
      return s.currentSnapshot === snap.name ? [] : [{ type: 'DomainSnapshotCurrentSet', data: { name: snap.name } }];
    }
  }
};

/** libvirt refuses to undefine an inactive domain that has snapshots, unless their metadata goes too. */
export const undefineSnapshotEvents = (s: DomainAggregate, active: boolean, dropMetadata: boolean): DomainEventBody[] => {
  const list = snapshotsOf(s);
  if (list.length === 0) return [];
  if (dropMetadata) return [{ type: 'DomainSnapshotsForgotten', data: { names: list.map((x) => x.name) } }];
  if (active) return [];
  throw virtError('operation-invalid', `cannot delete inactive domain with ${list.length} snapshots`, { domain: s.name });
};

/**
 * The tree without `names`: each survivor whose parent goes takes that parent's parent, as
 * libvirt's reparenting does; a current snapshot that goes leaves its nearest surviving ancestor
 * current (the named snapshot, for --children-only), or none.
 */
const without = (s: DomainAggregate, names: readonly string[]): Pick<DomainAggregate, 'snapshots' | 'currentSnapshot'> => {
  const gone = new Set(names);
  const list = snapshotsOf(s);
  const byName = new Map(list.map((x) => [x.name, x]));
  const survivor = (n: string | undefined): string | undefined => {
    let cur = n;
    while (cur !== undefined && gone.has(cur)) cur = byName.get(cur)?.parent;
    return cur;
  };
  const snapshots = list
    .filter((x) => !gone.has(x.name))
    .map((x) => {
      const parent = survivor(x.parent);
      const { parent: _p, ...rest } = x;
      return parent ? { ...rest, parent } : rest;
    });
  const current = s.currentSnapshot && gone.has(s.currentSnapshot) ? survivor(s.currentSnapshot) : s.currentSnapshot;
  return { snapshots, ...(current ? { currentSnapshot: current } : {}) };
};

const setTree = (after: DomainAggregate, tree: Pick<DomainAggregate, 'snapshots' | 'currentSnapshot'>): DomainAggregate => {
  const { snapshots: _s, currentSnapshot: _c, ...rest } = after;
  return { ...rest, ...(tree.snapshots?.length ? { snapshots: tree.snapshots } : {}), ...(tree.currentSnapshot ? { currentSnapshot: tree.currentSnapshot } : {}) };
};

/**
 * The tree after one event. Only the completion of the pending operation changes it, so a late or
 * repeated report (which the decider turns into nothing) cannot add or drop a snapshot twice.
 */
export const evolveSnapshots = (before: DomainAggregate, after: DomainAggregate, e: Envelope<DomainEventBody>): DomainAggregate => {
  if (!after.exists) return setTree(after, {});
  const tree = { snapshots: before.exists ? before.snapshots : undefined, currentSnapshot: before.exists ? before.currentSnapshot : undefined };
  switch (e.type) {
    case 'DomainSnapshotsForgotten':
      return setTree(after, without(before, e.data.names));
    case 'DomainSnapshotCurrentSet':
      return setTree(after, { ...tree, ...(findSnapshot(before, e.data.name) ? { currentSnapshot: e.data.name } : {}) });
    case 'DomainOperationCompleted': {
      const p = before.pending;
      if (!p || p.taskId !== e.data.taskId || !p.snapshot) return setTree(after, tree);
      if (p.op === 'snapshot-create' && p.snapshot.record && before.definition) {
        const record: SnapshotRecord = { ...p.snapshot.record, definition: modelOf(before.definition) };
        // An external snapshot leaves each disk on its overlay: the next start opens that too.
        const ext = p.snapshot.external;
        const moved = ext && after.definition ? { ...after, definition: withOverlays(after.definition, ext), nextDefinition: after.nextDefinition ? withOverlays(after.nextDefinition, ext) : null } : after;
        return setTree(moved, { snapshots: [...snapshotsOf(before), record], currentSnapshot: p.snapshot.name });
      }
      if (p.op === 'snapshot-revert') {
        // A revert brings back the definition the snapshot was taken with, as libvirt's does.
        const snap = findSnapshot(before, p.snapshot.name);
        const reverted = snap ? { ...after, definition: snap.definition, nextDefinition: null } : after;
        return setTree(reverted, { ...tree, currentSnapshot: p.snapshot.name });
      }
      if (p.op === 'snapshot-delete' && p.snapshot.names) {
        // A merged external snapshot leaves each disk on the image it had when it was taken.
        const ext = p.snapshot.external;
        const then = findSnapshot(before, p.snapshot.name)?.definition;
        const back = (d: DomainDefinition) => (ext && then ? withoutOverlays(d, ext, then) : d);
        const moved = after.definition ? { ...after, definition: back(after.definition), nextDefinition: after.nextDefinition ? back(after.nextDefinition) : null } : after;
        return setTree(moved, without(before, p.snapshot.names));
      }
      return setTree(after, tree);
    }
    default:
      return setTree(after, tree);
  }
};

const Timeout = { timeoutSeconds: z.number().positive().max(3600).optional() };

/** virsh snapshot-create-as (name, description) or snapshot-create (a <domainsnapshot> document). */
export const SnapshotCreateRequest = CommandHeader.extend({
  domain: DomainRef,
  name: SnapshotName.optional(),
  description: z.string().max(65536).optional(),
  /** virsh --disk-only: an external snapshot of the disks alone, each on a new qcow2 overlay. */
  diskOnly: z.boolean().optional(),
  /** virsh --diskspec: which disks get an overlay (snapshot='external'), with which file, or none. */
  disks: z.array(SnapshotDiskSpec).max(64).optional(),
  xml: z.string().optional(),
  ...Timeout,
}).refine((r) => r.xml === undefined || (r.name === undefined && r.description === undefined), { message: 'give either "xml" or "name"/"description", not both' });
export type SnapshotCreateRequest = z.infer<typeof SnapshotCreateRequest>;

/** virsh snapshot-revert: a snapshot by name, or the current one when none is named. */
export const SnapshotRevertRequest = CommandHeader.extend({
  domain: DomainRef,
  name: SnapshotName.optional(),
  running: z.boolean().optional(),
  paused: z.boolean().optional(),
  ...Timeout,
});
export type SnapshotRevertRequest = z.infer<typeof SnapshotRevertRequest>;

/** virsh snapshot-current <name>: that snapshot becomes the current one. */
export const SnapshotCurrentRequest = CommandHeader.extend({ domain: DomainRef, name: SnapshotName });
export type SnapshotCurrentRequest = z.infer<typeof SnapshotCurrentRequest>;

/** virsh snapshot-delete: a snapshot by name, or the current one; with its children, only them, or only its metadata. */
export const SnapshotDeleteRequest = CommandHeader.extend({
  domain: DomainRef,
  name: SnapshotName.optional(),
  children: z.boolean().optional(),
  childrenOnly: z.boolean().optional(),
  metadata: z.boolean().optional(),
  ...Timeout,
}).refine((r) => !(r.children && r.childrenOnly), { message: 'give at most one of "children" and "childrenOnly"' });
export type SnapshotDeleteRequest = z.infer<typeof SnapshotDeleteRequest>;
