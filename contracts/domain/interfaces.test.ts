import { describe, expect, it } from 'vitest';
import { decide, evolve, initialDomainState } from './decider.ts';
import { DomainDefinition, type InterfaceModel } from './definition.ts';
import type { DomainCommand } from './commands.ts';
import type { DomainEventBody } from './events.ts';
import { deciderSpec, type GivenEvent } from '../testing/decider-spec.ts';

/** virsh attach-interface / detach-interface: given events, when command, then events. */
const UUID = '0b6e3a52-8f0c-4c53-a1d6-4a0f5d6f7e21';
const spec = deciderSpec({ decide, evolve, initialState: () => initialDomainState(UUID) }, { aggregateType: 'domain', aggregateId: UUID });
type Ev = GivenEvent<DomainEventBody>;

const nic0: InterfaceModel = { type: 'network', mac: '52:54:00:00:00:01', source: { network: 'default' } };
const nic1: InterfaceModel = { type: 'bridge', mac: '52:54:00:00:00:02', source: { bridge: 'br0' } };
const def = DomainDefinition.parse({ name: 'web1', uuid: UUID, memoryKiB: 1024, vcpus: 1, devices: { interfaces: [nic0] } });
const NOW = new Date('2025-01-01T00:10:00.000Z');
const DEADLINE = new Date(NOW.getTime() + 60_000).toISOString();

const defined: Ev = { type: 'DomainDefined', data: { definition: def, hostId: 'h1', placementEpoch: 1, added: true } };
const started: Ev[] = [
  defined,
  { type: 'DomainStartRequested', id: 't-start', data: { hostId: 'h1', placementEpoch: 1, deadline: '2025-01-01T01:00:00.000Z' } },
  { type: 'DomainOperationCompleted', data: { op: 'start', taskId: 't-start', observed: { state: 'running', reason: 'booted' } } },
];
const attach = (iface: InterfaceModel, live = false, config = false): DomainCommand => ({ type: 'attach-interface', iface, live, config, timeoutMs: 60_000 });
const detach = (mac: string, live = false, config = false): DomainCommand => ({ type: 'detach-interface', mac, live, config, timeoutMs: 60_000 });
const macs = (d: DomainDefinition | null) => d?.devices.interfaces.map((i) => i.mac);

describe('attach-interface', () => {
  it('on a running domain asks the host (live), carrying the interface', () => {
    spec.given(started).when(attach(nic1), NOW).then([
      { type: 'DomainInterfaceAttachRequested', data: { hostId: 'h1', placementEpoch: 1, deadline: DEADLINE, iface: nic1, persistent: false } },
    ]);
  });

  it('on a shut off domain changes the definition (config)', () => {
    const { after } = spec.given([defined]).when(attach(nic1), NOW).then([
      { type: 'DomainDefined', data: { definition: { ...def, devices: { ...def.devices, interfaces: [nic0, nic1] } }, hostId: 'h1', placementEpoch: 1, added: false } },
    ]);
    expect(macs(after.definition)).toEqual([nic0.mac, nic1.mac]);
  });

  it('--live on a shut off domain is operation-invalid', () => {
    spec.given([defined]).when(attach(nic1, true), NOW).thenThrows('operation-invalid', 'domain is not running');
  });

  it('a MAC the domain already has is operation-failed', () => {
    spec.given(started).when(attach({ ...nic1, mac: nic0.mac }), NOW).thenThrows('operation-failed', /already has an interface with MAC address 52:54:00:00:00:01/);
  });

  it('a live-only attach changes the running definition and leaves the next boot as it was', () => {
    const g = spec.given([
      ...started,
      { type: 'DomainInterfaceAttachRequested', id: 't-att', data: { hostId: 'h1', placementEpoch: 1, deadline: DEADLINE, iface: nic1, persistent: false } },
    ]);
    const { after } = g.when({ type: 'complete', taskId: 't-att', observed: { state: 'running', reason: 'booted' }, interfaces: [{ mac: nic1.mac!, ifname: 'vnet7' }] }, NOW).then([
      { type: 'DomainOperationCompleted', data: { op: 'attach-interface', taskId: 't-att', observed: { state: 'running', reason: 'booted' }, interfaces: [{ mac: nic1.mac!, ifname: 'vnet7' }] } },
    ]);
    expect(macs(after.definition)).toEqual([nic0.mac, nic1.mac]);
    expect(macs(after.nextDefinition)).toEqual([nic0.mac]);
    expect(after.interfaces).toEqual([{ mac: nic1.mac, ifname: 'vnet7' }]);
    expect(after.pending).toBeNull();
  });

  it('a persistent attach (live and config) keeps the interface for the next boot too', () => {
    const g = spec.given([
      ...started,
      { type: 'DomainInterfaceAttachRequested', id: 't-att', data: { hostId: 'h1', placementEpoch: 1, deadline: DEADLINE, iface: nic1, persistent: true } },
      { type: 'DomainOperationCompleted', data: { op: 'attach-interface', taskId: 't-att', observed: { state: 'running', reason: 'booted' } } },
    ]);
    expect(macs(g.state.definition)).toEqual([nic0.mac, nic1.mac]);
    expect(g.state.nextDefinition).toBeNull();
  });

  it('a failed attach changes no definition', () => {
    const g = spec.given([
      ...started,
      { type: 'DomainInterfaceAttachRequested', id: 't-att', data: { hostId: 'h1', placementEpoch: 1, deadline: DEADLINE, iface: nic1, persistent: true } },
      { type: 'DomainOperationFailed', data: { op: 'attach-interface', taskId: 't-att', error: { code: 'operation-failed', message: 'no' } } },
    ]);
    expect(macs(g.state.definition)).toEqual([nic0.mac]);
    expect(g.state.lastError?.op).toBe('attach-interface');
  });
});

describe('detach-interface', () => {
  it('on a running domain asks the host (live)', () => {
    spec.given(started).when(detach(nic0.mac!), NOW).then([
      { type: 'DomainInterfaceDetachRequested', data: { hostId: 'h1', placementEpoch: 1, deadline: DEADLINE, mac: nic0.mac!, persistent: false } },
    ]);
  });

  it('on a shut off domain removes it from the definition', () => {
    const { after } = spec.given([defined]).when(detach(nic0.mac!), NOW).then([
      { type: 'DomainDefined', data: { definition: { ...def, devices: { ...def.devices, interfaces: [] } }, hostId: 'h1', placementEpoch: 1, added: false } },
    ]);
    expect(macs(after.definition)).toEqual([]);
  });

  it('an unknown MAC is operation-failed', () => {
    spec.given(started).when(detach('52:54:00:ff:ff:ff'), NOW).thenThrows('operation-failed', /has no interface with MAC address 52:54:00:ff:ff:ff/);
  });

  it('a persistent detach removes it now and for the next boot', () => {
    const g = spec.given([
      ...started,
      { type: 'DomainInterfaceDetachRequested', id: 't-det', data: { hostId: 'h1', placementEpoch: 1, deadline: DEADLINE, mac: nic0.mac!, persistent: true } },
      { type: 'DomainOperationCompleted', data: { op: 'detach-interface', taskId: 't-det', observed: { state: 'running', reason: 'booted' }, interfaces: [] } },
    ]);
    expect(macs(g.state.definition)).toEqual([]);
    expect(g.state.nextDefinition).toBeNull();
  });

  it('is blocked by another operation in flight, like every other operation', () => {
    spec
      .given([...started, { type: 'DomainSuspendRequested', id: 't-s', data: { hostId: 'h1', placementEpoch: 1, deadline: '2025-01-01T01:00:00.000Z' } }])
      .when(detach(nic0.mac!), NOW)
      .thenThrows('operation-invalid', /operation 'suspend' in progress/);
  });
});

describe('interfaces a host observed', () => {
  const seen = [{ mac: nic0.mac!, ifname: 'vnet3', network: 'default', addresses: [{ family: 'ipv4' as const, address: '192.168.122.50', prefix: 24, source: 'lease' as const }] }];

  it('records a change of a running guest\'s interfaces', () => {
    const { after } = spec.given(started).when({ type: 'observe-interfaces', interfaces: seen }, NOW).then([{ type: 'DomainInterfacesObserved', data: { interfaces: seen } }]);
    expect(after.interfaces).toEqual(seen);
  });

  it('says nothing when nothing changed', () => {
    spec.given([...started, { type: 'DomainInterfacesObserved', data: { interfaces: seen } }]).when({ type: 'observe-interfaces', interfaces: seen }, NOW).thenNothing();
  });

  it('ignores a late report about a guest that has stopped', () => {
    spec
      .given([...started, { type: 'DomainStateObserved', data: { state: 'shutoff', reason: 'shutdown' } }])
      .when({ type: 'observe-interfaces', interfaces: seen }, NOW)
      .thenNothing();
  });

  it('forgets the devices when the guest stops', () => {
    const g = spec.given([...started, { type: 'DomainInterfacesObserved', data: { interfaces: seen } }, { type: 'DomainStateObserved', data: { state: 'shutoff', reason: 'destroyed' } }]);
    expect(g.state.interfaces).toEqual([]);
  });
});
