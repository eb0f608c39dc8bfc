import { describe, expect, it } from 'vitest';
import { DomainDefinition } from './definition.ts';
import { liveDefinition } from './live.ts';
import { formatDomainXml, parseDomainXml } from '../xml/index.ts';

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

  it("a running guest's pty console and VNC display show what its host gave them, in libvirt's spelling", () => {
    const xml = `<domain type='kvm'><name>g</name><uuid>6f1c1a3e-2b7d-4c55-9a0e-3d2f9b8c7a12</uuid><memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os><devices>
<serial type='pty'><target port='0'/></serial><console type='pty'><target type='serial' port='0'/></console>
<console type='pty'><target type='virtio' port='1'/></console><graphics type='vnc' autoport='yes'/></devices></domain>`;
    const g = parseDomainXml(xml);
    const devices = {
      graphics: [{ index: 0, type: 'vnc' as const, port: 5903, listen: '127.0.0.1' }],
      chardevs: [
        { alias: 'serial0', type: 'pty' as const, path: '/dev/pts/4' },
        { alias: 'console1', type: 'pty' as const, path: '/dev/pts/5' },
      ],
    };
    const live = formatDomainXml(liveDefinition(g, { state: 'running', reason: 'booted' }, [], devices));
    expect(live).toMatch(/<serial type='pty'>\s*<source path='\/dev\/pts\/4'\/>/);
    expect(live).toMatch(/<console type='pty' tty='\/dev\/pts\/4'>\s*<source path='\/dev\/pts\/4'\/>\s*<target type='serial'/);
    expect(live).toMatch(/<console type='pty' tty='\/dev\/pts\/5'>\s*<source path='\/dev\/pts\/5'\/>\s*<target type='virtio'/);
    // libvirt writes the port it chose before autoport, and names the address twice.
    expect(live).toMatch(/<graphics type='vnc' port='5903' autoport='yes' listen='127.0.0.1'>\s*<listen type='address' address='127.0.0.1'\/>/);
    // Paused is still running for the XML; shut off shows the definition.
    expect(liveDefinition(g, { state: 'paused', reason: 'user' }, [], devices)).not.toBe(g);
    expect(liveDefinition(g, { state: 'shutoff', reason: 'destroyed' }, [], devices)).toBe(g);
  });
});
