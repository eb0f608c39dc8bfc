import { readFile, stat } from 'node:fs/promises';
import type { DomainDefinition } from '../../contracts/domain/definition.ts';
import type { BlockStats, DomainStats, InterfaceStats } from '../../contracts/domain/stats.ts';
import { diskSource } from '../test/stats.ts';
import type { QmpClient } from './qmp.ts';

/**
 * A running qemu guest's numbers, gathered as libvirt's QEMU driver gathers them: disks from
 * query-block and query-blockstats, memory from query-balloon and the balloon's guest stats, vCPU
 * times from the threads query-cpus-fast names, the process's CPU time from /proc, and tap
 * counters from /sys/class/net.
 */

/** Clock ticks per second of /proc's utime and stime (USER_HZ, 100 on Linux). */
const USER_HZ = 100;
const tickNs = 1e9 / USER_HZ;

interface QueryBlock {
  device: string;
  qdev?: string;
  inserted?: { file: string; 'node-name'?: string; image?: { filename: string; 'virtual-size': number; 'actual-size'?: number } };
}
interface QueryBlockStats {
  device: string;
  qdev?: string;
  'node-name'?: string;
  stats: {
    rd_bytes: number;
    wr_bytes: number;
    rd_operations: number;
    wr_operations: number;
    flush_operations: number;
    rd_total_time_ns: number;
    wr_total_time_ns: number;
    flush_total_time_ns: number;
  };
}

/**
 * A /proc stat line (a process's or one of its threads'): its state, the CPU it last ran on (field
 * 39, `processor`) and its utime and stime (fields 14 and 15), as libvirt's virProcessGetStatInfo
 * reads them. The command field may hold spaces and parentheses, so fields are counted from its
 * closing one.
 */
export const procStat = async (path: string): Promise<{ state: string; cpu: number; userNs: number; systemNs: number }> => {
  const text = await readFile(path, 'utf8');
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state), so utime (14) is f[11], stime (15) f[12] and processor (39) f[36].
  return { state: f[0]!, cpu: Number(f[36]), userNs: Number(f[11]) * tickNs, systemNs: Number(f[12]) * tickNs };
};

/** RSS of the process in KiB (what libvirt's dommemstat reports as rss). */
const rssKiB = async (pid: number): Promise<number | undefined> => {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(await readFile(`/proc/${pid}/status`, 'utf8').catch(() => ''));
  return m ? Number(m[1]) : undefined;
};

const readCounter = async (ifname: string, name: string): Promise<number> =>
  Number((await readFile(`/sys/class/net/${ifname}/statistics/${name}`, 'utf8')).trim());

/**
 * A tap's counters seen from the guest: what the host transmits on the tap the guest receives, so
 * rx and tx are swapped, as libvirt does for tap devices.
 */
export const tapStats = async (ifname: string, mac?: string): Promise<InterfaceStats> => {
  const [rxb, rxp, rxe, rxd, txb, txp, txe, txd] = await Promise.all(
    ['tx_bytes', 'tx_packets', 'tx_errors', 'tx_dropped', 'rx_bytes', 'rx_packets', 'rx_errors', 'rx_dropped'].map((n) => readCounter(ifname, n)),
  );
  return { name: ifname, ...(mac ? { mac } : {}), rxBytes: rxb!, rxPackets: rxp!, rxErrs: rxe!, rxDrop: rxd!, txBytes: txb!, txPackets: txp!, txErrs: txe!, txDrop: txd! };
};

/** The guest-stats names of the virtio balloon, by virDomainMemoryStats tag. */
const GUEST_STATS: Array<[tag: 'swap_in' | 'swap_out' | 'major_fault' | 'minor_fault' | 'unused' | 'available' | 'usable' | 'disk_caches' | 'hugetlb_pgalloc' | 'hugetlb_pgfail', qemu: string, bytes: boolean]> = [
  ['swap_in', 'stat-swap-in', true],
  ['swap_out', 'stat-swap-out', true],
  ['major_fault', 'stat-major-faults', false],
  ['minor_fault', 'stat-minor-faults', false],
  ['unused', 'stat-free-memory', true],
  ['available', 'stat-total-memory', true],
  ['usable', 'stat-available-memory', true],
  ['disk_caches', 'stat-disk-caches', true],
  ['hugetlb_pgalloc', 'stat-htlb-pgalloc', false],
  ['hugetlb_pgfail', 'stat-htlb-pgfail', false],
];

export interface QemuGuest {
  def: DomainDefinition;
  pid: number;
  nics: Array<{ mac: string; ifname?: string }>;
  balloon: boolean;
}

export const qemuStats = async (qmp: QmpClient, g: QemuGuest): Promise<DomainStats> => {
  const [blocks, blockStats, cpus, balloon, proc] = await Promise.all([
    qmp.execute<QueryBlock[]>('query-block'),
    qmp.execute<QueryBlockStats[]>('query-blockstats'),
    qmp.execute<Array<{ 'cpu-index': number; 'thread-id': number }>>('query-cpus-fast'),
    g.balloon ? qmp.execute<{ actual: number }>('query-balloon').catch(() => undefined) : Promise.resolve(undefined),
    procStat(`/proc/${g.pid}/stat`),
  ]);
  const vcpus = await Promise.all(
    cpus
      .sort((a, b) => a['cpu-index'] - b['cpu-index'])
      .map(async (c) => {
        const t = await procStat(`/proc/${g.pid}/task/${c['thread-id']}/stat`).catch(() => ({ userNs: 0, systemNs: 0 }));
        return { state: 1, timeNs: t.userNs + t.systemNs };
      }),
  );
  return {
    cpu: { timeNs: proc.userNs + proc.systemNs, userNs: proc.userNs, systemNs: proc.systemNs },
    // Per host CPU times come from cgroup v1's cpuacct, which virtplane's guests do not run under.
    perCpu: [],
    vcpus,
    ...(balloon ? { balloon: await balloonStats(qmp, g, balloon.actual) } : {}),
    blocks: await blockRows(g.def, blocks, blockStats),
    interfaces: await Promise.all(g.nics.filter((n) => n.ifname).map((n) => tapStats(n.ifname!, n.mac))),
    groups: ['state', 'cpu-total', 'balloon', 'vcpu', 'interface', 'block'],
  };
};

const balloonStats = async (qmp: QmpClient, g: QemuGuest, actualBytes: number): Promise<NonNullable<DomainStats['balloon']>> => {
  const currentKiB = Math.floor(actualBytes / 1024);
  // libvirt reports the balloon's size first, then what the guest said, then the process's RSS.
  const stats: NonNullable<DomainStats['balloon']>['stats'] = [['actual', currentKiB]];
  // The guest's own numbers exist only once a polling period was set (<memballoon><stats period>).
  const guest = await qmp
    .execute<{ stats: Record<string, number>; 'last-update': number }>('qom-get', { path: '/machine/peripheral/balloon0', property: 'guest-stats' })
    .catch(() => undefined);
  for (const [tag, name, bytes] of GUEST_STATS) {
    const v = guest?.stats[name];
    if (v !== undefined && v >= 0) stats.push([tag, bytes ? Math.floor(v / 1024) : v]);
    // In libvirt's order: the time of the guest's last report comes after `usable`.
    if (tag === 'usable' && guest && guest['last-update'] > 0) stats.push(['last_update', guest['last-update']]);
  }
  const rss = await rssKiB(g.pid);
  if (rss !== undefined) stats.push(['rss', rss]);
  return { currentKiB, maximumKiB: g.def.memoryKiB, stats };
};

/** Each defined disk's counters, matched to qemu's drive through the image it opened. */
const blockRows = async (def: DomainDefinition, blocks: QueryBlock[], stats: QueryBlockStats[]): Promise<BlockStats[]> => {
  const rows: BlockStats[] = [];
  for (const d of def.devices.disks) {
    const source = diskSource(d.source);
    const b = source ? blocks.find((x) => x.inserted?.file === source || x.inserted?.image?.filename === source) : undefined;
    const s = b ? stats.find((x) => (b.qdev && x.qdev === b.qdev) || (b.device && x.device === b.device) || (x['node-name'] && x['node-name'] === b.inserted?.['node-name'])) : undefined;
    const physical = source ? await stat(source).then((st) => st.size).catch(() => 0) : 0;
    rows.push({
      target: d.target.dev,
      ...(source ? { source } : {}),
      rdReqs: s?.stats.rd_operations ?? 0,
      rdBytes: s?.stats.rd_bytes ?? 0,
      wrReqs: s?.stats.wr_operations ?? 0,
      wrBytes: s?.stats.wr_bytes ?? 0,
      flushReqs: s?.stats.flush_operations ?? 0,
      rdTotalTimesNs: s?.stats.rd_total_time_ns ?? 0,
      wrTotalTimesNs: s?.stats.wr_total_time_ns ?? 0,
      flushTotalTimesNs: s?.stats.flush_total_time_ns ?? 0,
      capacity: b?.inserted?.image?.['virtual-size'] ?? 0,
      allocation: b?.inserted?.image?.['actual-size'] ?? 0,
      physical,
    });
  }
  return rows;
};
