import type { DomainDefinition } from '../../contracts/domain/definition.ts';
import type { NodeCpuMap, NodeCpuStats, SmbiosFacts, VcpuInfo } from '../../contracts/host/host-reads.ts';
import { parseBitmap } from '../../contracts/xml/units.ts';

/**
 * What libvirt's test driver (src/test/test_driver.c) answers for the host verbs, whatever the
 * machine it runs on: its built-in node of 16 CPUs (2 cells, 2 sockets, 2 cores, 2 threads), of
 * which its CPU map shows 8 present and 0, 2 and 4 online; fixed CPU times; a fixed BIOS.
 */

/** VIR_NODEINFO_MAXCPUS of the test driver's node. */
const NODE_CPUS = 16;

/** testNodeGetCPUStats: fixed times, whichever CPU is asked for. */
export const TEST_NODE_CPU_STATS: NodeCpuStats = { userNs: 9_797_400_000, systemNs: 34_678_723_400_000, idleNs: 87_264_900_000, iowaitNs: 763_600_000 };

/** testNodeGetCPUMap. */
export const TEST_NODE_CPU_MAP: NodeCpuMap = { present: 8, online: [0, 2, 4] };

/** testConnectGetMaxVcpus: any type. */
export const TEST_MAX_VCPUS = 32;

/** testDomainGetTime: a fixed moment (1989-11-17 15:32:00 UTC). */
export const TEST_DOMAIN_TIME = { seconds: 627_319_920, nseconds: 0 };

/** The test driver's default sysinfo (test:///default's built-in `<sysinfo>`). */
export const TEST_SMBIOS: SmbiosFacts = {
  bios: [
    ['vendor', 'LENOVO'],
    ['version', 'G4ETA1WW (2.61 )'],
    ['date', '05/07/2014'],
    ['release', '2.61'],
  ],
};

/**
 * testDomainGetVcpus: each online vCPU running on the last CPU it may use (its `<vcpu cpuset>`, else
 * every node CPU), with a CPU time made up from the clock so that it grows.
 */
export const testVcpuInfo = (def: DomainDefinition, nowMs: number): VcpuInfo[] => {
  const mask = def.vcpu?.cpuset ? parseBitmap(def.vcpu.cpuset, NODE_CPUS) : undefined;
  const affinity = mask && mask.size > 0 ? [...mask].sort((a, b) => a - b) : Array.from({ length: NODE_CPUS }, (_, i) => i);
  // gettimeofday in microseconds, divided by ten, taken as nanoseconds.
  const timeNs = Math.floor(Math.floor(nowMs * 1000) / 10);
  const online = def.vcpu?.current ?? def.vcpus;
  return Array.from({ length: online }, (_, number) => ({ number, state: 'running' as const, cpu: affinity[affinity.length - 1]!, timeNs, affinity }));
};
