import { describe, expect, it } from 'vitest';
import { commandVersion, decide, evolve, initialDomainState } from './decider.ts';
import { lifecycleFor } from '../lifecycle.ts';
import { DomainDefinition } from './definition.ts';
import type { DomainCommand } from './commands.ts';
import type { DomainEventBody, LifecycleOp } from './events.ts';
import type { DomainStateName, ObservedState, StateReason } from './state.ts';
import { deciderSpec, type GivenEvent } from '../testing/decider-spec.ts';

const UUID = '6f1c1a3e-2b7d-4c55-9a0e-3d2f9b8c7a11';
const spec = deciderSpec(
  { decide, evolve, initialState: () => initialDomainState(UUID) },
  { aggregateType: 'domain', aggregateId: UUID },
);

const def = DomainDefinition.parse({ name: 'web1', uuid: UUID, type: 'kvm', memoryKiB: 1048576, vcpus: 1 });
const def2 = DomainDefinition.parse({ name: 'web1', uuid: UUID, type: 'kvm', memoryKiB: 2097152, vcpus: 2 });

const NOW = new Date('2025-01-01T00:10:00.000Z');
const LIVE_DEADLINE = '2025-01-01T01:00:00.000Z';
const PAST_DEADLINE = '2025-01-01T00:05:00.000Z';
const TIMEOUT = 30_000;
const deadlineFrom = (now: Date, ms = TIMEOUT) => new Date(now.getTime() + ms).toISOString();

type Ev = GivenEvent<DomainEventBody>;
const REQUESTED = {
  start: 'DomainStartRequested',
  shutdown: 'DomainShutdownRequested',
  destroy: 'DomainDestroyRequested',
  suspend: 'DomainSuspendRequested',
  resume: 'DomainResumeRequested',
  reboot: 'DomainRebootRequested',
} as const;

const defined = (d = def, added = true, hostId = 'h1', placementEpoch = 1): Ev => ({
  type: 'DomainDefined',
  data: { definition: d, hostId, placementEpoch, added },
});
const requested = (op: LifecycleOp, taskId: string, deadline = LIVE_DEADLINE, paused?: boolean): Ev => ({
  type: REQUESTED[op],
  id: taskId,
  data: { hostId: 'h1', placementEpoch: 1, deadline, ...(paused ? { paused } : {}) },
});
const completed = (op: LifecycleOp, taskId: string, state: DomainStateName, reason: StateReason): Ev => ({
  type: 'DomainOperationCompleted',
  data: { op, taskId, observed: { state, reason } },
});
const observed = (state: DomainStateName, reason: StateReason, cause?: string): Ev => ({
  type: 'DomainStateObserved',
  data: { state, reason, ...(cause ? { cause } : {}) },
});
const undefined_ = (removed: boolean): Ev => ({ type: 'DomainUndefined', data: { removed } });

/** A domain the host reported running after a start. */
const running: Ev[] = [defined(), requested('start', 't-start'), completed('start', 't-start', 'running', 'booted')];
const paused: Ev[] = [...running, requested('suspend', 't-suspend'), completed('suspend', 't-suspend', 'paused', 'user')];
const withObserved = (state: DomainStateName, reason: StateReason): Ev[] => [...running, observed(state, reason)];

const op = (type: LifecycleOp, timeoutMs = TIMEOUT, paused = false): DomainCommand =>
  type === 'start' ? { type, paused, timeoutMs } : { type, timeoutMs };

const expectRequested = (o: LifecycleOp, now = NOW, paused?: boolean): DomainEventBody => ({
  type: REQUESTED[o],
  data: { hostId: 'h1', placementEpoch: 1, deadline: deadlineFrom(now), ...(paused ? { paused } : {}) },
});

/** One event as the store reads it back, for folding a decision by hand. */
const envelopeAt = (e: DomainEventBody, version: number) => ({
  ...e,
  id: `evt-${version}-0`,
  aggregateType: 'domain' as const,
  aggregateId: UUID,
  time: NOW.toISOString(),
  actor: 'spec',
  commandId: `c-${version}`,
  causationId: `c-${version}`,
  correlationId: `c-${version}`,
  traceContext: {},
  schemaVersion: 1,
  version,
});

const NOT_RUNNING = 'domain is not running';
const ALREADY_RUNNING = 'domain is already running';
const NOT_PAUSED = "domain 'web1' is not paused";
const ALREADY_PAUSED = "domain 'web1' is already paused";
const OK = 'ok';

describe('define', () => {
  it('a new domain is DEFINED/ADDED, shut off, persistent, placed on the requested host', () => {
    const { after } = spec
      .given()
      .when({ type: 'define', claimSeq: 1, definition: def, hostId: 'h1' })
      .then([{ type: 'DomainDefined', data: { definition: def, hostId: 'h1', placementEpoch: 1, added: true } }]);
    expect(after).toMatchObject({
      exists: true,
      removed: false,
      name: 'web1',
      definition: def,
      nextDefinition: null,
      persistent: true,
      hostId: 'h1',
      placementEpoch: 1,
      observed: { state: 'shutoff', reason: 'unknown' },
      desired: 'shutoff',
      pending: null,
      version: 1,
    });
  });

  it('redefining an inactive domain updates the definition in place and keeps its placement', () => {
    const { after } = spec
      .given([defined()])
      .when({ type: 'define', claimSeq: 1, definition: def2, hostId: 'other-host' })
      .then([{ type: 'DomainDefined', data: { definition: def2, hostId: 'h1', placementEpoch: 1, added: false } }]);
    expect(after.definition).toEqual(def2);
    expect(after.nextDefinition).toBeNull();
    expect(after.hostId).toBe('h1');
  });

  it('redefining a running domain keeps the live definition and applies the new one when it stops', () => {
    const { after } = spec
      .given(running)
      .when({ type: 'define', claimSeq: 1, definition: def2, hostId: 'h1' })
      .then([{ type: 'DomainDefined', data: { definition: def2, hostId: 'h1', placementEpoch: 1, added: false } }]);
    expect(after.definition).toEqual(def);
    expect(after.nextDefinition).toEqual(def2);
    expect(after.observed).toEqual({ state: 'running', reason: 'booted' });

    const stopped = spec
      .given([...running, defined(def2, false), requested('shutdown', 't-shut'), completed('shutdown', 't-shut', 'shutoff', 'shutdown')])
      .state;
    expect(stopped.definition).toEqual(def2);
    expect(stopped.nextDefinition).toBeNull();
    expect(stopped.exists).toBe(true);
  });

  it('a definition recorded while running also takes effect when the guest stops on its own', () => {
    const s = spec.given([...running, defined(def2, false), observed('shutoff', 'crashed')]).state;
    expect(s.definition).toEqual(def2);
    expect(s.nextDefinition).toBeNull();
  });

  it('a definition recorded while a start is in flight waits for the domain to stop', () => {
    const s = spec.given([defined(), requested('start', 't1'), defined(def2, false)]).state;
    expect(s.definition).toEqual(def);
    expect(s.nextDefinition).toEqual(def2);
    const started = spec.given([defined(), requested('start', 't1'), defined(def2, false), completed('start', 't1', 'running', 'booted')]).state;
    expect(started.definition).toEqual(def);
    const failed = spec.given([
      defined(),
      requested('start', 't1'),
      defined(def2, false),
      { type: 'DomainOperationFailed', data: { op: 'start', taskId: 't1', error: { code: 'operation-failed', message: 'x' } } },
    ]).state;
    expect(failed.definition).toEqual(def2);
  });

  it('the same uuid under another name is refused as libvirt does', () => {
    spec
      .given([defined()])
      .when({ type: 'define', claimSeq: 1, definition: { ...def, name: 'web2' }, hostId: 'h1' })
      .thenThrows('operation-failed', `domain 'web1' is already defined with uuid ${UUID}`);
    spec
      .given(running)
      .when({ type: 'define', claimSeq: 1, definition: { ...def, name: 'web2' }, hostId: 'h1' })
      .thenThrows('operation-failed', /already defined with uuid/);
  });

  it('defining a running transient domain makes it persistent again (DEFINED/ADDED, as libvirt has no old config)', () => {
    const { after } = spec
      .given([...running, undefined_(false)])
      .when({ type: 'define', claimSeq: 1, definition: def2, hostId: 'h1' })
      .then([{ type: 'DomainDefined', data: { definition: def2, hostId: 'h1', placementEpoch: 1, added: true } }]);
    expect(after.persistent).toBe(true);
    expect(after.definition).toEqual(def);
    expect(after.nextDefinition).toEqual(def2);
  });

  it('defining again after removal starts a fresh domain with a new placement epoch', () => {
    const { after } = spec
      .given([defined(), undefined_(true)])
      .when({ type: 'define', claimSeq: 1, definition: def2, hostId: 'h2' })
      .then([{ type: 'DomainDefined', data: { definition: def2, hostId: 'h2', placementEpoch: 2, added: true } }]);
    expect(after).toMatchObject({ exists: true, removed: false, persistent: true, hostId: 'h2', placementEpoch: 2, pending: null });
  });
});

describe('undefine', () => {
  it('an inactive domain is removed', () => {
    const { after } = spec.given([defined()]).when({ type: 'undefine' }).then([undefined_(true)]);
    expect(after).toMatchObject({ exists: false, removed: true, persistent: false });
  });

  it('an active persistent domain becomes transient and disappears when it stops', () => {
    const { after } = spec.given(running).when({ type: 'undefine' }).then([undefined_(false)]);
    expect(after).toMatchObject({ exists: true, persistent: false, observed: { state: 'running' } });
    const gone = spec.given([...running, undefined_(false), requested('shutdown', 't-s'), completed('shutdown', 't-s', 'shutoff', 'shutdown')]).state;
    expect(gone).toMatchObject({ exists: false, removed: true });
    const crashed = spec.given([...running, undefined_(false), observed('shutoff', 'crashed')]).state;
    expect(crashed).toMatchObject({ exists: false, removed: true });
  });

  it('drops a pending next definition: there is no next boot for a transient domain', () => {
    const { after } = spec.given([...running, defined(def2, false)]).when({ type: 'undefine' }).then([undefined_(false)]);
    expect(after.nextDefinition).toBeNull();
  });

  it('a domain with a start in flight counts as active', () => {
    const { after } = spec.given([defined(), requested('start', 't1')]).when({ type: 'undefine' }).then([undefined_(false)]);
    expect(after.exists).toBe(true);
    const failed = spec.given([
      defined(),
      requested('start', 't1'),
      undefined_(false),
      {
        type: 'DomainOperationFailed',
        data: { op: 'start', taskId: 't1', error: { code: 'operation-failed', message: 'boom' }, observed: { state: 'shutoff', reason: 'failed' } },
      },
    ]).state;
    expect(failed).toMatchObject({ exists: false, removed: true });
  });

  it('a transient active domain is refused as the QEMU driver does', () => {
    spec.given([...running, undefined_(false)]).when({ type: 'undefine' }).thenThrows('operation-invalid', "cannot undefine transient domain 'web1'");
  });

  it('an unknown or removed domain is no-domain', () => {
    spec.given().when({ type: 'undefine' }).thenThrows('no-domain', `Domain not found: no domain with matching uuid '${UUID}'`);
    spec.given([defined(), undefined_(true)]).when({ type: 'undefine' }).thenThrows('no-domain', /no domain with matching uuid/);
  });
});

describe('operations from each observed state', () => {
  type Row = Record<LifecycleOp, string>;
  const inactive: Row = { start: OK, shutdown: NOT_RUNNING, destroy: NOT_RUNNING, suspend: NOT_RUNNING, resume: NOT_PAUSED, reboot: NOT_RUNNING };
  const activeNotPaused: Row = { start: ALREADY_RUNNING, shutdown: OK, destroy: OK, suspend: OK, resume: NOT_PAUSED, reboot: OK };
  const histories: Array<[string, Ev[], Row]> = [
    ['shutoff (never started)', [defined()], inactive],
    ['shutoff/shutdown', withObserved('shutoff', 'shutdown'), inactive],
    ['shutoff/destroyed', withObserved('shutoff', 'destroyed'), inactive],
    ['shutoff/crashed', withObserved('shutoff', 'crashed'), inactive],
    ['shutoff/failed', withObserved('shutoff', 'failed'), inactive],
    ['nostate', withObserved('nostate', 'unknown'), inactive],
    ['running', running, activeNotPaused],
    ['blocked', withObserved('blocked', 'unknown'), activeNotPaused],
    ['shutdown (in progress)', withObserved('shutdown', 'user'), activeNotPaused],
    ['crashed (preserved)', withObserved('crashed', 'panicked'), activeNotPaused],
    ['pmsuspended', withObserved('pmsuspended', 'unknown'), activeNotPaused],
    // libvirt accepts shutdown and reboot of a paused domain; suspending it again is refused.
    ['paused', paused, { start: ALREADY_RUNNING, shutdown: OK, destroy: OK, suspend: ALREADY_PAUSED, resume: OK, reboot: OK }],
  ];
  const ops: LifecycleOp[] = ['start', 'shutdown', 'destroy', 'suspend', 'resume', 'reboot'];
  const desiredAfter: Record<LifecycleOp, DomainStateName> = {
    start: 'running',
    shutdown: 'shutoff',
    destroy: 'shutoff',
    suspend: 'paused',
    resume: 'running',
    reboot: 'running',
  };

  for (const [label, history, row] of histories) {
    for (const o of ops) {
      const expected = row[o];
      if (expected === OK) {
        it(`${o} from ${label} is requested`, () => {
          const { before, after } = spec.given(history).when(op(o), NOW).then([expectRequested(o)]);
          expect(after.pending).toEqual({ op: o, taskId: `evt-${before.version + 1}-0`, requestedAt: NOW.toISOString(), deadline: deadlineFrom(NOW) });
          expect(after.desired).toBe(desiredAfter[o]);
          expect(after.observed).toEqual(before.observed);
          expect(after.lastError).toBeNull();
        });
      } else {
        it(`${o} from ${label} is operation-invalid: ${expected}`, () => {
          spec.given(history).when(op(o), NOW).thenThrows('operation-invalid', expected);
        });
      }
    }
  }

  it('every operation on an unknown domain is no-domain', () => {
    for (const o of ops) spec.given().when(op(o), NOW).thenThrows('no-domain', `Domain not found: no domain with matching uuid '${UUID}'`);
  });

  it('every operation on a removed domain is no-domain', () => {
    for (const o of ops) spec.given([defined(), undefined_(true)]).when(op(o), NOW).thenThrows('no-domain', /no domain with matching uuid/);
  });

  it('start paused asks for a paused guest', () => {
    const { after } = spec.given([defined()]).when(op('start', TIMEOUT, true), NOW).then([expectRequested('start', NOW, true)]);
    expect(after.desired).toBe('paused');
    const done = spec.given([defined(), requested('start', 't1', LIVE_DEADLINE, true), completed('start', 't1', 'paused', 'user')]).state;
    expect(done).toMatchObject({ pending: null, desired: 'paused', observed: { state: 'paused', reason: 'user' } });
  });

  it('the deadline is the decider clock plus the command timeout', () => {
    spec.given([defined()]).when(op('start', 5_000), NOW).then([
      { type: 'DomainStartRequested', data: { hostId: 'h1', placementEpoch: 1, deadline: '2025-01-01T00:10:05.000Z' } },
    ]);
  });

  it('intents carry the placement the domain has', () => {
    spec.given([defined(def, true, 'h7', 3)]).when(op('start'), NOW).then([
      { type: 'DomainStartRequested', data: { hostId: 'h7', placementEpoch: 3, deadline: deadlineFrom(NOW) } },
    ]);
  });
});

describe('pending operations', () => {
  const lockMessage = (o: LifecycleOp, since: string) =>
    `cannot acquire state change lock: domain 'web1' has operation '${o}' in progress since ${since}`;
  // given event i is stamped epoch + i seconds
  const startPending = [defined(), requested('start', 't-start')];
  const startRequestedAt = '2025-01-01T00:00:01.000Z';
  const shutdownPending = [...running, requested('shutdown', 't-shut')];
  const shutdownRequestedAt = '2025-01-01T00:00:03.000Z';

  it('start while start is pending: already being started', () => {
    spec.given(startPending).when(op('start'), NOW).thenThrows('operation-invalid', "domain 'web1' is already being started");
  });

  it('any other operation while one is in flight cannot take the lock', () => {
    for (const o of ['shutdown', 'suspend', 'resume', 'reboot'] as const) {
      spec.given(startPending).when(op(o), NOW).thenThrows('operation-invalid', lockMessage('start', startRequestedAt));
    }
    for (const o of ['start', 'shutdown', 'suspend', 'resume', 'reboot'] as const) {
      spec.given(shutdownPending).when(op(o), NOW).thenThrows('operation-invalid', lockMessage('shutdown', shutdownRequestedAt));
    }
  });

  it('the lock error names the pending operation in its details', () => {
    const g = spec.given(shutdownPending);
    try {
      g.when(op('suspend'), NOW).decided();
      expect.unreachable();
    } catch (e) {
      expect((e as { details: unknown }).details).toEqual({ pending: g.state.pending });
    }
  });

  it('destroy supersedes a pending start: the start is failed, then destroy is requested', () => {
    const { after } = spec
      .given(startPending)
      .when(op('destroy'), NOW)
      .then([
        {
          type: 'DomainOperationFailed',
          data: { op: 'start', taskId: 't-start', error: { code: 'operation-failed', message: "operation 'start' was superseded by destroy" } },
        },
        expectRequested('destroy'),
      ]);
    expect(after.pending).toMatchObject({ op: 'destroy', deadline: deadlineFrom(NOW) });
    expect(after.desired).toBe('shutoff');
    expect(after.exists).toBe(true);
  });

  it('destroy supersedes every other pending operation', () => {
    for (const o of ['shutdown', 'suspend', 'resume', 'reboot'] as const) {
      const history = o === 'resume' ? [...paused, requested(o, 't-x')] : [...running, requested(o, 't-x')];
      spec
        .given(history)
        .when(op('destroy'), NOW)
        .then([
          {
            type: 'DomainOperationFailed',
            data: { op: o, taskId: 't-x', error: { code: 'operation-failed', message: `operation '${o}' was superseded by destroy` } },
          },
          expectRequested('destroy'),
        ]);
    }
  });

  it('destroy while destroy is pending: already being destroyed', () => {
    spec.given([...running, requested('destroy', 't-d')]).when(op('destroy'), NOW).thenThrows('operation-invalid', "domain 'web1' is already being destroyed");
  });

  it('destroy superseding the start of a transient domain keeps it until the destroy reports', () => {
    // Undefined while its start was in flight: the guest may be booting, so the destroy must reach the host.
    const history = [...startPending, undefined_(false)];
    const { after } = spec
      .given(history)
      .when(op('destroy'), NOW)
      .then([
        {
          type: 'DomainOperationFailed',
          data: { op: 'start', taskId: 't-start', error: { code: 'operation-failed', message: "operation 'start' was superseded by destroy" } },
        },
        expectRequested('destroy'),
      ]);
    expect(after).toMatchObject({ exists: true, removed: false, persistent: false, pending: { op: 'destroy' } });
    const destroyId = after.pending!.taskId;
    const report: DomainCommand = { type: 'complete', taskId: destroyId, observed: { state: 'shutoff', reason: 'destroyed' } };
    const done = decide(report, after, NOW);
    expect(done).toEqual([
      { type: 'DomainOperationCompleted', data: { op: 'destroy', taskId: destroyId, observed: { state: 'shutoff', reason: 'destroyed' } } },
    ]);
    const gone = evolve(after, envelopeAt(done[0]!, after.version + 1));
    expect(gone).toMatchObject({ exists: false, removed: true, pending: null });
  });

  describe('an expired pending operation', () => {
    const expiredStart = [defined(), requested('start', 't-old', PAST_DEADLINE)];
    const timeout = (o: LifecycleOp, taskId: string, deadline = PAST_DEADLINE): DomainEventBody => ({
      type: 'DomainOperationFailed',
      data: { op: o, taskId, error: { code: 'timeout', message: `operation '${o}' did not finish before its deadline ${deadline}` } },
    });

    it('is recorded as a timeout failure in the same decision and no longer blocks', () => {
      const { after } = spec.given(expiredStart).when(op('start'), NOW).then([timeout('start', 't-old'), expectRequested('start')]);
      expect(after.pending).toMatchObject({ op: 'start', deadline: deadlineFrom(NOW) });
      // the new request clears the error the timeout left
      expect(after.lastError).toBeNull();
    });

    it('counts as expired exactly at its deadline', () => {
      spec.given(expiredStart).when(op('start'), new Date(PAST_DEADLINE)).then([timeout('start', 't-old'), expectRequested('start', new Date(PAST_DEADLINE))]);
      spec.given(expiredStart).when(op('start'), new Date(Date.parse(PAST_DEADLINE) - 1)).thenThrows('operation-invalid', /already being started/);
    });

    it('lets any operation the observed state allows go ahead', () => {
      for (const o of ['shutdown', 'suspend', 'reboot', 'destroy'] as const) {
        spec.given([...running, requested('reboot', 't-old', PAST_DEADLINE)]).when(op(o), NOW).then([timeout('reboot', 't-old'), expectRequested(o)]);
      }
    });

    it('does not make a forbidden operation allowed', () => {
      spec.given(expiredStart).when(op('destroy'), NOW).thenThrows('operation-invalid', NOT_RUNNING);
      spec.given(expiredStart).when(op('resume'), NOW).thenThrows('operation-invalid', NOT_PAUSED);
    });

    it('of a running transient domain leaves the domain to the next operation', () => {
      const history = [...running, undefined_(false), requested('shutdown', 't-old', PAST_DEADLINE)];
      const { after } = spec.given(history).when(op('destroy'), NOW).then([timeout('shutdown', 't-old'), expectRequested('destroy')]);
      expect(after).toMatchObject({ exists: true, persistent: false, pending: { op: 'destroy' } });
    });

    it('of a transient domain takes the domain with it: a new start is no-domain', () => {
      spec.given([...expiredStart, undefined_(false)]).when(op('start'), NOW).thenThrows('no-domain', /no domain with matching uuid/);
    });
  });
});

describe('task outcomes', () => {
  const startPending = [defined(), requested('start', 't1')];
  const fail = (taskId: string, observedState?: ObservedState): DomainCommand => ({
    type: 'fail',
    taskId,
    error: { code: 'operation-failed', message: 'qemu exited' },
    ...(observedState ? { observed: observedState } : {}),
  });

  it("a completion that leaves the guest running records the ports and ptys it got, until the guest stops", () => {
    const devices = { graphics: [{ index: 0, type: 'vnc' as const, port: 5901, listen: '127.0.0.1' }], chardevs: [{ alias: 'serial0', type: 'pty' as const, path: '/dev/pts/3' }] };
    const { after } = spec
      .given(startPending)
      .when({ type: 'complete', taskId: 't1', observed: { state: 'running', reason: 'booted' }, devices })
      .then([{ type: 'DomainOperationCompleted', data: { op: 'start', taskId: 't1', observed: { state: 'running', reason: 'booted' }, devices } }]);
    expect(after.devices).toEqual(devices);
    const withDevices: Ev[] = [...startPending, { type: 'DomainOperationCompleted', data: { op: 'start', taskId: 't1', observed: { state: 'running', reason: 'booted' }, devices } }];
    // Suspending leaves them; a guest that powers off on its own, or is destroyed, has none.
    expect(spec.given([...withDevices, requested('suspend', 't2'), completed('suspend', 't2', 'paused', 'user')]).state.devices).toEqual(devices);
    expect(spec.given([...withDevices, observed('shutoff', 'shutdown')]).state.devices).toBeUndefined();
    expect(spec.given([...withDevices, requested('destroy', 't3'), completed('destroy', 't3', 'shutoff', 'destroyed')]).state.devices).toBeUndefined();
  });

  it('complete with the pending task id records the outcome and frees the domain', () => {
    const { after } = spec
      .given(startPending)
      .when({ type: 'complete', taskId: 't1', observed: { state: 'running', reason: 'booted' } })
      .then([{ type: 'DomainOperationCompleted', data: { op: 'start', taskId: 't1', observed: { state: 'running', reason: 'booted' } } }]);
    expect(after).toMatchObject({ pending: null, observed: { state: 'running', reason: 'booted' }, desired: 'running', lastError: null });
  });

  it('fail with the pending task id records the error and what the host saw', () => {
    const { after } = spec
      .given(startPending)
      .when(fail('t1', { state: 'shutoff', reason: 'failed' }))
      .then([
        {
          type: 'DomainOperationFailed',
          data: { op: 'start', taskId: 't1', error: { code: 'operation-failed', message: 'qemu exited' }, observed: { state: 'shutoff', reason: 'failed' } },
        },
      ]);
    expect(after).toMatchObject({
      pending: null,
      observed: { state: 'shutoff', reason: 'failed' },
      desired: 'shutoff',
      lastError: { op: 'start', code: 'operation-failed', message: 'qemu exited', at: '2025-01-01T00:00:02.000Z' },
    });
  });

  it('fail without an observation keeps the last observed state', () => {
    const { after } = spec
      .given([...running, requested('suspend', 't2')])
      .when(fail('t2'))
      .then([{ type: 'DomainOperationFailed', data: { op: 'suspend', taskId: 't2', error: { code: 'operation-failed', message: 'qemu exited' } } }]);
    expect(after).toMatchObject({ pending: null, observed: { state: 'running', reason: 'booted' }, desired: 'running' });
  });

  it('a stale task id keeps only news about the guest', () => {
    spec
      .given(startPending)
      .when({ type: 'complete', taskId: 'other', observed: { state: 'shutoff', reason: 'unknown' } })
      .thenNothing();
    const { after } = spec
      .given(startPending)
      .when({ type: 'complete', taskId: 'other', observed: { state: 'running', reason: 'booted' } })
      .then([{ type: 'DomainStateObserved', data: { state: 'running', reason: 'booted' } }]);
    // the pending start is still the one that decides the domain's desired state
    expect(after.pending?.taskId).toBe('t1');
    expect(after.desired).toBe('running');
    spec.given(startPending).when(fail('other')).thenNothing();
    spec.given(startPending).when(fail('other', { state: 'shutoff', reason: 'unknown' })).thenNothing();
    spec
      .given(startPending)
      .when(fail('other', { state: 'shutoff', reason: 'failed' }))
      .then([{ type: 'DomainStateObserved', data: { state: 'shutoff', reason: 'failed' } }]);
  });

  it('a repeated report after the operation finished is not recorded twice', () => {
    const done = [...startPending, completed('start', 't1', 'running', 'booted')];
    spec.given(done).when({ type: 'complete', taskId: 't1', observed: { state: 'running', reason: 'booted' } }).thenNothing();
    spec.given(done).when(fail('t1')).thenNothing();
  });

  it('a report for an unknown domain is no-domain', () => {
    spec.given().when({ type: 'complete', taskId: 't', observed: { state: 'running', reason: 'booted' } }).thenThrows('no-domain');
    spec.given().when(fail('t')).thenThrows('no-domain');
  });

  it('a completion that stops a transient domain removes it', () => {
    const { after } = spec
      .given([...running, undefined_(false), requested('destroy', 'td')])
      .when({ type: 'complete', taskId: 'td', observed: { state: 'shutoff', reason: 'destroyed' } })
      .then([{ type: 'DomainOperationCompleted', data: { op: 'destroy', taskId: 'td', observed: { state: 'shutoff', reason: 'destroyed' } } }]);
    expect(after).toMatchObject({ exists: false, removed: true });
  });

  it('shutdown with on_poweroff=restart completes running and the domain stays', () => {
    const { after } = spec
      .given([...running, requested('shutdown', 'ts')])
      .when({ type: 'complete', taskId: 'ts', observed: { state: 'running', reason: 'booted' } })
      .then([{ type: 'DomainOperationCompleted', data: { op: 'shutdown', taskId: 'ts', observed: { state: 'running', reason: 'booted' } } }]);
    expect(after).toMatchObject({ exists: true, pending: null, desired: 'running' });
  });
});

describe('observe', () => {
  it('records a change nobody asked for, with its cause', () => {
    const { after } = spec
      .given(running)
      .when({ type: 'observe', state: 'shutoff', reason: 'crashed', cause: 'qemu exited with signal 9' })
      .then([{ type: 'DomainStateObserved', data: { state: 'shutoff', reason: 'crashed', cause: 'qemu exited with signal 9' } }]);
    expect(after).toMatchObject({ observed: { state: 'shutoff', reason: 'crashed' }, desired: 'shutoff' });
  });

  it('records nothing when the state is not news', () => {
    spec.given(running).when({ type: 'observe', state: 'running', reason: 'booted' }).thenNothing();
  });

  it('a different reason for the same state is news', () => {
    spec.given(running).when({ type: 'observe', state: 'running', reason: 'unpaused' }).then([
      { type: 'DomainStateObserved', data: { state: 'running', reason: 'unpaused' } },
    ]);
  });

  it('keeps the desired state of an operation in flight', () => {
    const { after } = spec
      .given([...running, requested('shutdown', 'ts')])
      .when({ type: 'observe', state: 'shutdown', reason: 'user' })
      .then([{ type: 'DomainStateObserved', data: { state: 'shutdown', reason: 'user' } }]);
    expect(after).toMatchObject({ desired: 'shutoff', pending: { taskId: 'ts' } });
  });

  it('on an unknown domain is no-domain', () => {
    spec.given().when({ type: 'observe', state: 'running', reason: 'booted' }).thenThrows('no-domain');
  });
});

describe('expire', () => {
  const expired = [defined(), requested('start', 't-old', PAST_DEADLINE)];
  it('fails the pending operation once its deadline passed', () => {
    const { after } = spec
      .given(expired)
      .when({ type: 'expire', taskId: 't-old' }, NOW)
      .then([
        {
          type: 'DomainOperationFailed',
          data: { op: 'start', taskId: 't-old', error: { code: 'timeout', message: `operation 'start' did not finish before its deadline ${PAST_DEADLINE}` } },
        },
      ]);
    expect(after).toMatchObject({ pending: null, desired: 'shutoff', lastError: { op: 'start', code: 'timeout' } });
  });

  it('does nothing before the deadline, for another task, without a pending operation, or for an unknown domain', () => {
    spec.given([defined(), requested('start', 't1')]).when({ type: 'expire', taskId: 't1' }, NOW).thenNothing();
    spec.given(expired).when({ type: 'expire', taskId: 'other' }, NOW).thenNothing();
    spec.given([defined()]).when({ type: 'expire', taskId: 't1' }, NOW).thenNothing();
    spec.given().when({ type: 'expire', taskId: 't1' }, NOW).thenNothing();
  });

  it('of a transient domain that never started removes it', () => {
    const { after } = spec.given([...expired, undefined_(false)]).when({ type: 'expire', taskId: 't-old' }, NOW).then([
      {
        type: 'DomainOperationFailed',
        data: { op: 'start', taskId: 't-old', error: { code: 'timeout', message: `operation 'start' did not finish before its deadline ${PAST_DEADLINE}` } },
      },
    ]);
    expect(after).toMatchObject({ exists: false, removed: true });
  });
});

describe('evolve bookkeeping', () => {
  it('tracks the version and each command id once, with the version it produced', () => {
    const g = spec.given([
      defined(),
      { ...requested('start', 't1'), commandId: 'c-start' },
      { ...completed('start', 't1', 'running', 'booted'), commandId: 'c-report' },
    ]);
    expect(g.state.version).toBe(3);
    expect(g.state.recentCommands).toEqual([
      ['given-1', 1],
      ['c-start', 2],
      ['c-report', 3],
    ]);
    expect(commandVersion(g.state, 'c-start')).toBe(2);
    expect(commandVersion(g.state, 'unknown')).toBeUndefined();
  });

  it('records a commit of several events under its command once', () => {
    const { after } = spec.given([defined(), requested('start', 't1')]).when(op('destroy'), NOW).then([
      {
        type: 'DomainOperationFailed',
        data: { op: 'start', taskId: 't1', error: { code: 'operation-failed', message: "operation 'start' was superseded by destroy" } },
      },
      expectRequested('destroy'),
    ]);
    expect(after.recentCommands.filter(([id]) => id === 'when')).toEqual([['when', 3]]);
    expect(after.version).toBe(3);
  });

  it('keeps only the 64 most recent command ids', () => {
    const history: Ev[] = [defined()];
    for (let i = 0; i < 70; i++) history.push({ ...observed(i % 2 ? 'running' : 'paused', 'unknown'), commandId: `c-${i}` });
    const s = spec.given(history).state;
    expect(s.recentCommands).toHaveLength(64);
    expect(s.recentCommands[0]).toEqual(['c-6', 8]);
    expect(s.recentCommands.at(-1)).toEqual(['c-69', 71]);
    expect(commandVersion(s, 'given-1')).toBeUndefined();
  });

  it('a request clears the last error; a failure sets it', () => {
    const failed = spec.given([
      ...running,
      requested('suspend', 't2'),
      { type: 'DomainOperationFailed', data: { op: 'suspend', taskId: 't2', error: { code: 'operation-failed', message: 'no' } } },
    ]).state;
    expect(failed.lastError).toMatchObject({ op: 'suspend', code: 'operation-failed', message: 'no' });
    const retried = spec.given([
      ...running,
      requested('suspend', 't2'),
      { type: 'DomainOperationFailed', data: { op: 'suspend', taskId: 't2', error: { code: 'operation-failed', message: 'no' } } },
      requested('suspend', 't3'),
    ]).state;
    expect(retried.lastError).toBeNull();
  });

  it('an outcome for another task leaves the pending operation alone', () => {
    const s = spec.given([...running, requested('reboot', 'tr'), completed('suspend', 'stale', 'paused', 'user')]).state;
    expect(s.pending?.taskId).toBe('tr');
    expect(s.observed).toEqual({ state: 'paused', reason: 'user' });
  });

  it('the initial state is an absent, shut off domain', () => {
    expect(initialDomainState(UUID)).toEqual({
      exists: false,
      removed: false,
      id: UUID,
      name: '',
      definition: null,
      nextDefinition: null,
      persistent: false,
      hostId: '',
      placementEpoch: 0,
      observed: { state: 'shutoff', reason: 'unknown' },
      interfaces: [],
      desired: 'shutoff',
      pending: null,
      lastError: null,
      version: 0,
      recentCommands: [],
      revokedClaimsUpTo: 0,
    });
  });
});

describe('name claims', () => {
  const revoked = (claimSeq: number, name = 'web1'): Ev => ({ type: 'NameClaimRevoked', data: { name, claimSeq } });

  it('a define whose claim was revoked before it landed is refused, and the fence changes nothing else', () => {
    const g = spec.given([revoked(7)]);
    expect(g.state).toMatchObject({ exists: false, revokedClaimsUpTo: 7, version: 1, recentCommands: [] });
    g.when({ type: 'define', claimSeq: 7, definition: def, hostId: 'h1' }).thenThrows('conflict', /taken over by another define/);
    g.when({ type: 'define', claimSeq: 3, definition: def, hostId: 'h1' }).thenThrows('conflict');
  });

  it('a define relying on a newer claim than the one revoked goes through', () => {
    spec
      .given([revoked(7)])
      .when({ type: 'define', claimSeq: 9, definition: def, hostId: 'h1' })
      .then([{ type: 'DomainDefined', data: { definition: def, hostId: 'h1', placementEpoch: 1, added: true } }]);
  });

  it('an undefined domain re-defining under a claim revoked meanwhile is refused', () => {
    const g = spec.given([defined(), { type: 'DomainUndefined', data: { removed: true } }, revoked(1)]);
    g.when({ type: 'define', claimSeq: 1, definition: def, hostId: 'h1' }).thenThrows('conflict');
  });

  it('the newest revocation is kept, whatever the order of fences', () => {
    const g = spec.given([revoked(9), revoked(4, 'other')]);
    expect(g.state.revokedClaimsUpTo).toBe(9);
    // Defining the domain keeps the fence for a later re-define.
    const after = spec.given([revoked(9), defined()]).state;
    expect(after.revokedClaimsUpTo).toBe(9);
  });
});

describe('events of a type this code does not know', () => {
  it('are passed over: the state is unchanged but for its version, so readers of the log go on', () => {
    const before = [defined(), requested('start', 't-start'), completed('start', 't-start', 'running', 'booted')].reduce(
      (s, e, i) => evolve(s, envelopeAt(e as DomainEventBody, i + 1)),
      initialDomainState(UUID),
    );
    const unknown = envelopeAt({ type: 'DomainProbed', data: {} } as unknown as DomainEventBody, 4);
    const after = evolve(before, unknown);
    expect(after).toBeDefined();
    expect({ ...after, version: before.version, recentCommands: before.recentCommands }).toEqual(before);
    expect(after.version).toBe(4);
  });
});

describe('domains of type test follow the test driver', () => {
  const tdef = DomainDefinition.parse({ name: 'web1', uuid: UUID, type: 'test', memoryKiB: 1048576, vcpus: 1 });
  const tRunning: Ev[] = [defined(tdef), requested('start', 't-start'), completed('start', 't-start', 'running', 'booted')];
  const tPaused: Ev[] = [...tRunning, requested('suspend', 't-suspend'), completed('suspend', 't-suspend', 'paused', 'user')];
  const tShutoff: Ev[] = [defined(tdef)];

  it('suspend of a paused or shut off domain is internal-error "not running", as testDomainSuspend says', () => {
    spec.given(tPaused).when(op('suspend'), NOW).thenThrows('internal-error', "domain 'web1' not running");
    spec.given(tShutoff).when(op('suspend'), NOW).thenThrows('internal-error', "domain 'web1' not running");
  });

  it('resume of anything but a paused domain is internal-error "not paused"', () => {
    spec.given(tRunning).when(op('resume'), NOW).thenThrows('internal-error', "domain 'web1' not paused");
    spec.given(tShutoff).when(op('resume'), NOW).thenThrows('internal-error', "domain 'web1' not paused");
  });

  it('shutdown of a shut off domain is internal-error; destroy and reboot stay operation-invalid', () => {
    spec.given(tShutoff).when(op('shutdown'), NOW).thenThrows('internal-error', "domain 'web1' not running");
    spec.given(tShutoff).when(op('destroy'), NOW).thenThrows('operation-invalid', NOT_RUNNING);
    spec.given(tShutoff).when(op('reboot'), NOW).thenThrows('operation-invalid', NOT_RUNNING);
  });

  it('undefine of a running transient domain is accepted and leaves it running, transient', () => {
    const { after } = spec.given([...tRunning, undefined_(false)]).when({ type: 'undefine' }).then([{ type: 'DomainUndefined', data: { removed: false } }]);
    expect(after).toMatchObject({ exists: true, persistent: false, observed: { state: 'running' } });
  });

  it('a domain of another type keeps the QEMU driver refusal', () => {
    spec.given([...running, undefined_(false)]).when({ type: 'undefine' }).thenThrows('operation-invalid', "cannot undefine transient domain 'web1'");
    spec.given(paused).when(op('suspend'), NOW).thenThrows('operation-invalid', ALREADY_PAUSED);
  });
});

describe("virsh's domain id", () => {
  it('is given when the guest becomes active, kept while it stays so, and cleared when it stops', () => {
    const started = spec.given(running).state;
    expect(started.domid).toBe(3);
    expect(spec.given(paused).state.domid).toBe(3);
    expect(spec.given([...running, observed('shutoff', 'shutdown')]).state.domid).toBeUndefined();
    const again = spec.given([...running, observed('shutoff', 'shutdown'), requested('start', 't2'), completed('start', 't2', 'running', 'booted')]).state;
    expect(again.domid).toBe(6);
  });
});

describe('create', () => {
  const tdef = DomainDefinition.parse({ name: 'web1', uuid: UUID, type: 'test', memoryKiB: 1048576, vcpus: 1 });
  const create = (paused = false): DomainCommand => ({ type: 'create', definition: tdef, hostId: 'h1', claimSeq: 1, paused, timeoutMs: TIMEOUT });

  it('a new domain is defined transient and its start requested in one decision', () => {
    const { after } = spec
      .given()
      .when(create(), NOW)
      .then([
        { type: 'DomainDefined', data: { definition: tdef, hostId: 'h1', placementEpoch: 1, added: true, transient: true } },
        expectRequested('start'),
      ]);
    expect(after).toMatchObject({ exists: true, persistent: false, pending: { op: 'start' } });
  });

  it('a transient domain whose start fails is gone, as in libvirt', () => {
    const failed = spec.given([
      { type: 'DomainDefined', data: { definition: tdef, hostId: 'h1', placementEpoch: 1, added: true, transient: true } },
      requested('start', 't1'),
      { type: 'DomainOperationFailed', data: { op: 'start', taskId: 't1', error: { code: 'operation-failed', message: 'no' }, observed: { state: 'shutoff', reason: 'failed' } } },
    ]).state;
    expect(failed).toMatchObject({ exists: false, removed: true });
  });

  it('a defined inactive domain starts and stays persistent; an active one is refused', () => {
    const { after } = spec.given([defined(tdef)]).when(create(true), NOW).then([
      { type: 'DomainDefined', data: { definition: tdef, hostId: 'h1', placementEpoch: 1, added: false } },
      expectRequested('start', NOW, true),
    ]);
    expect(after.persistent).toBe(true);
    spec.given([...running]).when({ type: 'create', definition: { ...tdef, type: 'kvm' }, hostId: 'h1', claimSeq: 1, paused: false, timeoutMs: TIMEOUT }, NOW).thenThrows('operation-invalid', "domain 'web1' is already active");
  });
});

describe('domrename', () => {
  const rename = (releaseClaimSeq?: number): DomainCommand => ({ type: 'rename', newName: 'web2', claimSeq: 10, ...(releaseClaimSeq !== undefined ? { releaseClaimSeq } : {}) });

  it('a shut off persistent domain takes the new name, and its old claim is fenced in the same commit', () => {
    const { after } = spec.given([defined()]).when(rename(1), NOW).then([
      { type: 'DomainRenamed', data: { name: 'web2' } },
      { type: 'NameClaimRevoked', data: { name: 'web1', claimSeq: 1 } },
    ]);
    expect(after).toMatchObject({ name: 'web2', definition: { name: 'web2' }, revokedClaimsUpTo: 1 });
    expect(lifecycleFor(spec.given([defined()]).state, { type: 'DomainRenamed', data: { name: 'web2' } })).toEqual([
      { event: 'UNDEFINED', detail: 'RENAMED', name: 'web1' },
      { event: 'DEFINED', detail: 'RENAMED' },
    ]);
  });

  it('refuses as testDomainRename does', () => {
    spec.given(running).when(rename(), NOW).thenThrows('operation-invalid', 'cannot rename active domain');
    spec.given([defined(), requested('start', 't1'), completed('start', 't1', 'running', 'booted'), undefined_(false), observed('shutoff', 'destroyed')]).when(rename(), NOW).thenThrows('no-domain', /no domain/);
    spec.given([defined()]).when({ type: 'rename', newName: 'web1', claimSeq: 10 }, NOW).thenThrows('operation-invalid', "Can't rename domain to itself");
  });
});

describe('desc (set-metadata)', () => {
  const desc = (live = false, config = false): DomainCommand => ({ type: 'set-metadata', field: 'description', value: 'hello', live, config });

  it('changes the persistent definition of a shut off domain, the live one of a running domain', () => {
    expect(spec.given([defined()]).when(desc(), NOW).then([{ type: 'DomainMetadataSet', data: { field: 'description', value: 'hello', live: false, config: true } }]).after.definition?.description).toBe('hello');
    const { after } = spec.given(running).when(desc(), NOW).then([{ type: 'DomainMetadataSet', data: { field: 'description', value: 'hello', live: true, config: false } }]);
    expect(after.definition?.description).toBe('hello');
    // The next boot keeps what it had.
    expect(after.nextDefinition?.description).toBeUndefined();
  });

  it('drops the stored XML of a domain defined from XML, so dumpxml shows the new text', () => {
    const fromXml = { ...def, xml: "<domain type='kvm'><name>web1</name></domain>" };
    const { after } = spec.given([defined(fromXml)]).when(desc(), NOW).then([{ type: 'DomainMetadataSet', data: { field: 'description', value: 'hello', live: false, config: true } }]);
    expect(after.definition?.xml).toBeUndefined();
    expect(after.definition?.description).toBe('hello');
  });

  it('refuses --live on a shut off domain and --config on a transient one', () => {
    spec.given([defined()]).when(desc(true), NOW).thenThrows('operation-invalid', 'domain is not running');
    spec.given([...running, undefined_(false)]).when(desc(false, true), NOW).thenThrows('operation-invalid', 'cannot change persistent config of a transient domain');
  });
});
