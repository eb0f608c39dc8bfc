import { describe, expect, it } from 'vitest';
import { qemuAvailable } from './host.ts';
import { qemuDomainCaps } from './domain-caps.ts';

const avail = await qemuAvailable();

/** The real qemu binary, probed as libvirt probes it. */
describe.skipIf(!avail.ok || !avail.binary)('domain capabilities of this host\'s qemu', () => {
  const binary = avail.binary!;

  it('names the default machine by its canonical name, its vCPU limit and the CPU models qemu has', { timeout: 60_000 }, async () => {
    const xml = await qemuDomainCaps(binary, false, {});
    expect(xml).toMatch(new RegExp(`^<domainCapabilities>\\n  <path>${binary}</path>\\n  <domain>qemu</domain>\\n  <machine>pc-i440fx-[\\d.]+</machine>\\n  <arch>x86_64</arch>\\n  <vcpu max='(\\d+)'/>`));
    expect(Number(/<vcpu max='(\d+)'/.exec(xml)![1])).toBeGreaterThan(1);
    expect(xml).toContain("<model usable='yes'>qemu64</model>");
    expect(xml).toContain("<mode name='host-passthrough' supported='no'/>");
    expect(xml.trimEnd().endsWith('</domainCapabilities>')).toBe(true);
    // An alias is resolved; q35 allows more vCPUs than the i440fx machine.
    const q35 = await qemuDomainCaps(binary, false, { machine: 'q35' });
    expect(q35).toMatch(/<machine>pc-q35-[\d.]+<\/machine>/);
    expect(Number(/<vcpu max='(\d+)'/.exec(q35)![1])).toBeGreaterThan(Number(/<vcpu max='(\d+)'/.exec(xml)![1]));
  });

  it("refuses what this host cannot give, in libvirt's words", { timeout: 60_000 }, async () => {
    await expect(qemuDomainCaps(binary, false, { machine: 'no-such-machine' })).rejects.toMatchObject({ code: 'config-unsupported', message: /machine 'no-such-machine' is not supported/ });
    await expect(qemuDomainCaps(binary, false, { arch: 'aarch64' })).rejects.toMatchObject({ code: 'config-unsupported' });
    await expect(qemuDomainCaps(binary, false, { virttype: 'kvm' })).rejects.toMatchObject({ code: 'config-unsupported', message: /KVM is not supported/ });
    await expect(qemuDomainCaps(binary, false, { emulatorbin: '/bin/sh' })).rejects.toMatchObject({ code: 'invalid-arg' });
  });
});
