import { describe, expect, it } from 'vitest';
import { parseDomainXml } from '../xml/domain.ts';
import { initialDomainState, type DomainAggregate } from './decider.ts';
import { resolveBlockResize } from './guest-actions.ts';

const XML = `<domain type='kvm'><name>d</name><memory unit='KiB'>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os><devices>
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/img/root.qcow2'/><target dev='vda' bus='virtio'/></disk>
<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/img/ro.img'/><target dev='vdb' bus='virtio'/><readonly/></disk>
<disk type='file' device='cdrom'><target dev='hdc' bus='ide'/><readonly/></disk>
</devices></domain>`;

describe("blockresize's checks, as qemuDomainBlockResize", () => {
  const s: DomainAggregate = { ...initialDomainState('u'), exists: true, name: 'd', definition: parseDomainXml(XML), observed: { state: 'running', reason: 'booted' } };

  it('finds the disk by target or by source, and sizes qcow2 in whole sectors', () => {
    expect(resolveBlockResize(s, 'vda', 1000)).toEqual({ target: 'vda', bytes: 1024 });
    expect(resolveBlockResize(s, '/img/root.qcow2', 1 << 20)).toEqual({ target: 'vda', bytes: 1 << 20 });
  });

  it("refuses an unknown disk, an empty one and a read-only one in libvirt's words", () => {
    expect(() => resolveBlockResize(s, 'vdz', 1)).toThrow("disk 'vdz' was not found in the domain config");
    expect(() => resolveBlockResize(s, 'vdb', 1)).toThrow("can't resize empty or readonly disk 'vdb'");
    expect(() => resolveBlockResize(s, 'hdc', 1)).toThrow("can't resize empty or readonly disk 'hdc'");
  });
});
