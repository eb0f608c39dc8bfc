import { describe, expect, it } from 'vitest';
import { decide, evolve, initialDomainState } from './decider.ts';
import { lifecycleFor } from '../lifecycle.ts';
import { DomainDefinition } from './definition.ts';
import type { DomainCommand } from './commands.ts';
import { RestoreDomainRequest, SaveDomainRequest } from './commands.ts';
import type { DomainEventBody, DomainOp } from './events.ts';
import { REQUESTED_EVENT } from './events.ts';
import type { DomainStateName, StateReason } from './state.ts';
import { deciderSpec, type GivenEvent } from '../testing/decider-spec.ts';
import { checkRestoreFlags, savePathProblem } from './save-restore.ts';

/** save and restore through the domain decider, and the path rule every request meets. */

const UUID = '6f1c1a3e-2b7d-4c55-9a0e-3d2f9b8c7a11';
const spec = deciderSpec({ decide, evolve, initialState: () => initialDomainState(UUID) }, { aggregateType: 'domain', aggregateId: UUID });
const NOW = new Date('2025-01-01T00:10:00.000Z');
const LIVE_DEADLINE = '2025-01-01T01:00:00.000Z';
const TIMEOUT = 30_000;
const FILE = '/var/lib/virtplane/save/web1.sav';
type Ev = GivenEvent<DomainEventBody>;

const test = DomainDefinition.parse({ name: 'web1', uuid: UUID, type: 'test', memoryKiB: 1048576, vcpus: 1 });
const defined = (transient = false): Ev => ({ type: 'DomainDefined', data: { definition: test, hostId: 'h1', placementEpoch: 1, added: true, ...(transient ? { transient } : {}) } });
const requested = (op: DomainOp, taskId: string, extra: Record<string, unknown> = {}): Ev =>
  ({ type: REQUESTED_EVENT[op], id: taskId, data: { hostId: 'h1', placementEpoch: 1, deadline: LIVE_DEADLINE, ...extra } }) as Ev;
const completed = (op: DomainOp, taskId: string, state: DomainStateName, reason: StateReason): Ev => ({ type: 'DomainOperationCompleted', data: { op, taskId, observed: { state, reason } } });
const running = (transient = false): Ev[] => [defined(transient), requested('start', 't-start'), completed('start', 't-start', 'running', 'booted')];
const saved = (transient = false): Ev[] => [...running(transient), requested('save', 't-save', { file: FILE }), completed('save', 't-save', 'shutoff', 'saved')];
const save: DomainCommand = { type: 'save', file: FILE, timeoutMs: TIMEOUT };
const restore = (over: Partial<Extract<DomainCommand, { type: 'restore' }>> = {}): DomainCommand => ({
  type: 'restore',
  definition: test,
  hostId: 'h1',
  claimSeq: 1,
  file: FILE,
  paused: false,
  timeoutMs: TIMEOUT,
  ...over,
});
const deadline = new Date(NOW.getTime() + TIMEOUT).toISOString();

describe('save', () => {
  it('asks the domain host to save to the file; done, the domain is shut off (saved) and STOPPED SAVED, with no managed save image', () => {
    const { after } = spec.given(running()).when(save, NOW).then([{ type: 'DomainSaveRequested', data: { hostId: 'h1', placementEpoch: 1, deadline, file: FILE } }]);
    expect(after).toMatchObject({ pending: { op: 'save', file: FILE }, desired: 'shutoff' });
    const s = spec.given(saved()).state;
    expect(s).toMatchObject({ observed: { state: 'shutoff', reason: 'saved' }, exists: true, persistent: true });
    expect(s.managedSave).toBeUndefined();
    const before = spec.given([...running(), requested('save', 't-save', { file: FILE })]).state;
    expect(lifecycleFor(before, { type: 'DomainOperationCompleted', data: { op: 'save', taskId: 't-save', observed: { state: 'shutoff', reason: 'saved' } } })).toEqual([{ event: 'STOPPED', detail: 'SAVED' }]);
  });

  it('refuses a domain that is not running, as both drivers do, and one with an operation in flight', () => {
    spec.given([defined()]).when(save, NOW).thenThrows('operation-invalid', 'domain is not running');
    spec.given(saved()).when(save, NOW).thenThrows('operation-invalid', 'domain is not running');
    spec.given([...running(), requested('save', 't-save', { file: FILE })]).when(save, NOW).thenThrows('operation-invalid', /cannot acquire state change lock/);
  });

  it('saves a transient domain, which is gone once saved', () => {
    spec.given(running(true)).when(save, NOW).decided();
    expect(spec.given(saved(true)).state.exists).toBe(false);
  });
});

describe('restore', () => {
  it('recreates a domain that is gone as a transient one and starts it from the image, STARTED RESTORED', () => {
    const { after } = spec.given([]).when(restore(), NOW).then([
      { type: 'DomainDefined', data: { definition: test, hostId: 'h1', placementEpoch: 1, added: true, transient: true } },
      { type: 'DomainStartRequested', data: { hostId: 'h1', placementEpoch: 1, deadline, file: FILE } },
    ]);
    expect(after).toMatchObject({ persistent: false, pending: { op: 'start', file: FILE }, desired: 'running' });
    const before = spec.given([defined(true), requested('start', 't-r', { file: FILE })]).state;
    expect(lifecycleFor(before, { type: 'DomainOperationCompleted', data: { op: 'start', taskId: 't-r', observed: { state: 'running', reason: 'restored' } } })).toEqual([{ event: 'STARTED', detail: 'RESTORED' }]);
  });

  it('starts a saved persistent domain from its image without redefining it; --paused leaves it paused', () => {
    spec.given(saved()).when(restore(), NOW).then([{ type: 'DomainStartRequested', data: { hostId: 'h1', placementEpoch: 1, deadline, file: FILE } }]);
    const { after } = spec.given(saved()).when(restore({ paused: true }), NOW).then([{ type: 'DomainStartRequested', data: { hostId: 'h1', placementEpoch: 1, deadline, paused: true, file: FILE } }]);
    expect(after.desired).toBe('paused');
  });

  it("refuses as libvirt does: its domain running or being started, a name held by another uuid, and a domain on another host", () => {
    spec.given(running()).when(restore(), NOW).thenThrows('operation-invalid', "domain 'web1' is already active");
    spec.given([defined(), requested('start', 't-start')]).when(restore(), NOW).thenThrows('operation-invalid', "domain 'web1' is already being started");
    spec.given(saved()).when(restore({ definition: { ...test, name: 'other' } }), NOW).thenThrows('operation-failed', `domain 'web1' is already defined with uuid ${UUID}`);
    spec.given(saved()).when(restore({ hostId: 'h2' }), NOW).thenThrows('operation-invalid', /belongs to host 'h1'/);
  });

  it('the test driver takes no flag, with its words; --paused and --running exclude each other', () => {
    expect(() => checkRestoreFlags('test', { paused: true })).toThrow('unsupported flags (0x4) in function testDomainRestoreFlags');
    expect(() => checkRestoreFlags('test', { running: true })).toThrow('unsupported flags (0x2) in function testDomainRestoreFlags');
    expect(() => checkRestoreFlags('kvm', { paused: true, running: true })).toThrow(/mutually exclusive/);
    expect(() => checkRestoreFlags('kvm', { paused: true })).not.toThrow();
    expect(() => checkRestoreFlags('test', {})).not.toThrow();
  });
});

describe('image paths', () => {
  it('are absolute, normalised and free of control characters before anything reaches the log, or a bare file name', () => {
    for (const bad of ['./web1.sav', 'save/web1.sav', '..', '.', 'a'.repeat(256), 'web1\n', '/a/../etc/passwd', '/a//b', '/a/b/', '/a/./b', '/a/b\n', '/a/\u0000b', '', '/']) {
      expect(savePathProblem(bad) ?? (bad.length < 1 ? 'short' : bad === '/' ? 'root' : undefined), bad).toBeDefined();
      expect(SaveDomainRequest.safeParse({ domain: 'web1', file: bad }).success, bad).toBe(false);
      expect(RestoreDomainRequest.safeParse({ file: bad }).success, bad).toBe(false);
    }
    expect(SaveDomainRequest.safeParse({ domain: 'web1', file: '/x'.repeat(2049) }).success).toBe(false);
    expect(savePathProblem(FILE)).toBeUndefined();
    // A file of the host's first image directory.
    expect(savePathProblem('web1.sav')).toBeUndefined();
    expect(SaveDomainRequest.safeParse({ domain: 'web1', file: 'web1.sav' }).success).toBe(true);
    expect(RestoreDomainRequest.safeParse({ file: FILE, hostId: 'h1', paused: true }).success).toBe(true);
  });
});
