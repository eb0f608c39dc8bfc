import { describe, expect, it } from 'vitest';
import { DomainDefinition } from './definition.ts';
import { liveDefinition } from './live.ts';
import { formatDomainXml } from '../xml/index.ts';

const def = DomainDefinition.parse({
  name: 'web1',
  uuid: '6f1c1a3e-2b7d-4c55-9a0e-3d2f9b8c7a11',
  type: 'kvm',
  memoryKiB: 65536,
  vcpus: 1,
  devices: { interfaces: [{ type: 'network', mac: '52:54:00:aa:bb:01', source: { network: 'default' } }, { type: 'bridge', mac: '52:54:00:aa:bb:02', source: { bridge: 'br0' } }] },
});
const runtime = [{ mac: '52:54:00:AA:BB:01', ifname: 'vnet7' }];

describe('live XML', () => {
  it("a running guest's interface shows the device the agent reported, as libvirt adds <target dev='vnetN'/>", () => {
    const live = liveDefinition(def, { state: 'running', reason: 'booted' }, runtime);
    expect(live.devices.interfaces.map((i) => i.targetDev)).toEqual(['vnet7', undefined]);
    expect(formatDomainXml(live)).toMatch(/<target dev=["']vnet7["']\s*\/>/);
    expect(def.devices.interfaces[0]!.targetDev).toBeUndefined();
  });

  it('a shut off guest is shown as defined', () => {
    expect(liveDefinition(def, { state: 'shutoff', reason: 'destroyed' }, runtime)).toBe(def);
  });
});
