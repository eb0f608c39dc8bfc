import { describe, expect, it } from 'vitest';
import { DomainDefinition } from '../contracts/domain/definition.ts';
import type { DomainView } from '../contracts/views.ts';
import { domIfList, interfaceRows, netEventLine, netInfo } from './network-format.ts';

const view = (running: boolean, interfaces: DomainView['interfaces'] = []): DomainView => ({
  id: '6f1c1a3e-2b7d-4c55-9a0e-3d2f9b8c7a11',
  name: 'vm1',
  hostId: 'h1',
  persistent: true,
  definition: DomainDefinition.parse({
    name: 'vm1',
    uuid: '6f1c1a3e-2b7d-4c55-9a0e-3d2f9b8c7a11',
    memoryKiB: 65536,
    vcpus: 1,
    devices: {
      interfaces: [
        { type: 'network', mac: '52:54:00:AA:00:01', source: { network: 'default' }, model: 'virtio' },
        { type: 'bridge', mac: '52:54:00:aa:00:02', source: { bridge: 'br0' }, targetDev: 'mytap%d' },
        { type: 'direct', mac: '52:54:00:aa:00:03', source: { dev: 'eth0', mode: 'bridge' }, targetDev: 'fixed0' },
        { type: 'user' },
      ],
    },
  }),
  nextDefinition: null,
  desired: running ? 'running' : 'shutoff',
  observed: running ? { state: 'running', reason: 'booted' } : { state: 'shutoff', reason: 'unknown' },
  interfaces,
  pending: null,
  lastError: null,
  version: 3,
  updatedAt: '2025-01-01T00:00:00.000Z',
});

describe('domiflist rows', () => {
  it('shows fixed target names and "-" for names a host has yet to choose', () => {
    expect(interfaceRows(view(false))).toEqual([
      { interface: '-', type: 'network', source: 'default', model: 'virtio', mac: '52:54:00:aa:00:01' },
      { interface: '-', type: 'bridge', source: 'br0', model: '-', mac: '52:54:00:aa:00:02' },
      { interface: 'fixed0', type: 'direct', source: 'eth0', model: '-', mac: '52:54:00:aa:00:03' },
      { interface: '-', type: 'user', source: '-', model: '-', mac: '-' },
    ]);
  });

  it('uses the devices the host reported, matched by MAC', () => {
    const rows = interfaceRows(view(true, [
      { mac: '52:54:00:aa:00:01', ifname: 'vnet0', network: 'default', bridge: 'virbr0' },
      { mac: '52:54:00:aa:00:02', ifname: 'mytap0', bridge: 'br0' },
    ]));
    expect(rows.map((r) => r.interface)).toEqual(['vnet0', 'mytap0', 'fixed0', '-']);
    expect(domIfList(rows).split('\n')[0]).toMatch(/^ Interface\s+Type\s+Source\s+Model\s+MAC$/);
  });
});

describe('network output', () => {
  it('net-info omits Bridge for a network without one; net-event names the network unquoted', () => {
    const base = { id: 'u', name: 'direct-net', active: false, persistent: true, autostart: false, bridge: null, version: 1, updatedAt: '', nextDefinition: null };
    expect(netInfo({ ...base, definition: { name: 'direct-net', uuid: 'u', ips: [], portgroups: [] } } as never)).not.toMatch(/Bridge/);
    expect(
      netEventLine({ eventId: 'e', networkId: 'u', name: 'default', event: 'STOPPED', eventNumber: 3, detail: 0, time: '2025-01-01T00:00:00.000Z', version: 1, actor: 'a', correlationId: 'c' }),
    ).toBe("event 'lifecycle' for network default: Stopped");
  });
});
