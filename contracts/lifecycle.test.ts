import { describe, expect, it } from 'vitest';
import { LIFECYCLE_EVENTS, lifecycleFor, lifecycleNumbers, transitionEvents, type LifecycleKind } from './lifecycle.ts';
import { decide, evolve, initialDomainState, type DomainAggregate } from './domain/decider.ts';
import { DomainDefinition } from './domain/definition.ts';
import type { DomainEventBody, DomainOp } from './domain/events.ts';
import type { DomainStateName, ObservedState, StateReason } from './domain/state.ts';
import { deciderSpec, type GivenEvent } from './testing/decider-spec.ts';

const UUID = '0b6d2a8e-5f4c-4d1a-8e3b-7c9f1a2b3c4d';
const spec = deciderSpec({ decide, evolve, initialState: () => initialDomainState(UUID) }, { aggregateId: UUID });
const def = DomainDefinition.parse({ name: 'db1', uuid: UUID, memoryKiB: 524288, vcpus: 1 });
const DEADLINE = '2030-01-01T00:00:00.000Z';
type Ev = GivenEvent<DomainEventBody>;

const defined = (added = true): Ev => ({ type: 'DomainDefined', data: { definition: def, hostId: 'h1', placementEpoch: 1, added } });
const requested = (op: DomainOp, id: string): Ev => {
  const type = `Domain${op[0]!.toUpperCase()}${op.slice(1)}Requested` as Extract<DomainEventBody['type'], `${string}Requested`>;
  return { type, id, data: { hostId: 'h1', placementEpoch: 1, deadline: DEADLINE } };
};
const completed = (op: DomainOp, taskId: string, observed: ObservedState): DomainEventBody => ({
  type: 'DomainOperationCompleted',
  data: { op, taskId, observed },
});
const seen = (state: DomainStateName, reason: StateReason): DomainEventBody => ({ type: 'DomainStateObserved', data: { state, reason } });
const o = (state: DomainStateName, reason: StateReason): ObservedState => ({ state, reason });
const k = (event: LifecycleKind['event'], detail: string): LifecycleKind => ({ event, detail });

const stateOf = (events: Ev[]): DomainAggregate => spec.given(events).state;
const shutoff = stateOf([defined()]);
const running = stateOf([defined(), requested('start', 't1'), completed('start', 't1', o('running', 'booted'))]);
const paused = stateOf([defined(), requested('start', 't1'), completed('start', 't1', o('paused', 'user'))]);
const pending = (s: DomainAggregate, op: DomainOp): DomainAggregate => ({
  ...s,
  pending: { op, taskId: 'tp', requestedAt: DEADLINE, deadline: DEADLINE },
});

describe('lifecycleFor', () => {
  it('define: DEFINED/ADDED for a new domain, DEFINED/UPDATED for a changed one', () => {
    expect(lifecycleFor(initialDomainState(UUID), defined(true) as DomainEventBody)).toEqual([k('DEFINED', 'ADDED')]);
    expect(lifecycleFor(shutoff, defined(false) as DomainEventBody)).toEqual([k('DEFINED', 'UPDATED')]);
  });

  it('undefine: UNDEFINED/REMOVED, whether removed now or kept running as transient', () => {
    expect(lifecycleFor(shutoff, { type: 'DomainUndefined', data: { removed: true } })).toEqual([k('UNDEFINED', 'REMOVED')]);
    expect(lifecycleFor(running, { type: 'DomainUndefined', data: { removed: false } })).toEqual([k('UNDEFINED', 'REMOVED')]);
  });

  it('intents say nothing: libvirt speaks when the state changes', () => {
    for (const op of ['start', 'shutdown', 'destroy', 'suspend', 'resume', 'reboot'] as const) {
      expect(lifecycleFor(running, requested(op, 'x') as DomainEventBody)).toEqual([]);
    }
  });

  const cases: Array<[string, DomainAggregate, DomainEventBody, LifecycleKind[]]> = [
    ['start', pending(shutoff, 'start'), completed('start', 'tp', o('running', 'booted')), [k('STARTED', 'BOOTED')]],
    [
      'start paused',
      pending(shutoff, 'start'),
      completed('start', 'tp', o('paused', 'user')),
      [k('STARTED', 'BOOTED'), k('SUSPENDED', 'PAUSED')],
    ],
    ['destroy running', pending(running, 'destroy'), completed('destroy', 'tp', o('shutoff', 'destroyed')), [k('STOPPED', 'DESTROYED')]],
    ['destroy paused', pending(paused, 'destroy'), completed('destroy', 'tp', o('shutoff', 'destroyed')), [k('STOPPED', 'DESTROYED')]],
    ['suspend', pending(running, 'suspend'), completed('suspend', 'tp', o('paused', 'user')), [k('SUSPENDED', 'PAUSED')]],
    ['resume', pending(paused, 'resume'), completed('resume', 'tp', o('running', 'unpaused')), [k('RESUMED', 'UNPAUSED')]],
    ['shutdown', pending(running, 'shutdown'), completed('shutdown', 'tp', o('shutoff', 'shutdown')), [k('STOPPED', 'SHUTDOWN')]],
    ['shutdown of a paused domain', pending(paused, 'shutdown'), completed('shutdown', 'tp', o('shutoff', 'shutdown')), [k('STOPPED', 'SHUTDOWN')]],
    // on_poweroff=restart: the test driver sets RUNNING/BOOTED and sends no event
    ['shutdown with on_poweroff=restart', pending(running, 'shutdown'), completed('shutdown', 'tp', o('running', 'booted')), []],
    ['reboot with on_reboot=restart', pending(running, 'reboot'), completed('reboot', 'tp', o('running', 'booted')), []],
    ['reboot with on_reboot=destroy', pending(running, 'reboot'), completed('reboot', 'tp', o('shutoff', 'shutdown')), [k('STOPPED', 'SHUTDOWN')]],
    [
      'failed start that left the domain shutoff/failed',
      pending(shutoff, 'start'),
      {
        type: 'DomainOperationFailed',
        data: { op: 'start', taskId: 'tp', error: { code: 'operation-failed', message: 'x' }, observed: o('shutoff', 'failed') },
      },
      [k('STOPPED', 'FAILED')],
    ],
    [
      'failure without an observation',
      pending(running, 'suspend'),
      { type: 'DomainOperationFailed', data: { op: 'suspend', taskId: 'tp', error: { code: 'timeout', message: 'x' } } },
      [],
    ],
    [
      'failure whose observation shows a change',
      pending(running, 'shutdown'),
      {
        type: 'DomainOperationFailed',
        data: { op: 'shutdown', taskId: 'tp', error: { code: 'operation-failed', message: 'x' }, observed: o('shutoff', 'crashed') },
      },
      [k('STOPPED', 'CRASHED')],
    ],
    ['guest crashed and its process died', running, seen('shutoff', 'crashed'), [k('STOPPED', 'CRASHED')]],
    ['guest powered itself off', running, seen('shutoff', 'shutdown'), [k('STOPPED', 'SHUTDOWN')]],
    ['guest panicked and was preserved', running, seen('crashed', 'panicked'), [k('CRASHED', 'PANICKED')]],
    ['guest suspended to memory', running, seen('pmsuspended', 'unknown'), [k('PMSUSPENDED', 'MEMORY')]],
    ['guest woke up', { ...running, observed: o('pmsuspended', 'unknown') }, seen('running', 'wakeup'), [k('STARTED', 'WAKEUP')]],
    ['guest began shutting down', running, seen('shutdown', 'user'), [k('SHUTDOWN', 'FINISHED')]],
    ['disk error paused the guest', running, seen('paused', 'ioerror'), [k('SUSPENDED', 'IOERROR')]],
    ['nothing new', running, seen('running', 'booted'), []],
  ];
  for (const [label, before, e, expected] of cases) {
    it(`${label}: ${expected.map((x) => `${x.event}/${x.detail}`).join(', ') || 'no event'}`, () => {
      expect(lifecycleFor(before, e)).toEqual(expected);
    });
  }

  it('follows a whole life in order', () => {
    const log: Ev[] = [
      defined(),
      requested('start', 'a'),
      completed('start', 'a', o('running', 'booted')),
      requested('suspend', 'b'),
      completed('suspend', 'b', o('paused', 'user')),
      requested('resume', 'c'),
      completed('resume', 'c', o('running', 'unpaused')),
      defined(false),
      requested('reboot', 'd'),
      completed('reboot', 'd', o('running', 'booted')),
      requested('shutdown', 'e'),
      completed('shutdown', 'e', o('shutoff', 'shutdown')),
      requested('start', 'f'),
      completed('start', 'f', o('running', 'booted')),
      seen('shutoff', 'crashed'),
      requested('start', 'g'),
      completed('start', 'g', o('running', 'booted')),
      requested('destroy', 'h'),
      completed('destroy', 'h', o('shutoff', 'destroyed')),
      { type: 'DomainUndefined', data: { removed: true } },
    ];
    const envelopes = spec.given(log).envelopes;
    let s = initialDomainState(UUID);
    const out: string[] = [];
    for (const e of envelopes) {
      out.push(...lifecycleFor(s, e).map((x) => `${x.event}/${x.detail}`));
      s = evolve(s, e);
    }
    expect(out).toEqual([
      'DEFINED/ADDED',
      'STARTED/BOOTED',
      'SUSPENDED/PAUSED',
      'RESUMED/UNPAUSED',
      'DEFINED/UPDATED',
      'STOPPED/SHUTDOWN',
      'STARTED/BOOTED',
      'STOPPED/CRASHED',
      'STARTED/BOOTED',
      'STOPPED/DESTROYED',
      'UNDEFINED/REMOVED',
    ]);
  });
});

describe('transitionEvents', () => {
  const rows: Array<[ObservedState, ObservedState, string[]]> = [
    [o('shutoff', 'unknown'), o('running', 'booted'), ['STARTED/BOOTED']],
    [o('shutoff', 'saved'), o('running', 'restored'), ['STARTED/RESTORED']],
    [o('shutoff', 'unknown'), o('running', 'migrated'), ['STARTED/MIGRATED']],
    [o('shutoff', 'unknown'), o('running', 'from-snapshot'), ['STARTED/FROM_SNAPSHOT']],
    [o('nostate', 'unknown'), o('running', 'booted'), ['STARTED/BOOTED']],
    [o('crashed', 'panicked'), o('running', 'booted'), ['STARTED/BOOTED']],
    [o('paused', 'user'), o('running', 'unpaused'), ['RESUMED/UNPAUSED']],
    [o('paused', 'migrated'), o('running', 'migrated'), ['RESUMED/MIGRATED']],
    [o('paused', 'user'), o('running', 'from-snapshot'), ['RESUMED/FROM_SNAPSHOT']],
    [o('running', 'booted'), o('running', 'unpaused'), []],
    [o('blocked', 'unknown'), o('running', 'unknown'), []],
    [o('running', 'booted'), o('paused', 'user'), ['SUSPENDED/PAUSED']],
    [o('running', 'booted'), o('paused', 'migrated'), ['SUSPENDED/MIGRATED']],
    [o('running', 'booted'), o('paused', 'from-snapshot'), ['SUSPENDED/FROM_SNAPSHOT']],
    [o('shutoff', 'unknown'), o('paused', 'user'), ['STARTED/BOOTED', 'SUSPENDED/PAUSED']],
    [o('shutoff', 'saved'), o('paused', 'restored'), ['STARTED/RESTORED', 'SUSPENDED/RESTORED']],
    [o('running', 'booted'), o('shutoff', 'shutdown'), ['STOPPED/SHUTDOWN']],
    [o('running', 'booted'), o('shutoff', 'destroyed'), ['STOPPED/DESTROYED']],
    [o('running', 'booted'), o('shutoff', 'crashed'), ['STOPPED/CRASHED']],
    [o('running', 'booted'), o('shutoff', 'migrated'), ['STOPPED/MIGRATED']],
    [o('running', 'booted'), o('shutoff', 'saved'), ['STOPPED/SAVED']],
    [o('running', 'booted'), o('shutoff', 'failed'), ['STOPPED/FAILED']],
    [o('running', 'booted'), o('shutoff', 'from-snapshot'), ['STOPPED/FROM_SNAPSHOT']],
    [o('running', 'booted'), o('shutoff', 'unknown'), ['STOPPED/SHUTDOWN']],
    [o('crashed', 'panicked'), o('shutoff', 'destroyed'), ['STOPPED/DESTROYED']],
    [o('shutoff', 'unknown'), o('shutoff', 'destroyed'), []],
    [o('running', 'booted'), o('crashed', 'panicked'), ['CRASHED/PANICKED']],
    [o('running', 'booted'), o('pmsuspended', 'unknown'), ['PMSUSPENDED/MEMORY']],
    [o('running', 'booted'), o('shutdown', 'user'), ['SHUTDOWN/FINISHED']],
    [o('running', 'booted'), o('blocked', 'unknown'), []],
    [o('running', 'booted'), o('nostate', 'unknown'), []],
    [o('running', 'booted'), o('running', 'booted'), []],
  ];
  for (const [from, to, expected] of rows) {
    it(`${from.state}/${from.reason} -> ${to.state}/${to.reason}: ${expected.join(', ') || 'no event'}`, () => {
      expect(transitionEvents(from, to).map((x) => `${x.event}/${x.detail}`)).toEqual(expected);
    });
  }
});

describe('lifecycleNumbers', () => {
  // libvirt-domain.h: virDomainEventType and each virDomainEvent<Type>DetailType, in declaration order.
  const libvirt: Record<string, [number, string[]]> = {
    DEFINED: [0, ['ADDED', 'UPDATED', 'RENAMED', 'FROM_SNAPSHOT']],
    UNDEFINED: [1, ['REMOVED', 'RENAMED']],
    STARTED: [2, ['BOOTED', 'MIGRATED', 'RESTORED', 'FROM_SNAPSHOT', 'WAKEUP']],
    SUSPENDED: [3, ['PAUSED', 'MIGRATED', 'IOERROR', 'WATCHDOG', 'RESTORED', 'FROM_SNAPSHOT', 'API_ERROR', 'POSTCOPY', 'POSTCOPY_FAILED']],
    RESUMED: [4, ['UNPAUSED', 'MIGRATED', 'FROM_SNAPSHOT', 'POSTCOPY', 'POSTCOPY_FAILED']],
    STOPPED: [5, ['SHUTDOWN', 'DESTROYED', 'CRASHED', 'MIGRATED', 'SAVED', 'FAILED', 'FROM_SNAPSHOT']],
    SHUTDOWN: [6, ['FINISHED', 'GUEST', 'HOST']],
    PMSUSPENDED: [7, ['MEMORY', 'DISK']],
    CRASHED: [8, ['PANICKED', 'CRASHLOADED']],
  };

  it('covers exactly libvirt event types', () => {
    expect(Object.keys(LIFECYCLE_EVENTS).sort()).toEqual(Object.keys(libvirt).sort());
  });

  for (const [event, [value, details]] of Object.entries(libvirt)) {
    it(`${event} is ${value} with details ${details.join(', ')}`, () => {
      details.forEach((detail, i) => {
        expect(lifecycleNumbers({ event: event as LifecycleKind['event'], detail })).toEqual({ eventNumber: value, detailNumber: i });
      });
    });
  }

  it('spot checks against the numbers subscribers see', () => {
    expect(lifecycleNumbers(k('STARTED', 'BOOTED'))).toEqual({ eventNumber: 2, detailNumber: 0 });
    expect(lifecycleNumbers(k('STOPPED', 'DESTROYED'))).toEqual({ eventNumber: 5, detailNumber: 1 });
    expect(lifecycleNumbers(k('STOPPED', 'CRASHED'))).toEqual({ eventNumber: 5, detailNumber: 2 });
    expect(lifecycleNumbers(k('STOPPED', 'FAILED'))).toEqual({ eventNumber: 5, detailNumber: 5 });
    expect(lifecycleNumbers(k('DEFINED', 'UPDATED'))).toEqual({ eventNumber: 0, detailNumber: 1 });
  });

  it('an unknown detail is -1, never a wrong number', () => {
    expect(lifecycleNumbers(k('STARTED', 'NOPE'))).toEqual({ eventNumber: 2, detailNumber: -1 });
  });

  it('every kind lifecycleFor can produce has a number', () => {
    const states: ObservedState[] = [];
    for (const state of ['nostate', 'running', 'blocked', 'paused', 'shutdown', 'shutoff', 'crashed', 'pmsuspended'] as const) {
      for (const reason of ['unknown', 'booted', 'migrated', 'restored', 'from-snapshot', 'unpaused', 'wakeup', 'crashed', 'user', 'shutdown', 'destroyed', 'saved', 'failed', 'daemon', 'panicked', 'ioerror', 'starting-up'] as const) {
        states.push(o(state, reason));
      }
    }
    for (const from of states) {
      for (const to of states) {
        for (const kind of transitionEvents(from, to)) expect(lifecycleNumbers(kind).detailNumber).toBeGreaterThanOrEqual(0);
      }
    }
  });
});
