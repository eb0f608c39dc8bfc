import { describe, expect, it } from 'vitest';
import { awaitsFailover, decide, evolve, initialDomainState } from './decider.ts';
import { DomainDefinition } from './definition.ts';
import type { DomainEventBody } from './events.ts';
import { HA_ELEMENT, restartsOnHostLoss, VIRTPLANE_XML_NS, withRestartOnHostLoss } from './ha.ts';
import { lifecycleFor } from '../lifecycle.ts';
import { formatDomainXml, parseDomainXml } from '../xml/index.ts';
import { deciderSpec, type GivenEvent } from '../testing/decider-spec.ts';

const UUID = '6f1c1a3e-2b7d-4c55-9a0e-3d2f9b8c7a11';
const spec = deciderSpec({ decide, evolve, initialState: () => initialDomainState(UUID) }, { aggregateType: 'domain', aggregateId: UUID });
const plain = DomainDefinition.parse({ name: 'web1', uuid: UUID, memoryKiB: 65536, vcpus: 1 });
const ha = DomainDefinition.parse({ name: 'web1', uuid: UUID, memoryKiB: 65536, vcpus: 1, metadata: withRestartOnHostLoss(undefined) });
const NOW = new Date('2025-01-01T00:10:00.000Z');
const LIVE = '2025-01-01T01:00:00.000Z';

type Ev = GivenEvent<DomainEventBody>;
const defined = (d = plain): Ev => ({ type: 'DomainDefined', data: { definition: d, hostId: 'h1', placementEpoch: 1, added: true } });
const startRequested = (id: string): Ev => ({ type: 'DomainStartRequested', id, data: { hostId: 'h1', placementEpoch: 1, deadline: LIVE } });
const started = (id: string): Ev => ({ type: 'DomainOperationCompleted', data: { op: 'start', taskId: id, observed: { state: 'running', reason: 'booted' } } });
const running = (d = plain): Ev[] => [defined(d), startRequested('t1'), started('t1')];
const hostLost: Ev = { type: 'DomainHostLost', data: { hostId: 'h1', desired: 'running' } };
const lostWanting = (desired: 'running' | 'shutoff' | 'paused', leaseRevision?: number): Ev => ({
  type: 'DomainHostLost',
  data: { hostId: 'h1', ...(leaseRevision !== undefined ? { leaseRevision } : {}), desired },
});

describe('a domain whose host is lost', () => {
  it('becomes unknown, never running, with what was known kept aside', () => {
    const { after } = spec.given(running()).when({ type: 'host-lost', hostId: 'h1' }, NOW).then([hostLost]);
    expect(after.hostLost).toBe(true);
    expect(after.observed).toEqual({ state: 'nostate', reason: 'unknown' });
    expect(after.lastObserved).toEqual({ state: 'running', reason: 'booted' });
    expect(after.exists).toBe(true);
  });

  it('its operation in flight fails at once, releasing the domain', () => {
    const { after } = spec
      .given([...running(), { type: 'DomainShutdownRequested', id: 't2', data: { hostId: 'h1', placementEpoch: 1, deadline: LIVE } }])
      .when({ type: 'host-lost', hostId: 'h1' }, NOW)
      .then([
        { type: 'DomainOperationFailed', data: { op: 'shutdown', taskId: 't2', error: { code: 'operation-failed', message: "host 'h1' was lost while operation 'shutdown' was in progress" } } },
        lostWanting('shutoff'),
      ]);
    expect(after.pending).toBeNull();
    expect(after.lastError?.code).toBe('operation-failed');
  });

  it('a pending start fails and the domain is unknown, since the guest may have booted', () => {
    const { after } = spec
      .given([defined(), startRequested('t1')])
      .when({ type: 'host-lost', hostId: 'h1' }, NOW)
      .then([
        { type: 'DomainOperationFailed', data: { op: 'start', taskId: 't1', error: { code: 'operation-failed', message: "host 'h1' was lost while operation 'start' was in progress" } } },
        hostLost,
      ]);
    expect(after).toMatchObject({ exists: true, hostLost: true, pending: null, observed: { state: 'nostate' } });
  });

  it('a shut off domain is unknown too (nothing on a lost host is known), last known shut off, and not restarted', () => {
    const { after } = spec.given([defined(ha)]).when({ type: 'host-lost', hostId: 'h1', leaseRevision: 7 }, NOW).then([lostWanting('shutoff', 7)]);
    expect(after).toMatchObject({ hostLost: true, observed: { state: 'nostate' }, lastObserved: { state: 'shutoff' }, hostLostRevision: 7 });
    expect(awaitsFailover(after)).toBe(false);
  });

  it('one loss marks a domain once: declared off by the operator, it is not marked again for the same lease', () => {
    const g = spec.given([...running(), lostWanting('running', 7), { type: 'DomainStateObserved', data: { state: 'shutoff', reason: 'destroyed' } }]);
    g.when({ type: 'host-lost', hostId: 'h1', leaseRevision: 7 }, NOW).thenNothing();
    // A later loss of the same host (it came back, then went again) marks it again.
    g.when({ type: 'host-lost', hostId: 'h1', leaseRevision: 9 }, NOW).then([lostWanting('shutoff', 9)]);
  });

  it('an HA domain whose start was in flight fails it at once, and is still restarted elsewhere, once', () => {
    const g = spec.given([defined(ha), startRequested('t1')]);
    const { after } = g.when({ type: 'host-lost', hostId: 'h1' }, NOW).then([
      { type: 'DomainOperationFailed', data: { op: 'start', taskId: 't1', error: { code: 'operation-failed', message: "host 'h1' was lost while operation 'start' was in progress" } } },
      lostWanting('running'),
    ]);
    expect(after).toMatchObject({ pending: null, desired: 'running', lastError: { op: 'start', code: 'operation-failed' } });
    expect(awaitsFailover(after)).toBe(true);
    const moved = spec.given([defined(ha), startRequested('t1'), { type: 'DomainOperationFailed', data: { op: 'start', taskId: 't1', error: { code: 'operation-failed', message: 'lost' } } }, lostWanting('running')]);
    moved.when({ type: 'failover', fromHostId: 'h1', hostId: 'h2', timeoutMs: 60_000 }, NOW).then([
      { type: 'DomainFailedOver', data: { fromHostId: 'h1', hostId: 'h2', placementEpoch: 2 } },
      { type: 'DomainStartRequested', data: { hostId: 'h2', placementEpoch: 2, deadline: '2025-01-01T00:11:00.000Z' } },
    ]);
  });

  it('is marked once, and only for the host it is on', () => {
    spec.given([...running(), hostLost]).when({ type: 'host-lost', hostId: 'h1' }, NOW).thenNothing();
    spec.given(running()).when({ type: 'host-lost', hostId: 'h2' }, NOW).thenNothing();
  });

  it('commands answer at once with a clear error instead of waiting for a deadline', () => {
    const g = spec.given([...running(), hostLost]);
    for (const type of ['shutdown', 'destroy', 'suspend', 'reboot'] as const) {
      g.when({ type, timeoutMs: 30_000 }, NOW).thenThrows('operation-invalid', /host 'h1', which is lost: its state is unknown \(host lost\)/);
    }
    g.when({ type: 'start', paused: false, timeoutMs: 30_000 }, NOW).thenThrows('operation-invalid', /lost/);
    g.when({ type: 'undefine' }, NOW).thenThrows('operation-invalid', /lost/);
  });

  it('destroy --force records it shut off, and it can be started again', () => {
    const { after } = spec
      .given([...running(), hostLost])
      .when({ type: 'destroy', timeoutMs: 30_000, force: true }, NOW)
      .then([{ type: 'DomainStateObserved', data: { state: 'shutoff', reason: 'destroyed', cause: "host 'h1' lost; declared off by the operator" } }]);
    expect(after.hostLost).toBe(false);
    expect(after.observed).toEqual({ state: 'shutoff', reason: 'destroyed' });
  });

  it('a report from the returned host makes the state known again, told against what was known before', () => {
    const g = spec.given([...running(), hostLost]);
    const { after } = g.when({ type: 'observe', state: 'paused', reason: 'user', cause: 'host returned' }, NOW).then([
      { type: 'DomainStateObserved', data: { state: 'paused', reason: 'user', cause: 'host returned' } },
    ]);
    expect(after.hostLost).toBe(false);
    const events = lifecycleFor(g.state, { type: 'DomainStateObserved', data: { state: 'paused', reason: 'user' } });
    expect(events).toEqual([{ event: 'SUSPENDED', detail: 'PAUSED' }]);
  });

  it('the lifecycle feed says UNKNOWN/HOST_LOST', () => {
    expect(lifecycleFor(spec.given(running()).state, hostLost as DomainEventBody)).toEqual([{ event: 'UNKNOWN', detail: 'HOST_LOST' }]);
  });
});

describe('restart on another host (HA)', () => {
  const failover = { type: 'failover' as const, fromHostId: 'h1', hostId: 'h2', timeoutMs: 60_000 };

  it('moves ownership with a new epoch and starts it on the new host, in one commit', () => {
    const g = spec.given([...running(ha), hostLost]);
    expect(awaitsFailover(g.state)).toBe(true);
    const { after } = g.when(failover, NOW).then([
      { type: 'DomainFailedOver', data: { fromHostId: 'h1', hostId: 'h2', placementEpoch: 2 } },
      { type: 'DomainStartRequested', data: { hostId: 'h2', placementEpoch: 2, deadline: '2025-01-01T00:11:00.000Z' } },
    ]);
    expect(after).toMatchObject({ hostId: 'h2', placementEpoch: 2, hostLost: false, observed: { state: 'shutoff' }, desired: 'running' });
    expect(after.pending?.op).toBe('start');
    expect(awaitsFailover(after)).toBe(false);
  });

  it('happens exactly once: a second failover (another replica, a retry) records nothing', () => {
    const g = spec.given([
      ...running(ha),
      hostLost,
      { type: 'DomainFailedOver', data: { fromHostId: 'h1', hostId: 'h2', placementEpoch: 2 } },
      { type: 'DomainStartRequested', id: 't3', data: { hostId: 'h2', placementEpoch: 2, deadline: LIVE } },
    ]);
    g.when(failover, NOW).thenNothing();
    g.when({ ...failover, hostId: 'h3' }, NOW).thenNothing();
  });

  it('only for domains that ask for it, that were meant to run, on another host', () => {
    spec.given([...running(plain), hostLost]).when(failover, NOW).thenNothing();
    spec.given([...running(ha)]).when(failover, NOW).thenNothing();
    spec.given([...running(ha), hostLost]).when({ ...failover, hostId: 'h1' }, NOW).thenNothing();
    expect(awaitsFailover(spec.given([...running(plain), hostLost]).state)).toBe(false);
  });

  it('a late report from the old host about the old task changes nothing the new host owns', () => {
    const g = spec.given([
      ...running(ha),
      hostLost,
      { type: 'DomainFailedOver', data: { fromHostId: 'h1', hostId: 'h2', placementEpoch: 2 } },
      { type: 'DomainStartRequested', id: 't3', data: { hostId: 'h2', placementEpoch: 2, deadline: LIVE } },
    ]);
    g.when({ type: 'complete', taskId: 't1', observed: { state: 'running', reason: 'booted' } }, NOW).then([
      { type: 'DomainStateObserved', data: { state: 'running', reason: 'booted' } },
    ]);
    // The ownership check (host and epoch) is the command service's, before the decider: see agent-reports.
    expect(g.state.pending?.taskId).toBe('t3');
  });
});

describe('the restart-on-host-loss setting in <metadata>', () => {
  it('is recognised under virtplane\'s namespace, with any prefix, and nowhere else', () => {
    expect(restartsOnHostLoss({ metadata: HA_ELEMENT })).toBe(true);
    expect(restartsOnHostLoss({ metadata: `<x:ha xmlns:x="${VIRTPLANE_XML_NS}" restart="on-host-loss"/>` })).toBe(true);
    expect(restartsOnHostLoss({ metadata: `<ha xmlns="${VIRTPLANE_XML_NS}" restart="on-host-loss"/>` })).toBe(true);
    expect(restartsOnHostLoss({ metadata: `<ha xmlns="urn:other" restart="on-host-loss"/>` })).toBe(false);
    expect(restartsOnHostLoss({ metadata: `<vp:ha xmlns:vp="${VIRTPLANE_XML_NS}" restart="never"/>` })).toBe(false);
    expect(restartsOnHostLoss({ metadata: `<broken ${VIRTPLANE_XML_NS}` })).toBe(false);
    expect(restartsOnHostLoss({})).toBe(false);
  });

  it('is kept through dumpxml and a define of its output, beside other applications\' metadata', () => {
    const other = "<app:info xmlns:app='urn:x'><app:owner>ops</app:owner></app:info>";
    const xml = `<domain type='test'><name>web1</name><uuid>${UUID}</uuid><memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os><metadata>${other}${HA_ELEMENT}</metadata></domain>`;
    const d = parseDomainXml(xml);
    expect(restartsOnHostLoss(d)).toBe(true);
    const again = parseDomainXml(formatDomainXml(d));
    expect(restartsOnHostLoss(again)).toBe(true);
    expect(again.metadata).toContain('app:owner');
    expect(withRestartOnHostLoss(again.metadata)).toBe(again.metadata);
  });
});

describe('evacuating a host', () => {
  const evacuate = { type: 'evacuate' as const, fromHostId: 'h1', force: false, timeoutMs: 60_000 };
  const move = { type: 'evacuate-move' as const, fromHostId: 'h1', hostId: 'h2', timeoutMs: 60_000 };
  const destroyRequested = (id: string): Ev => ({ type: 'DomainDestroyRequested', id, data: { hostId: 'h1', placementEpoch: 1, deadline: LIVE } });
  const destroyed = (id: string): Ev => ({ type: 'DomainOperationCompleted', data: { op: 'destroy', taskId: id, observed: { state: 'shutoff', reason: 'destroyed' } } });
  const started: Ev = { type: 'DomainEvacuationStarted', data: { fromHostId: 'h1', start: 'running' } };

  it('records the evacuation with what the domain was doing, then stops its guest on the host', () => {
    const { after } = spec.given(running()).when(evacuate, NOW).then([started, { type: 'DomainDestroyRequested', data: { hostId: 'h1', placementEpoch: 1, deadline: '2025-01-01T00:11:00.000Z' } }]);
    expect(after.evacuating).toEqual({ fromHostId: 'h1', start: 'running' });
    // Repeated (a second operator, a retry) while the stop is in flight: nothing more.
    spec.given([...running(), started, destroyRequested('d1')]).when(evacuate, NOW).thenNothing();
  });

  it('moves only once the guest is stopped, under a new epoch, and starts it on the new host; exactly once', () => {
    spec.given([...running(), started, destroyRequested('d1')]).when(move, NOW).thenNothing();
    const g = spec.given([...running(), started, destroyRequested('d1'), destroyed('d1')]);
    const { after } = g.when(move, NOW).then([
      { type: 'DomainEvacuated', data: { fromHostId: 'h1', hostId: 'h2', placementEpoch: 2 } },
      { type: 'DomainStartRequested', data: { hostId: 'h2', placementEpoch: 2, deadline: '2025-01-01T00:11:00.000Z' } },
    ]);
    expect(after).toMatchObject({ hostId: 'h2', placementEpoch: 2, pending: { op: 'start' } });
    expect(after.evacuating).toBeUndefined();
    spec.given([...running(), started, destroyRequested('d1'), destroyed('d1'), { type: 'DomainEvacuated', data: { fromHostId: 'h1', hostId: 'h2', placementEpoch: 2 } }])
      .when({ ...move, hostId: 'h3' }, NOW)
      .thenNothing();
  });

  it('a shut off domain just moves; a transient one is refused; one on another host is left alone', () => {
    const { after } = spec.given([defined()]).when(evacuate, NOW).then([{ type: 'DomainEvacuationStarted', data: { fromHostId: 'h1' } }]);
    expect(after.evacuating).toEqual({ fromHostId: 'h1' });
    spec.given([defined(), { type: 'DomainEvacuationStarted', data: { fromHostId: 'h1' } }]).when(move, NOW).then([{ type: 'DomainEvacuated', data: { fromHostId: 'h1', hostId: 'h2', placementEpoch: 2 } }]);
    spec.given([...running(), { type: 'DomainUndefined', data: { removed: false } }]).when(evacuate, NOW).thenThrows('operation-invalid', /transient/);
    spec.given(running()).when({ ...evacuate, fromHostId: 'h9' }, NOW).thenNothing();
  });

  it('on a lost host only with the operator word that it is off', () => {
    spec.given([...running(), hostLost]).when(evacuate, NOW).thenThrows('operation-invalid', /--force/);
    const { after } = spec.given([...running(), hostLost]).when({ ...evacuate, force: true }, NOW).then([
      started,
      { type: 'DomainStateObserved', data: { state: 'shutoff', reason: 'destroyed', cause: "host 'h1' lost; declared off by the operator" } },
    ]);
    expect(after).toMatchObject({ hostLost: false, evacuating: { start: 'running' } });
  });

  it('an operator start on the old host takes the domain out of the evacuation', () => {
    const g = spec.given([defined(), { type: 'DomainEvacuationStarted', data: { fromHostId: 'h1' } }, startRequested('t9')]);
    expect(g.state.evacuating).toBeUndefined();
  });
});
