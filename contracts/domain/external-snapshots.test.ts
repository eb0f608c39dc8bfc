import { describe, expect, it } from 'vitest';
import { decide, evolve, initialDomainState } from './decider.ts';
import { DomainDefinition } from './definition.ts';
import type { DomainCommand } from './commands.ts';
import type { DomainEventBody, DomainOp } from './events.ts';
import { REQUESTED_EVENT } from './events.ts';
import type { DomainStateName, StateReason } from './state.ts';
import { deciderSpec, type GivenEvent } from '../testing/decider-spec.ts';
import type { SnapshotTask } from './snapshots.ts';
import { defaultOverlay, type SnapshotDiskSpec } from './external-snapshots.ts';

/** External disk-only snapshots through the domain decider: the overlays planned, the definition after, libvirt 9.0's refusals. */

const UUID = '0a7d4c1e-5b2f-4e8a-9c3d-1f2e3d4c5b6a';
const spec = deciderSpec({ decide, evolve, initialState: () => initialDomainState(UUID) }, { aggregateType: 'domain', aggregateId: UUID });
const NOW = new Date('2025-01-01T00:10:00.000Z');
const TIMEOUT = 30_000;
type Ev = GivenEvent<DomainEventBody>;

const kvm = DomainDefinition.parse({
  name: 'web1',
  uuid: UUID,
  type: 'kvm',
  memoryKiB: 1048576,
  vcpus: 1,
  devices: {
    disks: [
      { type: 'file', device: 'disk', driver: { name: 'qemu', type: 'qcow2' }, source: { file: '/img/web.qcow2' }, target: { dev: 'vda', bus: 'virtio' } },
      { type: 'file', device: 'disk', driver: { name: 'qemu', type: 'raw' }, source: { file: '/img/data.v1/blob' }, target: { dev: 'vdb', bus: 'virtio' } },
      { type: 'file', device: 'disk', source: { file: '/img/seed.img' }, target: { dev: 'vdc', bus: 'virtio' }, readonly: true },
      { type: 'file', device: 'cdrom', source: { file: '/img/cd.iso' }, target: { dev: 'hdc', bus: 'ide' } },
      { type: 'file', device: 'disk', driver: { type: 'qcow2' }, source: { file: '/img/scratch.qcow2' }, target: { dev: 'vdd', bus: 'virtio' }, snapshot: 'no' },
    ],
  },
});

const defined = (d = kvm): Ev => ({ type: 'DomainDefined', data: { definition: { ...d, xml: '<domain/>' }, hostId: 'h1', placementEpoch: 1, added: true } });
const requested = (op: DomainOp, taskId: string, snapshot?: SnapshotTask): Ev => ({
  type: REQUESTED_EVENT[op],
  id: taskId,
  data: { hostId: 'h1', placementEpoch: 1, deadline: '2025-01-01T01:00:00.000Z', ...(snapshot ? { snapshot } : {}) },
});
const completed = (op: DomainOp, taskId: string, state: DomainStateName, reason: StateReason): Ev => ({ type: 'DomainOperationCompleted', data: { op, taskId, observed: { state, reason } } });
const running: Ev[] = [defined(), requested('start', 't-start'), completed('start', 't-start', 'running', 'booted')];
const create = (name: string, more: { diskOnly?: boolean; disks?: SnapshotDiskSpec[] } = { diskOnly: true }): DomainCommand => ({ type: 'snapshot-create', name, ...more, timeoutMs: TIMEOUT });
const del = (name: string, more: { children?: boolean; childrenOnly?: boolean; metadata?: boolean } = {}): DomainCommand => ({ type: 'snapshot-delete', name, ...more, timeoutMs: TIMEOUT });

/** The decided request, then the host's report of it: the snapshot as the log records it. */
const taken = (given: Ev[], cmd: DomainCommand, id: string): Ev[] => {
  const ev = spec.given(given).when(cmd, NOW).decided()[0]!;
  return [{ ...ev, id } as Ev, completed(REQUESTED_OP[ev.type]!, id, 'running', 'booted')];
};
const REQUESTED_OP: Record<string, DomainOp> = { DomainSnapshotRequested: 'snapshot-create', DomainSnapshotDeleteRequested: 'snapshot-delete', DomainSnapshotRevertRequested: 'snapshot-revert' };
const taskOf = (given: Ev[], cmd: DomainCommand): SnapshotTask => (spec.given(given).when(cmd, NOW).decided()[0] as { data: { snapshot: SnapshotTask } }).data.snapshot;
const disk = (s: { definition: DomainDefinition | null }, dev: string) => s.definition!.devices.disks.find((d) => d.target.dev === dev)!;

describe('external disk-only snapshots: create', () => {
  it('plans an overlay for each writable disk, named as libvirt names it, and leaves out cdroms, read-only disks and snapshot=\'no\'', () => {
    const t = taskOf(running, create('s1'));
    expect(t.external).toEqual([
      { dev: 'vda', source: '/img/web.qcow2', format: 'qcow2', overlay: '/img/web.s1' },
      { dev: 'vdb', source: '/img/data.v1/blob', format: 'raw', overlay: '/img/data.v1/blob.s1' },
    ]);
    expect(t.record).toMatchObject({ name: 's1', state: 'disk-snapshot' });
    expect(t.record?.disks).toEqual([
      { name: 'vda', snapshot: 'external', file: '/img/web.s1', driverType: 'qcow2' },
      { name: 'vdb', snapshot: 'external', file: '/img/data.v1/blob.s1', driverType: 'qcow2' },
      { name: 'vdc', snapshot: 'no' },
      { name: 'hdc', snapshot: 'no' },
      { name: 'vdd', snapshot: 'no' },
    ]);
    expect(defaultOverlay('/a/b', 'x')).toBe('/a/b.x');
  });

  it('once the host reports it, each disk names its overlay, backed by the image it had; the snapshot keeps the definition it was taken with', () => {
    const s = spec.given([...running, ...taken(running, create('s1'), 't-s1')]).state;
    expect(disk(s, 'vda')).toMatchObject({ type: 'file', source: { file: '/img/web.s1' }, driver: { name: 'qemu', type: 'qcow2' } });
    expect(disk(s, 'vda').backingStore).toEqual({ type: 'file', format: 'qcow2', source: { file: '/img/web.qcow2' }, backingStore: {} });
    expect(disk(s, 'vdb')).toMatchObject({ source: { file: '/img/data.v1/blob.s1' }, driver: { type: 'qcow2' }, backingStore: { format: 'raw' } });
    expect(disk(s, 'hdc').source?.file).toBe('/img/cd.iso');
    // The stored document, which dumpxml shows, names the overlays too.
    expect(s.definition?.xml).toContain("<source file='/img/web.s1'/>");
    expect(s.definition?.xml).toContain("<backingStore type='file'>");
    expect(s.snapshots?.[0]?.definition.devices.disks[0]?.source?.file).toBe('/img/web.qcow2');
    expect(s.currentSnapshot).toBe('s1');
  });

  it('a failed create changes no disk; a shut off domain is planned the same way', () => {
    const ev = spec.given(running).when(create('s1'), NOW).decided()[0]!;
    const s = spec.given([...running, { ...ev, id: 't-f' } as Ev, { type: 'DomainOperationFailed', data: { op: 'snapshot-create', taskId: 't-f', error: { code: 'operation-unsupported', message: 'exists' } } }]).state;
    expect(disk(s, 'vda').source?.file).toBe('/img/web.qcow2');
    expect(s.snapshots).toBeUndefined();
    expect(taskOf([defined()], create('off')).external?.map((x) => x.overlay)).toEqual(['/img/web.off', '/img/data.v1/blob.off']);
  });

  it('takes <disks> from the document (or --diskspec): snapshot=\'no\', a file of its own, external without --disk-only when shut off', () => {
    const t = taskOf(running, create('s2', { diskOnly: true, disks: [{ name: 'vda', snapshot: 'no' }, { name: 'vdb', snapshot: 'external', file: '/other/b.ovl' }] }));
    expect(t.external).toEqual([{ dev: 'vdb', source: '/img/data.v1/blob', format: 'raw', overlay: '/other/b.ovl' }]);
    const off = taskOf([defined()], create('s3', { disks: [{ name: 'vda', snapshot: 'external' }] }));
    expect(off.record?.state).toBe('disk-snapshot');
  });

  it("refuses with libvirt's words: an unknown disk, no disk selected, two disks on one file, memory of a running guest", () => {
    spec.given(running).when(create('x', { diskOnly: true, disks: [{ name: 'sdz', snapshot: 'external' }] }), NOW).thenThrows('config-unsupported', "no disk named 'sdz'");
    spec.given(running).when(create('x', { diskOnly: true, disks: [{ name: 'vda', snapshot: 'no' }, { name: 'vdb', snapshot: 'no' }] }), NOW)
      .thenThrows('config-unsupported', 'disk-only snapshots require at least one disk to be selected for snapshot');
    spec.given(running).when(create('x', { diskOnly: true, disks: [{ name: 'vda', file: '/o/x', snapshot: 'external' }, { name: 'vdb', file: '/o/x', snapshot: 'external' }] }), NOW)
      .thenThrows('config-unsupported', "cannot generate external snapshot name for disk 'vdb': collision with disk 'vda'");
    spec.given(running).when(create('x', { diskOnly: true, disks: [{ name: 'vda', file: 'rel/x', snapshot: 'external' }] }), NOW).thenThrows('config-unsupported', /must be an absolute path/);
    for (const file of ['/img/../etc/x', '/img//x', '/img/./x', '/img/x\n']) {
      spec.given(running).when(create('x', { diskOnly: true, disks: [{ name: 'vda', file, snapshot: 'external' }] }), NOW).thenThrows('invalid-arg', /is not a normalised absolute path/);
    }
    spec.given(running).when(create('x', { disks: [{ name: 'vda', snapshot: 'external' }] }), NOW).thenThrows('config-unsupported', /use --disk-only/);
    spec.given(running).when(create('x', { diskOnly: true, disks: [{ name: 'vda', snapshot: 'internal' }] }), NOW)
      .thenThrows('config-unsupported', 'mixing internal and external targets for a snapshot is not yet supported');
  });
});

describe('external disk-only snapshots: revert and delete', () => {
  const one = [...running, ...taken(running, create('s1'), 't-s1')];
  const two = [...one, ...taken(one, create('s2'), 't-s2')];

  it("revert is refused as libvirt 9.0 refuses it", () => {
    spec.given(one).when({ type: 'snapshot-revert', name: 's1', timeoutMs: TIMEOUT }, NOW).thenThrows('config-unsupported', 'revert to external snapshot not supported yet');
  });

  it('delete merges each overlay into the image it was put on, and the disks name those images again', () => {
    const t = taskOf(one, del('s1'));
    expect(t).toMatchObject({ name: 's1', names: ['s1'] });
    expect(t.external).toEqual([
      { dev: 'vda', source: '/img/web.qcow2', format: 'qcow2', overlay: '/img/web.s1' },
      { dev: 'vdb', source: '/img/data.v1/blob', format: 'raw', overlay: '/img/data.v1/blob.s1' },
    ]);
    const s = spec.given([...one, ...taken(one, del('s1'), 't-d1')]).state;
    expect(disk(s, 'vda')).toEqual(kvm.devices.disks[0]);
    expect(disk(s, 'vdb')).toEqual(kvm.devices.disks[1]);
    expect(s.snapshots).toBeUndefined();
    expect(s.currentSnapshot).toBeUndefined();
  });

  it('a chain of two: the last merges into the first one\'s overlay; the first cannot go before it', () => {
    const s2 = spec.given(two).state;
    expect(disk(s2, 'vda').source?.file).toBe('/img/web.s2');
    expect(disk(s2, 'vda').backingStore?.source?.file).toBe('/img/web.s1');
    expect(taskOf(two, del('s2')).external?.[0]).toEqual({ dev: 'vda', source: '/img/web.s1', format: 'qcow2', overlay: '/img/web.s2' });
    spec.given(two).when(del('s1'), NOW).thenThrows('operation-unsupported', /'s1' that is not the last one in its chain is not supported: delete 's2' first/);
    const after = spec.given([...two, ...taken(two, del('s2'), 't-d2')]).state;
    expect(disk(after, 'vda').source?.file).toBe('/img/web.s1');
    expect(after.currentSnapshot).toBe('s1');
  });

  it("refuses what libvirt 9.0 refuses: children with it, several children, an internal child", () => {
    spec.given(two).when(del('s1', { children: true }), NOW).thenThrows('config-unsupported', 'deletion of external disk snapshots with children not supported');
    spec.given(one).when(del('s1', { childrenOnly: true }), NOW).thenThrows('config-unsupported', 'deletion of external disk snapshots with children not supported');
    const internalChild = [...one, ...taken(one, { type: 'snapshot-create', name: 'i1', timeoutMs: TIMEOUT }, 't-i1')];
    spec.given(internalChild).when(del('s1'), NOW).thenThrows('config-unsupported', 'deletion of external disk snapshot with internal children disk snapshots not supported');
    const forked = [...two, { type: 'DomainSnapshotCurrentSet', data: { name: 's1' } } as Ev];
    const three = [...forked, ...taken(forked, create('s3', { diskOnly: true, disks: [{ name: 'vda', file: '/img/web.s3', snapshot: 'external' }, { name: 'vdb', snapshot: 'no' }] }), 't-s3')];
    spec.given(three).when(del('s1'), NOW).thenThrows('config-unsupported', 'deletion of external disk snapshot with multiple children snapshots not supported');
  });

  it('an internal snapshot below an overlay can be neither reverted to nor deleted until the overlay is merged', () => {
    const internal = [...running, ...taken(running, { type: 'snapshot-create', name: 'i0', timeoutMs: TIMEOUT }, 't-i0')];
    const over = [...internal, ...taken(internal, create('s1'), 't-s1')];
    spec.given(over).when({ type: 'snapshot-revert', name: 'i0', timeoutMs: TIMEOUT }, NOW).thenThrows('operation-unsupported', /internal snapshot 'i0' is held in \/img\/web.qcow2, which an external snapshot has since put below an overlay/);
    spec.given(over).when(del('i0'), NOW).thenThrows('operation-unsupported', /delete that external snapshot first/);
    expect(spec.given(over).when(del('i0', { metadata: true }), NOW).decided()).toEqual([{ type: 'DomainSnapshotsForgotten', data: { names: ['i0'] } }]);
    const merged = [...over, ...taken(over, del('s1'), 't-d1')];
    expect(taskOf(merged, del('i0'))).toMatchObject({ name: 'i0', names: ['i0'] });
  });

  it('--metadata forgets it and leaves every disk on its overlay, as libvirt does', () => {
    expect(spec.given(one).when(del('s1', { metadata: true }), NOW).decided()).toEqual([{ type: 'DomainSnapshotsForgotten', data: { names: ['s1'] } }]);
    const s = spec.given([...one, { type: 'DomainSnapshotsForgotten', data: { names: ['s1'] } }]).state;
    expect(disk(s, 'vda').source?.file).toBe('/img/web.s1');
    expect(s.snapshots).toBeUndefined();
  });
});
