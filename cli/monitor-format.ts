import type { DomainDefinition } from '../contracts/domain/definition.ts';
import { DOMAIN_STATE_NUMBER, type ObservedState } from '../contracts/domain/state.ts';
import { reasonNumber, type BlockStats, type DomainStats, type InterfaceStats, type NodeStats } from '../contracts/domain/stats.ts';
import { diskSource } from '../drivers/test/stats.ts';
import { table } from './format.ts';

/** virsh's layouts for the monitoring verbs (tools/virsh-domain-monitor.c, virsh-host.c). */

export const domBlkList = (def: DomainDefinition, details: boolean): string => {
  const rows = def.devices.disks.map((d) => ({ type: d.type, device: d.device, target: d.target.dev, source: diskSource(d.source) ?? '-' }));
  return details
    ? table(['Type', 'Device', 'Target', 'Source'], rows.map((r) => [r.type, r.device, r.target, r.source]))
    : table(['Target', 'Source'], rows.map((r) => [r.target, r.source]));
};

/** vshPrettyCapacity with `%.3lf %s`: the largest unit the value reaches. */
export const prettyCapacity = (bytes: number): string => {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let i = 0;
  let v = bytes;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${bytes} B` : `${v.toFixed(3)} ${units[i]}`;
};

const size = (n: number, human: boolean) => (human ? prettyCapacity(n) : String(n));

/** `domblkinfo <dom> <dev>`: three `%-15s %s` lines. */
export const domBlkInfo = (b: BlockStats, human: boolean): string =>
  [
    ['Capacity:', b.capacity],
    ['Allocation:', b.allocation],
    ['Physical:', b.physical],
  ]
    .map(([k, v]) => `${String(k).padEnd(15)} ${size(v as number, human)}`)
    .join('\n');

export const domBlkInfoAll = (blocks: BlockStats[], human: boolean): string =>
  table(['Target', 'Capacity', 'Allocation', 'Physical'], blocks.map((b) => [b.target, size(b.capacity, human), size(b.allocation, human), size(b.physical, human)]));

/** The fields of a disk's stats that the driver gave, with virsh's names and --human labels. */
const blockFields = (b: BlockStats): Array<[name: string, label: string, value: number]> => {
  const f: Array<[string, string, number | undefined]> = [
    ['rd_req', 'number of read operations:', b.rdReqs],
    ['rd_bytes', 'number of bytes read:', b.rdBytes],
    ['wr_req', 'number of write operations:', b.wrReqs],
    ['wr_bytes', 'number of bytes written:', b.wrBytes],
    ['errs', 'error count:', b.errs],
    ['flush_operations', 'number of flush operations:', b.flushReqs],
    ['rd_total_times', 'total duration of reads (ns):', b.rdTotalTimesNs],
    ['wr_total_times', 'total duration of writes (ns):', b.wrTotalTimesNs],
    ['flush_total_times', 'total duration of flushes (ns):', b.flushTotalTimesNs],
  ];
  return f.filter((x): x is [string, string, number] => x[2] !== undefined);
};

/** `domblkstat <dom> <dev>`: `<dev> <field> <value>` lines, or --human's labelled block. */
export const domBlkStat = (device: string, b: BlockStats, human: boolean): string =>
  human
    ? [`Device: ${device}`, ...blockFields(b).map(([, label, v]) => ` ${label.padEnd(31)} ${v}`)].join('\n')
    : blockFields(b)
        .map(([name, , v]) => `${device} ${name} ${v}`)
        .join('\n');

export const domIfStat = (device: string, s: InterfaceStats): string =>
  (
    [
      ['rx_bytes', s.rxBytes],
      ['rx_packets', s.rxPackets],
      ['rx_errs', s.rxErrs],
      ['rx_drop', s.rxDrop],
      ['tx_bytes', s.txBytes],
      ['tx_packets', s.txPackets],
      ['tx_errs', s.txErrs],
      ['tx_drop', s.txDrop],
    ] as const
  )
    .map(([k, v]) => `${device} ${k} ${v}`)
    .join('\n');

export const domMemStat = (s: DomainStats): string => (s.balloon?.stats ?? []).map(([tag, v]) => `${tag} ${v}`).join('\n');

/** Nanoseconds as virsh's `%.9lf`, exactly (no float rounding of large counters). */
const seconds = (ns: number): string => `${Math.floor(ns / 1e9)}.${String(Math.round(ns % 1e9)).padStart(9, '0')}`;
const cpuLine = (name: string, ns: number) => `\t${name.padEnd(15)} ${seconds(ns).padStart(16)} seconds`;

/** cpu-stats: each host CPU asked for, then the total (either may be left out by the options). */
export const cpuStats = (s: DomainStats, opts: { start: number; count: number; perCpu: boolean; total: boolean }): string => {
  const out: string[] = [];
  if (opts.perCpu) {
    for (let i = opts.start; i < Math.min(s.perCpu.length, opts.start + opts.count); i++) {
      const c = s.perCpu[i]!;
      out.push(`CPU${i}:`, cpuLine('cpu_time', c.cpuTimeNs), cpuLine('vcpu_time', c.vcpuTimeNs));
    }
  }
  if (opts.total) out.push('Total:', cpuLine('cpu_time', s.cpu.timeNs), cpuLine('user_time', s.cpu.userNs), cpuLine('system_time', s.cpu.systemNs));
  return out.join('\n');
};

export type StatsGroup = DomainStats['groups'][number];
export const STATS_GROUPS: StatsGroup[] = ['state', 'cpu-total', 'balloon', 'vcpu', 'interface', 'block'];

/** virDomainListGetStats' fields of one domain, by group, as `name=value` pairs. */
export const statsFields = (
  def: DomainDefinition,
  observed: ObservedState,
  s: DomainStats | undefined,
  groups: StatsGroup[],
): Array<[string, string | number]> => {
  const f: Array<[string, string | number]> = [];
  const has = (g: StatsGroup) => groups.includes(g) && (g === 'state' || (s?.groups.includes(g) ?? false));
  if (has('state')) f.push(['state.state', DOMAIN_STATE_NUMBER[observed.state]], ['state.reason', reasonNumber(observed.state, observed.reason)]);
  if (!s) return f;
  if (has('cpu-total')) f.push(['cpu.time', s.cpu.timeNs], ['cpu.user', s.cpu.userNs], ['cpu.system', s.cpu.systemNs]);
  if (has('balloon') && s.balloon) {
    f.push(['balloon.current', s.balloon.currentKiB], ['balloon.maximum', s.balloon.maximumKiB]);
    for (const [tag, v] of s.balloon.stats) if (tag !== 'actual') f.push([`balloon.${tag === 'last_update' ? 'last-update' : tag}`, v]);
  }
  if (has('vcpu')) {
    f.push(['vcpu.current', s.vcpus.length], ['vcpu.maximum', def.vcpus]);
    s.vcpus.forEach((v, i) => f.push([`vcpu.${i}.state`, v.state], [`vcpu.${i}.time`, v.timeNs]));
  }
  if (has('interface')) {
    f.push(['net.count', s.interfaces.length]);
    s.interfaces.forEach((n, i) =>
      f.push(
        [`net.${i}.name`, n.name],
        [`net.${i}.rx.bytes`, n.rxBytes],
        [`net.${i}.rx.pkts`, n.rxPackets],
        [`net.${i}.rx.errs`, n.rxErrs],
        [`net.${i}.rx.drop`, n.rxDrop],
        [`net.${i}.tx.bytes`, n.txBytes],
        [`net.${i}.tx.pkts`, n.txPackets],
        [`net.${i}.tx.errs`, n.txErrs],
        [`net.${i}.tx.drop`, n.txDrop],
      ),
    );
  }
  if (has('block')) {
    f.push(['block.count', s.blocks.length]);
    s.blocks.forEach((b, i) => {
      f.push([`block.${i}.name`, b.target]);
      if (b.source) f.push([`block.${i}.path`, b.source]);
      f.push([`block.${i}.rd.reqs`, b.rdReqs], [`block.${i}.rd.bytes`, b.rdBytes]);
      if (b.rdTotalTimesNs !== undefined) f.push([`block.${i}.rd.times`, b.rdTotalTimesNs]);
      f.push([`block.${i}.wr.reqs`, b.wrReqs], [`block.${i}.wr.bytes`, b.wrBytes]);
      if (b.wrTotalTimesNs !== undefined) f.push([`block.${i}.wr.times`, b.wrTotalTimesNs]);
      if (b.flushReqs !== undefined) f.push([`block.${i}.fl.reqs`, b.flushReqs]);
      if (b.flushTotalTimesNs !== undefined) f.push([`block.${i}.fl.times`, b.flushTotalTimesNs]);
      f.push([`block.${i}.allocation`, b.allocation], [`block.${i}.capacity`, b.capacity], [`block.${i}.physical`, b.physical]);
    });
  }
  return f;
};

/** One domain's block of domstats output, with the blank line virsh ends it with. */
export const domStatsBlock = (name: string, fields: Array<[string, string | number]>): string =>
  [`Domain: '${name}'`, ...fields.map(([k, v]) => `  ${k}=${v}`), ''].join('\n');

/** nodememstats: `%-7s: %20llu KiB`. */
export const nodeMemStats = (m: NonNullable<NodeStats['memory']>): string =>
  (
    [
      ['total', m.totalKiB],
      ['free', m.freeKiB],
      ['buffers', m.buffersKiB],
      ['cached', m.cachedKiB],
    ] as const
  )
    .map(([k, v]) => `${k.padEnd(7)}: ${String(v).padStart(20)} KiB`)
    .join('\n');

/** freecell: the total; `--all` each cell (`%5d: %10llu KiB`) and a total under dashes; `--cellno` one. */
export const freeCell = (cells: NodeStats['cells'], opts: { all: boolean; cellno?: number }): string => {
  if (opts.cellno !== undefined) return `${opts.cellno}: ${cells.find((c) => c.id === opts.cellno)!.freeKiB} KiB`;
  const total = cells.reduce((n, c) => n + c.freeKiB, 0);
  if (!opts.all) return `Total: ${total} KiB`;
  return [...cells.map((c) => `${String(c.id).padStart(5)}: ${String(c.freeKiB).padStart(10)} KiB`), '-'.repeat(20), `${'Total'.padEnd(5)}: ${String(total).padStart(10)} KiB`].join('\n');
};
