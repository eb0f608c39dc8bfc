import type { DomainDefinition } from '../../contracts/domain/definition.ts';
import type { DomainStats } from '../../contracts/domain/stats.ts';

/**
 * The numbers libvirt's test driver reports for a running guest (src/test/test_driver.c): fixed
 * CPU times, a 1 TiB disk, memory stats derived from the current memory, and block and interface
 * counters derived from the time of asking ("no significance to these numbers, just enough to mix
 * it up"), so two reads a moment apart differ as real counters do.
 */

const TIB = 1024 ** 4;

/** Interface names the test driver gives at start: the fixed `<target dev>`, else testnet<n>. */
export const testInterfaceName = (def: DomainDefinition, index: number): string => {
  const dev = def.devices.interfaces[index]?.targetDev;
  return dev && !dev.includes('%') ? dev : `testnet${index}`;
};

export const testDriverStats = (def: DomainDefinition, now: number): DomainStats => {
  const sec = Math.floor(now / 1000);
  // Microseconds since the epoch, as gettimeofday gives them.
  const base = sec * 1_000_000 + (Math.floor(now * 1000) % 1_000_000);
  const current = def.currentMemoryKiB ?? def.memoryKiB;
  const balloon = def.devices.memballoon && def.devices.memballoon.model !== 'none';
  return {
    // testDomainGetCPUStats: two host CPUs with fixed times, and the total of both.
    cpu: { timeNs: 48_772_617_035, userNs: 5_540_000_000, systemNs: 6_460_000_000 },
    perCpu: [
      { cpuTimeNs: 24_386_308_517, vcpuTimeNs: 23_151_740_627 },
      { cpuTimeNs: 24_386_308_518, vcpuTimeNs: 23_151_740_628 },
    ],
    vcpus: [],
    ...(balloon
      ? {
          balloon: {
            currentKiB: current,
            maximumKiB: def.memoryKiB,
            stats: [
              ['actual', current],
              ['swap_in', 0],
              ['swap_out', 0],
              ['major_fault', 0],
              ['minor_fault', 0],
              ['unused', Math.floor(current / 2)],
              ['available', current],
              ['usable', Math.floor(current / 2)],
              ['last_update', 627319920],
              ['disk_caches', Math.floor(current / 8)],
              ['hugetlb_pgalloc', 0],
              ['hugetlb_pgfail', 0],
              ['rss', Math.floor(current / 2)],
            ],
          },
        }
      : {}),
    blocks: def.devices.disks.map((d) => ({
      target: d.target.dev,
      ...(diskSource(d.source) ? { source: diskSource(d.source) } : {}),
      rdReqs: Math.floor(base / 10),
      rdBytes: Math.floor(base / 20),
      wrReqs: Math.floor(base / 30),
      wrBytes: Math.floor(base / 40),
      errs: Math.floor(sec / 2),
      capacity: 1_099_506_450_432,
      allocation: TIB,
      physical: TIB,
    })),
    interfaces: def.devices.interfaces.map((i, n) => ({
      name: testInterfaceName(def, n),
      ...(i.mac ? { mac: i.mac } : {}),
      rxBytes: Math.floor(base / 10),
      rxPackets: Math.floor(base / 100),
      rxErrs: sec,
      rxDrop: Math.floor(sec / 2),
      txBytes: Math.floor(base / 20),
      txPackets: Math.floor(base / 110),
      txErrs: Math.floor(sec / 3),
      txDrop: Math.floor(sec / 4),
    })),
    // testConnectGetAllDomainStats fills only the state group.
    groups: ['state'],
  };
};

/** A disk's source as virsh domblklist shows it. */
export const diskSource = (s: DomainDefinition['devices']['disks'][number]['source']): string | undefined =>
  s?.file ?? s?.dev ?? s?.dir ?? (s?.pool && s.volume ? `${s.pool}/${s.volume}` : s?.name);
