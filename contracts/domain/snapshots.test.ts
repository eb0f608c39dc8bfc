import { describe, expect, it } from 'vitest';
import { decide, evolve, initialDomainState } from './decider.ts';
import { DomainDefinition } from './definition.ts';
import type { DomainCommand } from './commands.ts';
import type { DomainEventBody, DomainOp } from './events.ts';
import { REQUESTED_EVENT } from './events.ts';
import type { DomainStateName, StateReason } from './state.ts';
import { deciderSpec, type GivenEvent } from '../testing/decider-spec.ts';
import type { SnapshotRecord, SnapshotTask } from './snapshots.ts';

/** Snapshot metadata through the domain decider: what is recorded, when, and libvirt's refusals. */

const UUID = '6f1c1a3e-2b7d-4c55-9a0e-3d2f9b8c7a11';
const spec = deciderSpec({ decide, evolve, initialState: () => initialDomainState(UUID) }, { aggregateType: 'domain', aggregateId: UUID });
const NOW = new Date('2025-01-01T00:10:00.000Z');
const LIVE_DEADLINE = '2025-01-01T01:00:00.000Z';
const TIMEOUT = 30_000;
type Ev = GivenEvent<DomainEventBody>;

const kvm = DomainDefinition.parse({ name: 'web1', uuid: UUID, type: 'kvm', memoryKiB: 1048576, vcpus: 1 });
const test = DomainDefinition.parse({ ...kvm, type: 'test' });

const defined = (d = test): Ev => ({ type: 'DomainDefined', data: { definition: d, hostId: 'h1', placementEpoch: 1, added: true } });
const requested = (op: DomainOp, taskId: string, snapshot?: SnapshotTask): Ev => ({
  type: REQUESTED_EVENT[op],
  id: taskId,
  data: { hostId: 'h1', placementEpoch: 1, deadline: LIVE_DEADLINE, ...(snapshot ? { snapshot } : {}) },
});
const completed = (op: DomainOp, taskId: string, state: DomainStateName, reason: StateReason): Ev => ({ type: 'DomainOperationCompleted', data: { op, taskId, observed: { state, reason } } });
const running = (d = test): Ev[] => [defined(d), requested('start', 't-start'), completed('start', 't-start', 'running', 'booted')];
const record = (name: string, parent?: string, state: DomainStateName = 'running', d = test): SnapshotRecord => ({
  name,
  state,
  creationTime: 1735690000,
  ...(parent ? { parent } : {}),
  definition: d,
});
const meta = (r: SnapshotRecord) => {
  const { definition: _d, ...rest } = r;
  return rest;
};
const taken = (name: string, parent?: string, state: DomainStateName = 'running', d = test): Ev[] => [
  requested('snapshot-create', `t-${name}`, { name, record: meta(record(name, parent, state, d)) }),
  completed('snapshot-create', `t-${name}`, state, state === 'running' ? 'booted' : 'unknown'),
];
const create = (name?: string, description?: string): DomainCommand => ({ type: 'snapshot-create', ...(name ? { name } : {}), ...(description ? { description } : {}), timeoutMs: TIMEOUT });
const deadline = new Date(NOW.getTime() + TIMEOUT).toISOString();

describe('snapshot-create', () => {
  it('asks the host to take it, with the metadata decided now; it enters the tree only once the host reports it taken', () => {
    const { after } = spec.given(running()).when(create('s1', 'first one'), NOW).then([
      {
        type: 'DomainSnapshotRequested',
        data: {
          hostId: 'h1',
          placementEpoch: 1,
          deadline,
          snapshot: { name: 's1', record: { name: 's1', description: 'first one', state: 'running', creationTime: NOW.getTime() / 1000 } },
        },
      },
    ]);
    expect(after.snapshots).toBeUndefined();
    expect(after.pending?.op).toBe('snapshot-create');
    const s = spec.given([...running(), ...taken('s1')]).state;
    expect(s.snapshots?.map((x) => x.name)).toEqual(['s1']);
    expect(s.currentSnapshot).toBe('s1');
    expect(s.observed.state).toBe('running');
  });

  it('the next one is a child of the current one; a nameless one is named by its creation time', () => {
    const s = spec.given([...running(), ...taken('s1'), ...taken('s2', 's1')]).state;
    expect(s.snapshots?.find((x) => x.name === 's2')?.parent).toBe('s1');
    const ev = spec.given([...running(), ...taken('s1')]).when(create(), NOW).decided()[0] as Extract<DomainEventBody, { type: 'DomainSnapshotRequested' }>;
    expect(ev.data.snapshot?.record).toMatchObject({ name: String(NOW.getTime() / 1000), parent: 's1' });
  });

  it("refuses a name in use with libvirt's words, an unknown domain, and while another operation runs", () => {
    spec.given([...running(), ...taken('s1')]).when(create('s1'), NOW).thenThrows('operation-failed', 'domain moment s1 already exists');
    spec.given([]).when(create('s1'), NOW).thenThrows('no-domain');
    spec.given([...running(), requested('suspend', 't1')]).when(create('s1'), NOW).thenThrows('operation-invalid', /state change lock/);
  });

  it("keeps the model without its stored document, and refuses a snapshot past the domain's metadata bound", () => {
    const fromXml = { ...test, xml: '<domain type="test">' + ' '.repeat(100_000) + '</domain>' };
    const s = spec.given([...running(fromXml), ...taken('s1', undefined, 'running', fromXml)]).state;
    expect(s.snapshots?.[0]?.definition.xml).toBeUndefined();
    expect(s.snapshots?.[0]?.definition.name).toBe('web1');
    const big = { ...test, description: 'd'.repeat(60_000) };
    const many = [...running(big), ...taken('a', undefined, 'running', big), ...taken('b', 'a', 'running', big), ...taken('c', 'b', 'running', big), ...taken('d', 'c', 'running', big)];
    spec.given(many).when(create('e'), NOW).thenThrows('operation-failed', /metadata would exceed 256 KiB/);
  });

  it('--disk-only is refused on the test driver, with its words (external-snapshots.test.ts has the QEMU driver\'s)', () => {
    spec.given(running()).when({ type: 'snapshot-create', name: 'x', diskOnly: true, timeoutMs: TIMEOUT }, NOW).thenThrows('invalid-arg', 'unsupported flags (0x10) in function testDomainSnapshotCreateXML');
  });

  it('a failed or repeated report records nothing', () => {
    const failed = spec.given([
      ...running(),
      requested('snapshot-create', 't-x', { name: 'x', record: meta(record('x')) }),
      { type: 'DomainOperationFailed', data: { op: 'snapshot-create', taskId: 't-x', error: { code: 'operation-failed', message: 'disk full' } } },
    ]).state;
    expect(failed.snapshots).toBeUndefined();
    spec.given([...running(), ...taken('s1')]).when({ type: 'complete', taskId: 't-s1', observed: { state: 'running', reason: 'booted' } }, NOW).thenNothing();
  });
});

describe('snapshot-revert', () => {
  it('a snapshot with memory leaves the guest as it was, or as --running/--paused say; the snapshot becomes current', () => {
    const base = [...running(), ...taken('s1'), ...taken('s2', 's1')];
    const ev = (cmd: DomainCommand) => (spec.given(base).when(cmd, NOW).decided()[0] as Extract<DomainEventBody, { type: 'DomainSnapshotRevertRequested' }>).data.snapshot;
    expect(ev({ type: 'snapshot-revert', name: 's1', timeoutMs: TIMEOUT })).toEqual({ name: 's1', target: 'running', withMemory: true });
    expect(ev({ type: 'snapshot-revert', name: 's1', paused: true, timeoutMs: TIMEOUT })).toEqual({ name: 's1', target: 'paused', withMemory: true });
    spec.given(base).when({ type: 'snapshot-revert', name: 's1', paused: true, running: true, timeoutMs: TIMEOUT }, NOW).thenThrows('invalid-arg', /mutually exclusive/);
    const s = spec.given([...base, requested('snapshot-revert', 't-r', { name: 's1', target: 'running', withMemory: true }), completed('snapshot-revert', 't-r', 'running', 'from-snapshot')]).state;
    expect(s.currentSnapshot).toBe('s1');
    expect(s.observed).toEqual({ state: 'running', reason: 'from-snapshot' });
  });

  it('an inactive snapshot stops the guest; the QEMU driver starts it when asked, the test driver does not', () => {
    const off = [defined(), ...taken('off', undefined, 'shutoff')];
    const target = (evs: Ev[], cmd: DomainCommand) => (spec.given(evs).when(cmd, NOW).decided()[0] as Extract<DomainEventBody, { type: 'DomainSnapshotRevertRequested' }>).data.snapshot?.target;
    expect(target(off, { type: 'snapshot-revert', name: 'off', running: true, timeoutMs: TIMEOUT })).toBe('shutoff');
    const offKvm = [defined(kvm), ...taken('off', undefined, 'shutoff', kvm)];
    expect(target(offKvm, { type: 'snapshot-revert', name: 'off', running: true, timeoutMs: TIMEOUT })).toBe('running');
    expect(target(offKvm, { type: 'snapshot-revert', name: 'off', timeoutMs: TIMEOUT })).toBe('shutoff');
  });

  it('an unknown snapshot, or no current one, is refused as libvirt does', () => {
    spec.given(running()).when({ type: 'snapshot-revert', name: 'nosuch', timeoutMs: TIMEOUT }, NOW).thenThrows('no-domain-snapshot', "no domain snapshot with matching name 'nosuch'");
    spec.given(running()).when({ type: 'snapshot-revert', timeoutMs: TIMEOUT }, NOW).thenThrows('no-domain-snapshot', 'the domain does not have a current snapshot');
  });
});

describe('snapshot-delete', () => {
  const tree = [...running(), ...taken('s1'), ...taken('s2', 's1'), ...taken('s3', 's2')];
  const del = (name: string, more: Partial<Extract<DomainCommand, { type: 'snapshot-delete' }>> = {}): DomainCommand => ({ type: 'snapshot-delete', name, timeoutMs: TIMEOUT, ...more });
  const names = (evs: Ev[], cmd: DomainCommand) => (spec.given(evs).when(cmd, NOW).decided()[0] as Extract<DomainEventBody, { type: 'DomainSnapshotDeleteRequested' }>).data.snapshot?.names;

  it('deletes one (its children move up to its parent), with its children, or only them: children before parents', () => {
    expect(names(tree, del('s2'))).toEqual(['s2']);
    expect(names(tree, del('s1', { children: true }))).toEqual(['s3', 's2', 's1']);
    expect(names(tree, del('s1', { childrenOnly: true }))).toEqual(['s3', 's2']);
    const one = spec.given([...tree, requested('snapshot-delete', 't-d', { name: 's2', names: ['s2'] }), completed('snapshot-delete', 't-d', 'running', 'booted')]).state;
    expect(one.snapshots?.map((x) => [x.name, x.parent])).toEqual([['s1', undefined], ['s3', 's1']]);
    expect(one.currentSnapshot).toBe('s3');
  });

  it('a current snapshot that goes leaves its nearest surviving ancestor current, or none', () => {
    const gone = spec.given([...tree, requested('snapshot-delete', 't-d', { name: 's1', names: ['s3', 's2'], childrenOnly: true }), completed('snapshot-delete', 't-d', 'running', 'booted')]).state;
    expect(gone.currentSnapshot).toBe('s1');
    const all = spec.given([...tree, requested('snapshot-delete', 't-d', { name: 's1', names: ['s3', 's2', 's1'] }), completed('snapshot-delete', 't-d', 'running', 'booted')]).state;
    expect(all.snapshots).toBeUndefined();
    expect(all.currentSnapshot).toBeUndefined();
  });

  it('--metadata forgets without the host on the QEMU driver; the test driver refuses it', () => {
    const kvmTree = [...running(kvm), ...taken('s1', undefined, 'running', kvm)];
    const { after } = spec.given(kvmTree).when(del('s1', { metadata: true }), NOW).then([{ type: 'DomainSnapshotsForgotten', data: { names: ['s1'] } }]);
    expect(after.snapshots).toBeUndefined();
    spec.given(tree).when(del('s1', { metadata: true }), NOW).thenThrows('invalid-arg', 'unsupported flags (0x2) in function testDomainSnapshotDelete');
    spec.given(tree).when(del('nosuch'), NOW).thenThrows('no-domain-snapshot');
  });
});

describe('snapshot-current <name>', () => {
  it('makes a snapshot current without the host, so the next one is its child; an unknown one is refused', () => {
    const base = [...running(), ...taken('s1'), ...taken('s2', 's1')];
    const { after } = spec.given(base).when({ type: 'snapshot-set-current', name: 's1' }, NOW).then([{ type: 'DomainSnapshotCurrentSet', data: { name: 's1' } }]);
    expect(after.currentSnapshot).toBe('s1');
    expect(after.pending).toBeNull();
    spec.given(base).when({ type: 'snapshot-set-current', name: 's2' }, NOW).thenNothing();
    spec.given(base).when({ type: 'snapshot-set-current', name: 'nosuch' }, NOW).thenThrows('no-domain-snapshot');
  });
});

describe('undefine with snapshots', () => {
  it('an inactive domain with snapshots stays, unless their metadata goes too', () => {
    const off = [defined(), ...taken('a', undefined, 'shutoff'), ...taken('b', 'a', 'shutoff')];
    spec.given(off).when({ type: 'undefine' }, NOW).thenThrows('operation-invalid', 'cannot delete inactive domain with 2 snapshots');
    const { after } = spec.given(off).when({ type: 'undefine', snapshotsMetadata: true }, NOW).then([
      { type: 'DomainSnapshotsForgotten', data: { names: ['a', 'b'] } },
      { type: 'DomainUndefined', data: { removed: true } },
    ]);
    expect(after).toMatchObject({ exists: false });
    expect(after.snapshots).toBeUndefined();
    // An active one is undefined and keeps its snapshots, as a transient domain.
    const live = spec.given([...running(), ...taken('s1')]).when({ type: 'undefine' }, NOW).then([{ type: 'DomainUndefined', data: { removed: false } }]);
    expect(live.after.snapshots?.length).toBe(1);
  });
});
