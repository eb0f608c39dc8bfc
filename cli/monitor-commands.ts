import type { Command } from 'commander';
import { isActive } from '../contracts/domain/state.ts';
import type { BlockStats, DomainStats } from '../contracts/domain/stats.ts';
import { virtError } from '../contracts/errors.ts';
import type { DomainView, VirtplaneClient } from '../client/index.ts';
import { failing, VerbFailed } from './errors.ts';
import { cpuStats, domBlkInfo, domBlkInfoAll, domBlkList, domBlkStat, domIfStat, domMemStat, domStatsBlock, STATS_GROUPS, statsFields, type StatsGroup } from './monitor-format.ts';
import type { CliHelpers } from './network-commands.ts';

/**
 * virsh's domain monitoring verbs. domblklist reads the definition; the others ask the agent of the
 * host that runs the guest for its numbers now (client.domainStats), as virsh asks libvirtd.
 */

/** A disk by target or by source path, as virsh accepts either. */
const findBlock = (blocks: BlockStats[], device: string): BlockStats | undefined => blocks.find((b) => b.target === device || b.source === device);

/** A whole number option, or virsh's "Numeric value ... is malformed" usage error. */
const whole = (h: CliHelpers, value: string | undefined, option: string): number | undefined => {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw h.usageError(`Numeric value '${value}' for <${option}> option is malformed or out of range`);
  return Number(value);
};

export const registerMonitorCommands = (program: Command, h: CliHelpers): void => {
  const stats = (domain: string, headline: string | null) => failing(headline, domain, () => h.withClient((c) => c.domainStats(domain)));

  program
    .command('domblklist')
    .description("list a domain's block devices")
    .argument('<domain>', 'name or uuid')
    .option('--inactive', 'the definition for the next boot')
    .option('--details', 'also the type and device of each disk')
    .action(async (domain: string, o: { inactive?: boolean; details?: boolean }) => {
      const v = await failing(null, domain, () => h.withClient((c) => c.get(domain)));
      const def = o.inactive ? (v.nextDefinition ?? v.definition) : v.definition;
      h.out().result(domBlkList(def, Boolean(o.details)), { domainId: v.id, disks: def.devices.disks });
    });

  program
    .command('domblkinfo')
    .description("a running domain's disk sizes: capacity, allocation, physical")
    .argument('<domain>', 'name or uuid')
    .argument('[device]', 'target (vda) or source path')
    .option('--all', 'every disk, as a table')
    .option('--human', 'sizes with units')
    .action(async (domain: string, device: string | undefined, o: { all?: boolean; human?: boolean }) => {
      if (!device && !o.all) throw h.usageError("command 'domblkinfo' requires <device> option");
      const { stats: s } = await stats(domain, null);
      if (o.all) {
        h.out().result(domBlkInfoAll(s.blocks, Boolean(o.human)), s.blocks);
        return;
      }
      const b = findBlock(s.blocks, device!);
      if (!b) throw virtError('invalid-arg', `invalid path ${device} not assigned to domain`);
      h.out().result(domBlkInfo(b, Boolean(o.human)), b);
    });

  program
    .command('domblkstat')
    .description("a running domain's disk counters")
    .argument('<domain>', 'name or uuid')
    .argument('[device]', 'target (vda) or source path')
    .option('--human', 'labelled lines')
    .action(async (domain: string, device: string | undefined, o: { human?: boolean }) => {
      const headline = `Failed to get block stats ${domain} ${device ?? ''}`;
      const { stats: s } = await stats(domain, headline);
      if (!device) throw new VerbFailed(headline, virtError('operation-unsupported', 'summary statistics are not supported yet'));
      const b = findBlock(s.blocks, device);
      if (!b) throw new VerbFailed(headline, virtError('invalid-arg', `invalid path: ${device}`));
      h.out().result(domBlkStat(device, b, Boolean(o.human)), b);
    });

  program
    .command('domifstat')
    .description("a running domain's interface counters")
    .argument('<domain>', 'name or uuid')
    .argument('<interface>', 'host device name (vnet0) or MAC address')
    .action(async (domain: string, iface: string) => {
      const headline = `Failed to get interface stats ${domain} ${iface}`;
      const { stats: s } = await stats(domain, headline);
      const n = s.interfaces.find((i) => i.name === iface || i.mac === iface.toLowerCase());
      if (!n) throw new VerbFailed(headline, virtError('invalid-arg', `'${iface}' is not a known interface`));
      h.out().result(domIfStat(iface, n), n);
    });

  program
    .command('dommemstat')
    .description("a running domain's memory statistics, from its balloon")
    .argument('<domain>', 'name or uuid')
    .action(async (domain: string) => {
      const { stats: s } = await stats(domain, `Failed to get memory statistics for domain ${domain}`);
      h.out().result(domMemStat(s), Object.fromEntries(s.balloon?.stats ?? []));
    });

  program
    .command('cpu-stats')
    .description("a running domain's CPU time, per host CPU and in total")
    .argument('<domain>', 'name or uuid')
    .option('--total', 'only the total')
    .option('--start <cpu>', 'the first host CPU to show')
    .option('--count <n>', 'how many host CPUs to show')
    .action(async (domain: string, o: { total?: boolean; start?: string; count?: string }) => {
      if (o.start !== undefined && !/^\d+$/.test(o.start)) throw h.usageError('Invalid value for start CPU');
      const start = whole(h, o.start, 'start') ?? 0;
      const count = whole(h, o.count, 'count');
      const { stats: s } = await stats(domain, `Failed to retrieve CPU statistics for domain '${domain}'`);
      if (s.perCpu.length > 0 && start >= s.perCpu.length) throw h.usageError(`Start CPU ${start} is out of range (min: 0, max: ${s.perCpu.length - 1})`);
      // virsh: --start or --count alone shows only CPUs; --total alone only the total; neither, both.
      const perCpu = !o.total || o.start !== undefined || o.count !== undefined;
      const total = Boolean(o.total) || (o.start === undefined && o.count === undefined);
      h.out().result(cpuStats(s, { start, count: count ?? s.perCpu.length, perCpu, total }), s.cpu);
    });

  const groupFlags: Array<[StatsGroup, string]> = [
    ['state', '--state'],
    ['cpu-total', '--cpu-total'],
    ['balloon', '--balloon'],
    ['vcpu', '--vcpu'],
    ['interface', '--interface'],
    ['block', '--block'],
  ];
  const domstats = program
    .command('domstats')
    .description("domains' statistics by group, as virsh domstats prints them")
    .argument('[domains...]', 'names or uuids (default: every domain)')
    .option('--list-active', 'only running domains')
    .option('--list-inactive', 'only shut off domains');
  for (const [g, flag] of groupFlags) domstats.option(flag, `the ${g} group`);
  domstats.action(async (domains: string[], o: Record<string, boolean | undefined>) => {
    const asked = groupFlags.filter(([g]) => o[camel(g)]).map(([g]) => g);
    const groups = asked.length > 0 ? asked : STATS_GROUPS;
    const blocks: string[] = [];
    const data: Array<{ domain: string; fields: Record<string, string | number> }> = [];
    await h.withClient(async (c) => {
      const views = domains.length > 0 ? await Promise.all(domains.map((d) => failing(null, d, () => c.get(d)))) : await c.list({ all: true });
      for (const v of views) {
        const active = isActive(v.observed.state);
        if ((o.listActive && !active) || (o.listInactive && active)) continue;
        const s = active ? await domainStats(c, v) : undefined;
        const fields = statsFields(v.definition, v.observed, s, groups);
        blocks.push(domStatsBlock(v.name, fields));
        data.push({ domain: v.name, fields: Object.fromEntries(fields) });
      }
    });
    h.out().result(blocks.join('\n').trimEnd(), data);
  });
};

const camel = (g: string) => g.replace(/-(\w)/g, (_, x: string) => x.toUpperCase());

/** A running domain's stats, or none when it stopped between the list and the question. */
const domainStats = async (c: VirtplaneClient, v: DomainView): Promise<DomainStats | undefined> => {
  try {
    return (await c.domainStats(v.id)).stats;
  } catch (e) {
    if ((e as { code?: string }).code === 'operation-invalid') return undefined;
    throw e;
  }
};
