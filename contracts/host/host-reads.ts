import { z } from 'zod';
import { DomainStatsRequest } from '../domain/stats.ts';

/**
 * virsh's read-only host verbs and the per-guest readings beside them, asked of one host's agent
 * (`hostread.<host>.<what>`) and answered from the hypervisor and the host's /proc and /sys at the
 * moment of asking; nothing here is recorded. A test-driver host answers as libvirt's test driver.
 */

const count = z.number().int().nonnegative();
const cpuId = z.number().int().min(0).max(16383);

/** virsh vcpuinfo: a running guest's vCPUs (virDomainGetVcpus) and the host's CPU count for the maps. */
export const VcpuInfoRequest = DomainStatsRequest;
export type VcpuInfoRequest = z.infer<typeof VcpuInfoRequest>;
export const VcpuInfo = z.object({
  number: z.number().int().nonnegative(),
  state: z.enum(['offline', 'running', 'blocked']),
  /** The host CPU it last ran on. */
  cpu: z.number().int(),
  /** 0 when the driver does not know (virsh then leaves the line out). */
  timeNs: count,
  /** The host CPUs it may run on. */
  affinity: z.array(cpuId),
});
export type VcpuInfo = z.infer<typeof VcpuInfo>;
export const VcpuInfoReply = z.object({ vcpus: z.array(VcpuInfo), hostCpus: count });

/** virsh domtime: the guest's clock, as its agent reads it (virDomainGetTime). */
export const DomainTimeRequest = DomainStatsRequest;
export const DomainTimeReply = z.object({ seconds: z.number().int(), nseconds: count });

/** virsh maxvcpus: the most vCPUs a guest of this type may have on the host. */
export const MaxVcpusRequest = z.object({ type: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/).optional() });
export type MaxVcpusRequest = z.infer<typeof MaxVcpusRequest>;
export const MaxVcpusReply = z.object({ max: count });

/** -1: all CPUs together (VIR_NODE_CPU_STATS_ALL_CPUS), as virNodeGetCPUStats takes it. */
export const ALL_CPUS = -1;

/** virsh nodecpustats: the host's CPU times since boot, all CPUs or one, in ns (virNodeGetCPUStats). */
export const NodeCpuStatsRequest = z.object({ cpu: z.number().int().min(ALL_CPUS).max(0x7fffffff).optional() });
export type NodeCpuStatsRequest = z.infer<typeof NodeCpuStatsRequest>;
export const NodeCpuStats = z.object({ userNs: count, systemNs: count, idleNs: count, iowaitNs: count });
export type NodeCpuStats = z.infer<typeof NodeCpuStats>;
export const NodeCpuStatsReply = z.object({ stats: NodeCpuStats });

/** virsh nodecpumap: how many CPUs the host has and which are online (virNodeGetCPUMap). */
export const NodeCpuMapRequest = z.object({});
export const NodeCpuMap = z.object({ present: count, online: z.array(cpuId) });
export type NodeCpuMap = z.infer<typeof NodeCpuMap>;
export const NodeCpuMapReply = NodeCpuMap;

/** virsh sysinfo: the host's SMBIOS as libvirt's `<sysinfo type='smbios'>` XML. */
export const SysinfoRequest = z.object({});
export const SysinfoReply = z.object({ xml: z.string() });

/** One SMBIOS block's entries, in libvirt's order; entries without a value are left out. */
export interface SmbiosFacts {
  bios?: Array<[string, string | undefined]>;
  system?: Array<[string, string | undefined]>;
  baseBoard?: Array<[string, string | undefined]>;
  chassis?: Array<[string, string | undefined]>;
}

const esc = (v: string) => v.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll("'", '&apos;').replaceAll('"', '&quot;');

/** virSysinfoFormat for SMBIOS: each block that has an entry, two spaces deeper per level. */
export const sysinfoXml = (f: SmbiosFacts): string => {
  const lines = ["<sysinfo type='smbios'>"];
  for (const block of ['bios', 'system', 'baseBoard', 'chassis'] as const) {
    const entries = (f[block] ?? []).filter((e): e is [string, string] => e[1] !== undefined && e[1] !== '');
    if (entries.length === 0) continue;
    lines.push(`  <${block}>`, ...entries.map(([k, v]) => `    <entry name='${k}'>${esc(v)}</entry>`), `  </${block}>`);
  }
  lines.push('</sysinfo>');
  return lines.join('\n');
};

/** virBitmapFormat: runs of set bits as `a-b`, single ones as `a`, comma-separated. */
export const bitmapFormat = (bits: Iterable<number>): string => {
  const sorted = [...new Set(bits)].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    out.push(i === j ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return out.join(',');
};
