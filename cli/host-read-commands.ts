import type { Command } from 'commander';
import { setTimeout as sleep } from 'node:timers/promises';
import { ALL_CPUS } from '../contracts/host/host-reads.ts';
import { failing, VerbFailed } from './errors.ts';
import { domTime, nodeCpuMap, nodeCpuPercent, nodeCpuStats, vcpuInfo } from './host-read-format.ts';
import type { CliHelpers } from './network-commands.ts';
import { chosenHost } from './node-commands.ts';

/**
 * virsh's read-only host verbs beyond nodeinfo (maxvcpus, nodecpustats, nodecpumap, sysinfo) for
 * one host (`--host`, or the only one), and the per-guest vcpuinfo and domtime, asked of the host
 * that runs the guest. Each is read by that host's agent when asked, never from the log.
 */

/** virsh's vshCommandOptInt: a whole number that fits an int, or its "malformed" usage error. */
const intOption = (h: CliHelpers, value: string | undefined, option: string): number | undefined => {
  if (value === undefined) return undefined;
  const n = /^[+-]?\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < -0x80000000 || n > 0x7fffffff) throw h.usageError(`Numeric value '${value}' for <${option}> option is malformed or out of range`);
  return n;
};

export const registerHostReadCommands = (program: Command, h: CliHelpers): void => {
  const hostOption = (cmd: Command) => cmd.option('--host <hostId>', 'the host to ask about (default: the only host)');

  program
    .command('vcpuinfo')
    .description("a domain's vCPUs: the host CPU each last ran on, its state, time and affinity")
    .argument('<domain>', 'name or uuid')
    .option('--pretty', 'affinity as a CPU list')
    .action(async (domain: string, o: { pretty?: boolean }) => {
      const r = await failing(null, domain, () => h.withClient((c) => c.vcpuInfo(domain)));
      h.out().result(vcpuInfo(r.vcpus, r.hostCpus, r.running, Boolean(o.pretty)), { domainId: r.view.id, running: r.running, hostCpus: r.hostCpus, vcpus: r.vcpus });
    });

  program
    .command('domtime')
    .description("a running domain's clock, as its guest agent reads it")
    .argument('<domain>', 'name or uuid')
    .option('--pretty', 'as date and time (UTC)')
    .action(async (domain: string, o: { pretty?: boolean }) => {
      const t = await failing(null, domain, () => h.withClient((c) => c.domainTime(domain)));
      h.out().result(domTime(t.seconds, Boolean(o.pretty)), t);
    });

  hostOption(program.command('maxvcpus').description('the most vCPUs a domain may have on a host').option('--type <type>', 'the domain type (kvm, qemu)')).action(
    async (o: { host?: string; type?: string }) => {
      const max = await h.withClient(async (c) => c.maxVcpus((await chosenHost(c, o.host)).hostId, o.type));
      h.out().result(String(max), { max });
    },
  );

  hostOption(
    program
      .command('nodecpustats')
      .description("a host's CPU times since boot (ns), all CPUs or one; --percent over one second")
      .option('--cpu <n>', 'one CPU (-1: all)')
      .option('--percent', 'shares of the time over one second'),
  ).action(async (o: { host?: string; cpu?: string; percent?: boolean }) => {
    const cpu = intOption(h, o.cpu, 'cpu') ?? ALL_CPUS;
    // libvirt refuses a negative CPU other than -1 before asking the host, on virsh's first call.
    const headline = cpu < ALL_CPUS ? 'Unable to get number of cpu stats' : 'Unable to get node cpu stats';
    await h.withClient(async (c) => {
      const hostId = (await chosenHost(c, o.host)).hostId;
      const read = () => c.nodeCpuStats(hostId, cpu).catch((e: unknown) => Promise.reject(new VerbFailed(headline, e)));
      const first = await read();
      if (!o.percent) return h.out().result(nodeCpuStats(first), first);
      await sleep(1000);
      const second = await read();
      h.out().result(nodeCpuPercent(first, second), { first, second });
    });
  });

  hostOption(program.command('nodecpumap').description("a host's CPUs: how many, which are online").option('--pretty', 'the online CPUs as a list')).action(
    async (o: { host?: string; pretty?: boolean }) => {
      const map = await h.withClient(async (c) =>
        c.nodeCpuMap((await chosenHost(c, o.host)).hostId).catch((e: unknown) => Promise.reject(new VerbFailed('Unable to get cpu map', e))),
      );
      h.out().result(nodeCpuMap(map, Boolean(o.pretty)), map);
    },
  );

  hostOption(program.command('sysinfo').description("a host's SMBIOS (BIOS, system, board, chassis) as libvirt's sysinfo XML")).action(async (o: { host?: string }) => {
    const xml = await h.withClient(async (c) =>
      c.sysinfo((await chosenHost(c, o.host)).hostId).catch((e: unknown) => Promise.reject(new VerbFailed('failed to get sysinfo', e))),
    );
    h.out().result(xml, { xml });
  });
};
