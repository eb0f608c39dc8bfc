import { describe, expect, it } from 'vitest';
import { decideHost, decideRegister, evolveHost, initialHostState } from './decider.ts';
import type { HostEventBody, RegisterHostRequest } from './events.ts';
import { deciderSpec } from '../testing/decider-spec.ts';
import type { Envelope } from '../envelope.ts';

const spec = deciderSpec(
  { decide: decideRegister, evolve: evolveHost, initialState: () => initialHostState('h1') },
  { aggregateType: 'host', aggregateId: 'h1' },
);

const caps = { driver: 'test', domainTypes: ['test'], cpus: 4, memoryKiB: 8388608, features: {} };
const register = (instanceId: string, capabilities = caps, agentVersion = '0.1.0'): RegisterHostRequest => ({
  hostId: 'h1',
  hostname: 'node1.example',
  instanceId,
  agentVersion,
  capabilities,
});
const registered = (instanceId: string, capabilities = caps, agentVersion = '0.1.0'): HostEventBody => ({
  type: 'HostRegistered',
  data: { hostname: 'node1.example', instanceId, agentVersion, capabilities },
});

describe('host decider', () => {
  it('a first registration is recorded', () => {
    const { after } = spec.given().when(register('i-1')).then([registered('i-1')]);
    expect(after).toEqual({
      exists: true,
      hostId: 'h1',
      hostname: 'node1.example',
      instanceId: 'i-1',
      agentVersion: '0.1.0',
      capabilities: caps,
      registeredAt: '2025-01-01T00:00:00.000Z',
      version: 1,
    });
  });

  it('the same agent process registering again records nothing', () => {
    spec.given([registered('i-1')]).when(register('i-1')).thenNothing();
  });

  it('every agent restart is recorded, even with nothing else changed', () => {
    const { after } = spec.given([registered('i-1')]).when(register('i-2')).then([registered('i-2')]);
    expect(after).toMatchObject({ instanceId: 'i-2', version: 2, registeredAt: '2025-01-01T00:00:01.000Z' });
  });

  it('changed capabilities from the same process are recorded', () => {
    const more = { ...caps, domainTypes: ['test', 'kvm'] };
    const { after } = spec.given([registered('i-1')]).when(register('i-1', more)).then([registered('i-1', more)]);
    expect(after.capabilities).toEqual(more);
  });

  it('the host id is the aggregate id, not part of the event', () => {
    const [e] = decideRegister(register('i-1'), initialHostState('h1'));
    expect(e?.data).not.toHaveProperty('hostId');
  });

  it('the initial state is an unknown host', () => {
    expect(initialHostState('h9')).toEqual({
      exists: false,
      hostId: 'h9',
      hostname: '',
      instanceId: '',
      agentVersion: '',
      capabilities: null,
      registeredAt: null,
      version: 0,
    });
  });
});

describe('host loss', () => {
  const lost = (leaseRevision: number) => ({ type: 'lost' as const, leaseRevision, leaseWrittenAt: '2025-01-01T00:00:00.000Z' });
  const lostSpec = deciderSpec(
    { decide: (c: Parameters<typeof decideHost>[0], s: ReturnType<typeof initialHostState>) => decideHost(c, s), evolve: evolveHost, initialState: () => initialHostState('h1') },
    { aggregateType: 'host', aggregateId: 'h1' },
  );
  const granted = (instanceId: string, leaseRevision: number): HostEventBody => ({
    type: 'HostRegistered',
    data: { hostname: 'node1.example', instanceId, agentVersion: '0.1.0', capabilities: caps, leaseRevision },
  });

  it('an expired lease makes the host lost, once', () => {
    const { after } = lostSpec.given([granted('i-1', 3)]).when(lost(7)).then([{ type: 'HostLost', data: { leaseRevision: 7, leaseWrittenAt: '2025-01-01T00:00:00.000Z' } }]);
    expect(after).toMatchObject({ lost: true, leaseRevision: 7 });
    lostSpec.given([granted('i-1', 3), { type: 'HostLost', data: { leaseRevision: 7, leaseWrittenAt: '2025-01-01T00:00:00.000Z' } }]).when(lost(7)).thenNothing();
  });

  it('a lease older than the newest grant is stale: the host registered since', () => {
    lostSpec.given([granted('i-1', 3), granted('i-1', 9)]).when(lost(7)).thenNothing();
  });

  it('an unknown host is never lost', () => {
    lostSpec.given().when(lost(1)).thenNothing();
  });

  it('every new grant is recorded, so a loss decided against an older one is decided again', () => {
    const { after } = lostSpec
      .given([granted('i-1', 3)])
      .when({ type: 'register', ...register('i-1'), leaseRevision: 9 })
      .then([granted('i-1', 9)]);
    expect(after.leaseRevision).toBe(9);
    lostSpec.given([granted('i-1', 3)]).when({ type: 'register', ...register('i-1'), leaseRevision: 3 }).thenNothing();
  });

  it('a grant to a lost host records its return', () => {
    const { after } = lostSpec
      .given([granted('i-1', 3), { type: 'HostLost', data: { leaseRevision: 7, leaseWrittenAt: '2025-01-01T00:00:00.000Z' } }])
      .when({ type: 'register', ...register('i-1'), leaseRevision: 12 })
      .then([granted('i-1', 12), { type: 'HostReturned', data: { instanceId: 'i-1', leaseRevision: 12 } }]);
    expect(after).toMatchObject({ lost: false, leaseRevision: 12 });
  });
});

describe('host maintenance', () => {
  const mSpec = deciderSpec(
    { decide: (c: Parameters<typeof decideHost>[0], s: ReturnType<typeof initialHostState>) => decideHost(c, s), evolve: evolveHost, initialState: () => initialHostState('h1') },
    { aggregateType: 'host', aggregateId: 'h1' },
  );
  it('on and off are recorded; asking for what holds records nothing', () => {
    const { after } = mSpec.given([registered('i-1')]).when({ type: 'maintenance', on: true }).then([{ type: 'HostMaintenanceSet', data: { on: true } }]);
    expect(after.maintenance).toBe(true);
    mSpec.given([registered('i-1'), { type: 'HostMaintenanceSet', data: { on: true } }]).when({ type: 'maintenance', on: true }).thenNothing();
    mSpec.given([registered('i-1')]).when({ type: 'maintenance', on: false }).thenNothing();
  });
  it('an unknown host is refused', () => {
    mSpec.given().when({ type: 'maintenance', on: true }).thenThrows('no-host', "no host with id 'h1' has registered");
  });
});

const envelopeOf = (e: HostEventBody) => ({ ...e, id: 'e', aggregateType: 'host', aggregateId: 'h1', time: '2025-01-01T00:00:00.000Z', commandId: 'c', correlationId: 'c', causationId: 'c', actor: 't', version: 0 }) as unknown as Envelope<HostEventBody>;

describe('removing a host', () => {
  const reg = { type: 'register' as const, hostId: 'h1', hostname: 'h1', instanceId: 'i1', agentVersion: '1', capabilities: { driver: 'test', domainTypes: ['test'], cpus: 1, memoryKiB: 1, features: {} }, leaseRevision: 1 };
  const registered = () => {
    let s = initialHostState('h1');
    for (const data of decideHost(reg, s)) s = evolveHost(s, { ...envelopeOf(data), version: s.version + 1 });
    return s;
  };

  it('refuses a host that still has domains, and removes an empty one once', () => {
    const s = registered();
    expect(() => decideHost({ type: 'remove', domains: 2 }, s)).toThrow(/still has 2 domain/);
    const out = decideHost({ type: 'remove', domains: 0 }, s);
    expect(out).toEqual([{ type: 'HostRemoved', data: { wasLost: false } }]);
    const removed = evolveHost(s, { ...envelopeOf(out[0]!), version: s.version + 1 });
    expect(decideHost({ type: 'remove', domains: 0 }, removed)).toEqual([]);
  });

  it('refuses a removed host that registers until it is readmitted, and never declares it lost', () => {
    const s = registered();
    const removed = evolveHost(s, { ...envelopeOf({ type: 'HostRemoved', data: { wasLost: false } }), version: s.version + 1 });
    expect(() => decideHost({ ...reg, instanceId: 'i2', leaseRevision: 5 }, removed)).toThrow(/was removed; enroll it again/);
    expect(decideHost({ type: 'lost', leaseRevision: 9, leaseWrittenAt: new Date().toISOString() }, removed)).toEqual([]);
    const back = decideHost({ type: 'readmit' }, removed);
    expect(back).toEqual([{ type: 'HostReadmitted', data: {} }]);
    const readmitted = evolveHost(removed, { ...envelopeOf(back[0]!), version: removed.version + 1 });
    expect(decideHost({ ...reg, instanceId: 'i2', leaseRevision: 5 }, readmitted).map((e) => e.type)).toEqual(['HostRegistered']);
    expect(readmitted.maintenance).toBe(true);
    expect(decideHost({ type: 'readmit' }, s)).toEqual([]);
  });
});
