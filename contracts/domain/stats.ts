import { z } from 'zod';
import { DomainDefinition } from './definition.ts';
import type { DomainStateName, StateReason } from './state.ts';

/**
 * Live readings of a guest and of its host, asked of the host agent that runs it (never taken from
 * the event log: they are the hypervisor's numbers at the moment of asking). Counters are plain
 * numbers: byte counts stay well below 2^53 on any real guest.
 */

const count = z.number().int().nonnegative();

/** One disk's counters (virDomainBlockStatsFlags) and sizes (virDomainGetBlockInfo). */
export const BlockStats = z.object({
  target: z.string(),
  /** The source path or name, as domblkstat also accepts it. */
  source: z.string().optional(),
  rdReqs: count,
  rdBytes: count,
  wrReqs: count,
  wrBytes: count,
  /** Only the test driver counts errors; qemu reports none (virsh leaves the line out). */
  errs: count.optional(),
  flushReqs: count.optional(),
  rdTotalTimesNs: count.optional(),
  wrTotalTimesNs: count.optional(),
  flushTotalTimesNs: count.optional(),
  capacity: count,
  allocation: count,
  physical: count,
});
export type BlockStats = z.infer<typeof BlockStats>;

/** One interface's counters (virDomainInterfaceStats), by its host device name and MAC. */
export const InterfaceStats = z.object({
  name: z.string(),
  mac: z.string().optional(),
  rxBytes: count,
  rxPackets: count,
  rxErrs: count,
  rxDrop: count,
  txBytes: count,
  txPackets: count,
  txErrs: count,
  txDrop: count,
});
export type InterfaceStats = z.infer<typeof InterfaceStats>;

/** virDomainMemoryStats tags, in libvirt's order (virsh dommemstat prints them so). */
export const MEMORY_STAT_TAGS = [
  'swap_in',
  'swap_out',
  'major_fault',
  'minor_fault',
  'unused',
  'available',
  'actual',
  'usable',
  'last_update',
  'disk_caches',
  'hugetlb_pgalloc',
  'hugetlb_pgfail',
  'rss',
] as const;

export const DomainStats = z.object({
  /** Whole-guest CPU time, and the user and system parts of it (virDomainGetCPUStats). */
  cpu: z.object({ timeNs: count, userNs: count, systemNs: count }),
  /** Per host CPU (cpu-stats' `CPUn:` sections): where the guest's time was spent. */
  perCpu: z.array(z.object({ cpuTimeNs: count, vcpuTimeNs: count })),
  /** One per vCPU online: its state (1 running) and time. */
  vcpus: z.array(z.object({ state: z.number().int(), timeNs: count })),
  /** The balloon: what the guest has now, its maximum, and the stats the guest gave (tag → value, KiB). */
  balloon: z.object({ currentKiB: count, maximumKiB: count, stats: z.array(z.tuple([z.enum(MEMORY_STAT_TAGS), z.number().int()])) }).optional(),
  blocks: z.array(BlockStats),
  interfaces: z.array(InterfaceStats),
  /** domstats groups this driver fills; the test driver fills only `state`, as libvirt's does. */
  groups: z.array(z.enum(['state', 'cpu-total', 'balloon', 'vcpu', 'interface', 'block'])),
});
export type DomainStats = z.infer<typeof DomainStats>;

/**
 * Asked of the host that runs the domain. The definition is the one the control plane holds, for
 * what the driver does not keep itself (the test driver's disks and memory); a driver that keeps
 * its guest's own record (qemu) reads that instead.
 */
export const DomainStatsRequest = z.object({ domainId: z.string().uuid(), definition: DomainDefinition });
export type DomainStatsRequest = z.infer<typeof DomainStatsRequest>;

/** A host's memory now (virNodeGetMemoryStats) and per NUMA cell free memory (virNodeGetCellsFreeMemory). */
export const NodeStats = z.object({
  memory: z.object({ totalKiB: count, freeKiB: count, buffersKiB: count, cachedKiB: count }).optional(),
  cells: z.array(z.object({ id: z.number().int().nonnegative(), freeKiB: count })),
});
export type NodeStats = z.infer<typeof NodeStats>;
export const NodeStatsRequest = z.object({});

/** The numbers of virDomain<State>Reason that domstats' state.reason prints. */
const REASON_NUMBERS: Partial<Record<DomainStateName, Partial<Record<StateReason, number>>>> = {
  running: { unknown: 0, booted: 1, migrated: 2, restored: 3, 'from-snapshot': 4, unpaused: 5, wakeup: 8, crashed: 9 },
  paused: { unknown: 0, user: 1, saved: 3, ioerror: 5, 'from-snapshot': 7, shutdown: 8, crashed: 10, 'starting-up': 11 },
  shutoff: { unknown: 0, shutdown: 1, destroyed: 2, crashed: 3, migrated: 4, saved: 5, failed: 6, 'from-snapshot': 7, daemon: 8 },
  crashed: { unknown: 0, panicked: 1 },
  shutdown: { unknown: 0, user: 1 },
};
export const reasonNumber = (state: DomainStateName, reason: StateReason): number => REASON_NUMBERS[state]?.[reason] ?? 0;
