import { bitmapFormat, type NodeCpuMap, type NodeCpuStats, type VcpuInfo } from '../contracts/host/host-reads.ts';

/**
 * virsh's layouts for vcpuinfo, nodecpustats, nodecpumap and domtime (tools/virsh-domain.c,
 * virsh-host.c): a label left-aligned in 15 columns, a space, the value.
 */

const label = (l: string, v: string | number) => `${l.padEnd(15)} ${v}`;

/** A CPU map as virsh prints one: `y`/`-` for each host CPU, or the list and the count with --pretty. */
const cpuMap = (cpus: readonly number[], width: number, pretty: boolean): string => {
  const set = new Set(cpus.filter((c) => c < width));
  if (pretty) return `${bitmapFormat(set)} (out of ${width})`;
  return Array.from({ length: width }, (_, i) => (set.has(i) ? 'y' : '-')).join('');
};

/**
 * virsh vcpuinfo. A guest that is not running has no vCPU threads: virsh then prints N/A, and its
 * "CPU time" label has no colon.
 */
export const vcpuInfo = (vcpus: readonly VcpuInfo[], hostCpus: number, running: boolean, pretty: boolean): string =>
  vcpus
    .map((v) =>
      [
        label('VCPU:', v.number),
        ...(running
          ? [label('CPU:', v.cpu), label('State:', v.state), ...(v.timeNs !== 0 ? [label('CPU time:', `${(v.timeNs / 1e9).toFixed(1)}s`)] : [])]
          : [label('CPU:', 'N/A'), label('State:', 'N/A'), label('CPU time', 'N/A')]),
        label('CPU Affinity:', cpuMap(v.affinity, hostCpus, pretty)),
      ].join('\n'),
    )
    .join('\n\n');

const CPU_FIELDS = [
  ['user:', 'userNs'],
  ['system:', 'systemNs'],
  ['idle:', 'idleNs'],
  ['iowait:', 'iowaitNs'],
] as const;

/** virsh nodecpustats: each time in ns, right-aligned in 20 columns. */
export const nodeCpuStats = (s: NodeCpuStats): string => CPU_FIELDS.map(([l, k]) => `${l.padEnd(15)} ${String(s[k]).padStart(20)}`).join('\n');

/** printf's `%5.1lf`: glibc prints 0/0 as `-nan`. */
const pct = (v: number) => `${(Number.isNaN(v) ? '-nan' : v.toFixed(1)).padStart(5)}%`;

/**
 * virsh nodecpustats --percent: the share of each time between two readings a second apart, and
 * usage (user and system); two equal readings divide nothing by nothing, as virsh shows.
 */
export const nodeCpuPercent = (a: NodeCpuStats, b: NodeCpuStats): string => {
  const d = (k: keyof NodeCpuStats) => b[k] - a[k];
  const total = CPU_FIELDS.reduce((n, [, k]) => n + d(k), 0);
  const share = (v: number) => (total === 0 ? NaN : (v / total) * 100);
  return [`${'usage:'.padEnd(15)} ${pct(share(d('userNs') + d('systemNs')))}`, ...CPU_FIELDS.map(([l, k]) => `${l.padEnd(15)} ${pct(share(d(k)))}`)].join('\n');
};

/** virsh nodecpumap. */
export const nodeCpuMap = (m: NodeCpuMap, pretty: boolean): string => {
  const online = new Set(m.online);
  const map = pretty ? bitmapFormat(online) : Array.from({ length: m.present }, (_, i) => (online.has(i) ? 'y' : '-')).join('');
  return [label('CPUs present:', m.present), label('CPUs online:', m.online.length), label('CPU map:', map)].join('\n');
};

/** virsh domtime: seconds since the epoch, or with --pretty the UTC date and time. */
export const domTime = (seconds: number, pretty: boolean): string =>
  `Time: ${pretty ? new Date(seconds * 1000).toISOString().slice(0, 19).replace('T', ' ') : seconds}`;
