import { describe, expect, it } from 'vitest';
import { bitmapFormat, sysinfoXml } from '../contracts/host/host-reads.ts';
import { nodeCpuMap as readCpuMap, nodeCpuStats as readCpuStats } from '../drivers/node-info.ts';
import { domTime, nodeCpuMap, nodeCpuPercent, vcpuInfo } from './host-read-format.ts';

describe('host reading layouts', () => {
  it("nodecpustats --percent: shares of the time between two readings, as virsh's %5.1lf", () => {
    const a = { userNs: 100, systemNs: 100, idleNs: 700, iowaitNs: 100 };
    const b = { userNs: 200, systemNs: 150, idleNs: 1425, iowaitNs: 225 };
    expect(nodeCpuPercent(a, b)).toBe(['usage:           15.0%', 'user:            10.0%', 'system:           5.0%', 'idle:            72.5%', 'iowait:          12.5%'].join('\n'));
    expect(nodeCpuPercent(a, { ...a, userNs: 1100 })).toMatch(/^usage: {10}100\.0%$/m);
  });

  it('CPU lists as virBitmapFormat writes them, and maps as wide as the host', () => {
    expect(bitmapFormat([5, 0, 1, 2, 7, 8])).toBe('0-2,5,7-8');
    expect(bitmapFormat([])).toBe('');
    expect(nodeCpuMap({ present: 6, online: [0, 1, 4] }, false)).toBe('CPUs present:   6\nCPUs online:    3\nCPU map:        yy--y-');
    expect(nodeCpuMap({ present: 6, online: [0, 1, 4] }, true)).toMatch(/^CPU map: {8}0-1,4$/m);
    // Affinity beyond the host's CPUs is not shown; a vCPU with no time has no time line.
    const v = [{ number: 0, state: 'running' as const, cpu: 1, timeNs: 0, affinity: [1, 9] }];
    expect(vcpuInfo(v, 4, true, false)).toBe('VCPU:           0\nCPU:            1\nState:          running\nCPU Affinity:   -y--');
    expect(vcpuInfo(v, 4, true, true)).toMatch(/^CPU Affinity: {3}1 \(out of 4\)$/m);
    expect(domTime(0, true)).toBe('Time: 1970-01-01 00:00:00');
  });

  it('sysinfo leaves out empty blocks and entries, and escapes values', () => {
    expect(sysinfoXml({ bios: [['vendor', "A&B <'x'>"], ['version', undefined]], system: [['uuid', '']] })).toBe(
      "<sysinfo type='smbios'>\n  <bios>\n    <entry name='vendor'>A&amp;B &lt;&apos;x&apos;&gt;</entry>\n  </bios>\n</sysinfo>",
    );
  });

  it("reads this machine's /proc/stat and sysfs, and refuses a CPU it lacks in libvirt's words", async () => {
    const map = await readCpuMap();
    expect(map.present).toBeGreaterThanOrEqual(map.online.length);
    expect(map.online).toContain(0);
    const all = await readCpuStats(-1);
    const one = await readCpuStats(map.online[0]!);
    expect(all.idleNs).toBeGreaterThanOrEqual(one.idleNs);
    await expect(readCpuStats(99999)).rejects.toMatchObject({ code: 'invalid-arg', message: 'Invalid cpuNum in virHostCPUGetStatsLinux' });
  });
});
