import { describe, expect, it } from 'vitest';
import { decide, evolve, initialDomainState } from './decider.ts';
import { lifecycleFor } from '../lifecycle.ts';
import { DomainDefinition } from './definition.ts';
import type { DomainCommand } from './commands.ts';
import type { DomainEventBody, DomainOp } from './events.ts';
import { REQUESTED_EVENT } from './events.ts';
import type { DomainStateName, StateReason } from './state.ts';
import { deciderSpec, type GivenEvent } from '../testing/decider-spec.ts';
import { MANAGED_SAVE_BLOCKS_UNDEFINE } from './autostart-save.ts';

/** autostart, reset, managedsave and managedsave-remove, through the domain decider. */

const UUID = '6f1c1a3e-2b7d-4c55-9a0e-3d2f9b8c7a11';
const spec = deciderSpec({ decide, evolve, initialState: () => initialDomainState(UUID) }, { aggregateType: 'domain', aggregateId: UUID });
const NOW = new Date('2025-01-01T00:10:00.000Z');
const LIVE_DEADLINE = '2025-01-01T01:00:00.000Z';
const TIMEOUT = 30_000;
type Ev = GivenEvent<DomainEventBody>;

const kvm = DomainDefinition.parse({ name: 'web1', uuid: UUID, type: 'kvm', memoryKiB: 1048576, vcpus: 1 });
const test = DomainDefinition.parse({ ...kvm, type: 'test' });

const defined = (d = test, transient = false): Ev => ({ type: 'DomainDefined', data: { definition: d, hostId: 'h1', placementEpoch: 1, added: true, ...(transient ? { transient } : {}) } });
const requested = (op: DomainOp, taskId: string): Ev => ({ type: REQUESTED_EVENT[op], id: taskId, data: { hostId: 'h1', placementEpoch: 1, deadline: LIVE_DEADLINE } });
const completed = (op: DomainOp, taskId: string, state: DomainStateName, reason: StateReason): Ev => ({ type: 'DomainOperationCompleted', data: { op, taskId, observed: { state, reason } } });
const running = (d = test): Ev[] => [defined(d), requested('start', 't-start'), completed('start', 't-start', 'running', 'booted')];
const paused = (d = test): Ev[] => [...running(d), requested('suspend', 't-sus'), completed('suspend', 't-sus', 'paused', 'user')];
const saved = (d = test): Ev[] => [...running(d), requested('managedsave', 't-save'), completed('managedsave', 't-save', 'shutoff', 'saved')];
const intent = (op: DomainOp): DomainEventBody => ({
  type: REQUESTED_EVENT[op],
  data: { hostId: 'h1', placementEpoch: 1, deadline: new Date(NOW.getTime() + TIMEOUT).toISOString() },
} as DomainEventBody);
const cmd = (type: 'reset' | 'managedsave'): DomainCommand => ({ type, timeoutMs: TIMEOUT });

describe('autostart', () => {
  it('is recorded once, shown on the domain, and taken back with --disable', () => {
    const { after } = spec.given([defined()]).when({ type: 'set-autostart', autostart: true }).then([{ type: 'DomainAutostartSet', data: { autostart: true } }]);
    expect(after.autostart).toBe(true);
    // Setting what is already set records nothing.
    spec.given([defined(), { type: 'DomainAutostartSet', data: { autostart: true } }]).when({ type: 'set-autostart', autostart: true }).thenNothing();
    const off = spec.given([defined(), { type: 'DomainAutostartSet', data: { autostart: true } }]).when({ type: 'set-autostart', autostart: false }).then([{ type: 'DomainAutostartSet', data: { autostart: false } }]);
    expect(off.after.autostart).toBeUndefined();
  });

  it('the test driver keeps it on a transient domain; the QEMU driver refuses it there', () => {
    spec.given([defined(test, true)]).when({ type: 'set-autostart', autostart: true }).then([{ type: 'DomainAutostartSet', data: { autostart: true } }]);
    spec.given([defined(kvm, true)]).when({ type: 'set-autostart', autostart: true }).thenThrows('operation-invalid', 'cannot set autostart for transient domain');
    spec.given([]).when({ type: 'set-autostart', autostart: true }).thenThrows('no-domain');
  });

  it("the host agent's start starts a shut off autostart domain it owns, and nothing else", () => {
    const marked = [defined(), { type: 'DomainAutostartSet', data: { autostart: true } } as Ev];
    const boot: DomainCommand = { type: 'autostart-boot', hostId: 'h1', timeoutMs: TIMEOUT };
    const { after } = spec.given(marked).when(boot, NOW).then([intent('start')]);
    expect(after.pending?.op).toBe('start');
    spec.given([defined()]).when(boot, NOW).thenNothing();
    spec.given(marked).when({ ...boot, hostId: 'h2' }, NOW).thenNothing();
    spec.given([...running(), { type: 'DomainAutostartSet', data: { autostart: true } }]).when(boot, NOW).thenNothing();
    spec.given([...marked, requested('start', 't1')]).when(boot, NOW).thenNothing();
    spec.given([]).when(boot, NOW).thenNothing();
  });

  it('a domain defined anew after removal starts unmarked', () => {
    const s = spec.given([defined(), { type: 'DomainAutostartSet', data: { autostart: true } }, { type: 'DomainUndefined', data: { removed: true } }, defined()]).state;
    expect(s.autostart).toBeUndefined();
  });
});

describe('reset', () => {
  it('asks the host to reset a running or paused guest, leaving what the domain asks for as it was', () => {
    const { after } = spec.given(running()).when(cmd('reset'), NOW).then([intent('reset')]);
    expect(after).toMatchObject({ pending: { op: 'reset' }, desired: 'running' });
    expect(spec.given(paused()).when(cmd('reset'), NOW).then([intent('reset')]).after.desired).toBe('paused');
    const done = spec.given([...running(), requested('reset', 't-r'), completed('reset', 't-r', 'running', 'booted')]).state;
    expect(done).toMatchObject({ pending: null, observed: { state: 'running' }, domid: 3 });
  });

  it('refuses a shut off domain with libvirt words, an unknown one, and one with an operation in flight', () => {
    spec.given([defined()]).when(cmd('reset'), NOW).thenThrows('operation-invalid', 'domain is not running');
    spec.given([defined(kvm)]).when(cmd('reset'), NOW).thenThrows('operation-invalid', 'domain is not running');
    spec.given([]).when(cmd('reset'), NOW).thenThrows('no-domain');
    spec.given([...running(), requested('suspend', 't1')]).when(cmd('reset'), NOW).thenThrows('operation-invalid', /state change lock/);
  });
});

describe('managedsave', () => {
  it('asks the host to save a running domain; done, it is shut off (saved) with an image, and STOPPED SAVED', () => {
    const { after } = spec.given(running()).when(cmd('managedsave'), NOW).then([intent('managedsave')]);
    expect(after).toMatchObject({ pending: { op: 'managedsave' }, desired: 'shutoff' });
    const s = spec.given(saved()).state;
    expect(s).toMatchObject({ observed: { state: 'shutoff', reason: 'saved' }, managedSave: true, persistent: true, exists: true });
    expect(s.domid).toBeUndefined();
    const before = spec.given([...running(), requested('managedsave', 't-save')]).state;
    expect(lifecycleFor(before, { type: 'DomainOperationCompleted', data: { op: 'managedsave', taskId: 't-save', observed: { state: 'shutoff', reason: 'saved' } } })).toEqual([
      { event: 'STOPPED', detail: 'SAVED' },
    ]);
  });

  it('a paused domain is saved too; a failed save leaves no image', () => {
    spec.given(paused()).when(cmd('managedsave'), NOW).then([intent('managedsave')]);
    const failed = spec.given([
      ...running(),
      requested('managedsave', 't-save'),
      { type: 'DomainOperationFailed', data: { op: 'managedsave', taskId: 't-save', error: { code: 'operation-failed', message: 'disk full' }, observed: { state: 'running', reason: 'booted' } } },
    ]).state;
    expect(failed.managedSave).toBeUndefined();
  });

  it('refuses a shut off or transient domain as each driver does, in its order', () => {
    spec.given([defined()]).when(cmd('managedsave'), NOW).thenThrows('operation-invalid', 'domain is not running');
    spec.given(saved()).when(cmd('managedsave'), NOW).thenThrows('operation-invalid', 'domain is not running');
    const transientRunning = [defined(test, true), requested('start', 't1'), completed('start', 't1', 'running', 'booted')];
    spec.given(transientRunning).when(cmd('managedsave'), NOW).thenThrows('operation-invalid', 'cannot do managed save for transient domain');
    // The QEMU driver looks at persistence first.
    spec.given([defined(kvm, true)]).when(cmd('managedsave'), NOW).thenThrows('operation-invalid', 'cannot do managed save for transient domain');
    spec.given([]).when(cmd('managedsave'), NOW).thenThrows('no-domain');
  });

  it('the next start boots from the image, which is gone once the guest runs', () => {
    const { after } = spec.given(saved()).when({ type: 'start', paused: false, timeoutMs: TIMEOUT }, NOW).then([intent('start')]);
    // Kept until the start is done: a start that fails leaves the image for the next one.
    expect(after.managedSave).toBe(true);
    const s = spec.given([...saved(), requested('start', 't2'), completed('start', 't2', 'running', 'booted')]).state;
    expect(s.managedSave).toBeUndefined();
  });

  it('managedsave-remove drops the image, and is a no-op without one', () => {
    const { after } = spec.given(saved()).when({ type: 'managedsave-remove' }).then([{ type: 'DomainManagedSaveRemoved', data: {} }]);
    expect(after).toMatchObject({ observed: { state: 'shutoff', reason: 'saved' } });
    expect(after.managedSave).toBeUndefined();
    spec.given([defined()]).when({ type: 'managedsave-remove' }).thenNothing();
    spec.given([]).when({ type: 'managedsave-remove' }).thenThrows('no-domain');
  });

  it('undefine is refused while an image exists, unless it goes too', () => {
    spec.given(saved()).when({ type: 'undefine' }).thenThrows('operation-invalid', MANAGED_SAVE_BLOCKS_UNDEFINE);
    const { after } = spec.given(saved()).when({ type: 'undefine', managedSave: true }).then([
      { type: 'DomainManagedSaveRemoved', data: {} },
      { type: 'DomainUndefined', data: { removed: true } },
    ]);
    expect(after).toMatchObject({ exists: false, removed: true });
  });
});
