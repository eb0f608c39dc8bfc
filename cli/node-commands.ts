import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { virtError } from '../contracts/errors.ts';
import { VerbFailed } from './errors.ts';
import type { HostView, VirtplaneClient } from '../client/index.ts';
import { PROJECT_ROOT } from '../platform/config.ts';
import type { CliHelpers } from './network-commands.ts';
import { freeCell, nodeMemStats } from './monitor-format.ts';

/**
 * virsh's host verbs for one host of the fleet (`--host`, or the only one there is): nodeinfo,
 * hostname, version, uri, and the live nodememstats and freecell, which that host's agent answers. What a host has not reported is left out, never made up.
 */

const VERSION = (JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** The host named, or the only registered one. */
export const chosenHost = async (c: VirtplaneClient, id: string | undefined): Promise<HostView> => {
  if (id) return c.host(id);
  const hosts = (await c.hosts()).filter((h) => !h.lost);
  if (hosts.length === 1) return hosts[0]!;
  throw virtError('invalid-arg', hosts.length === 0 ? 'no host has registered' : `the fleet has ${hosts.length} hosts: name one with --host (${hosts.map((h) => h.hostId).join(', ')})`);
};

/** `%-20s %s`, as virsh nodeinfo prints. */
const nodeLines = (rows: Array<[string, string | undefined]>): string =>
  rows
    .filter((r): r is [string, string] => r[1] !== undefined)
    .map(([k, v]) => `${`${k}:`.padEnd(20)} ${v}`)
    .join('\n');

export const nodeinfo = (h: HostView): string => {
  const f = h.capabilities?.features ?? {};
  return nodeLines([
    ['CPU model', f.cpuModel],
    ['CPU(s)', h.capabilities ? String(h.capabilities.cpus) : undefined],
    ['CPU frequency', f.cpuMHz ? `${f.cpuMHz} MHz` : undefined],
    ['CPU socket(s)', f.cpuSockets],
    ['Core(s) per socket', f.coresPerSocket],
    ['Thread(s) per core', f.threadsPerCore],
    ['NUMA cell(s)', f.numaCells],
    ['Memory size', h.capabilities ? `${h.capabilities.memoryKiB} KiB` : undefined],
  ]);
};

/** virsh version: the library, the API (the host's driver) and the hypervisor it runs. */
export const versionLines = (h: HostView): string => {
  const driver = (h.capabilities?.driver ?? 'unknown').split(',');
  const qemu = h.capabilities?.features.qemu;
  return [
    `Compiled against library: virtplane ${VERSION}`,
    `Using library: virtplane ${VERSION}`,
    `Using API: ${driver.includes('qemu') ? 'QEMU' : driver[0]!.toUpperCase()} ${h.agentVersion}`,
    ...(qemu ? [`Running hypervisor: QEMU ${qemu}`] : driver.includes('test') ? [`Running hypervisor: TEST ${h.agentVersion}`] : []),
  ].join('\n');
};

const xmlText = (v: string) => v.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll("'", '&apos;');

/**
 * virsh capabilities, from what the host reported: its CPU architecture and topology, one NUMA cell
 * when it has one (a host with several has not said how its memory splits, so no cells are shown),
 * and a guest for each domain type its drivers run. Test-driver guests are described as libvirt's
 * test driver describes them.
 */
export const capabilitiesXml = (host: HostView): string => {
  const c = host.capabilities;
  const f = c?.features ?? {};
  const arch = f.cpuModel ?? 'x86_64';
  const lines = ['<capabilities>', '', '  <host>', '    <cpu>', `      <arch>${xmlText(arch)}</arch>`];
  if (f.cpuSockets && f.coresPerSocket && f.threadsPerCore) {
    lines.push(`      <topology sockets='${f.cpuSockets}' dies='1' cores='${f.coresPerSocket}' threads='${f.threadsPerCore}'/>`);
  }
  lines.push('    </cpu>');
  if (c && (f.numaCells ?? '1') === '1') {
    lines.push('    <topology>', "      <cells num='1'>", "        <cell id='0'>", `          <memory unit='KiB'>${c.memoryKiB}</memory>`, `          <cpus num='${c.cpus}'>`);
    for (let i = 0; i < c.cpus; i++) lines.push(`            <cpu id='${i}'/>`);
    lines.push('          </cpus>', '        </cell>', '      </cells>', '    </topology>');
  }
  lines.push('  </host>', '');
  const types = c?.domainTypes ?? [];
  const hv = types.filter((t) => t === 'kvm' || t === 'qemu');
  if (hv.length > 0) {
    lines.push('  <guest>', '    <os_type>hvm</os_type>', `    <arch name='${xmlText(arch)}'>`, `      <wordsize>${/64/.test(arch) ? 64 : 32}</wordsize>`);
    if (f.binary) lines.push(`      <emulator>${xmlText(f.binary)}</emulator>`);
    for (const t of hv) lines.push(`      <domain type='${t}'/>`);
    lines.push('    </arch>', '  </guest>', '');
  }
  if (types.includes('test')) {
    lines.push('  <guest>', '    <os_type>hvm</os_type>', "    <arch name='i686'>", '      <wordsize>32</wordsize>', '      <emulator>/usr/bin/test-hv</emulator>', "      <domain type='test'/>", '    </arch>', '  </guest>', '');
  }
  lines.push('</capabilities>');
  return lines.join('\n');
};

export const registerNodeCommands = (program: Command, h: CliHelpers): void => {
  const hostOption = (cmd: Command) => cmd.option('--host <hostId>', 'the host to ask about (default: the only host)');

  hostOption(program.command('nodeinfo').description("a host's CPUs and memory, as virsh nodeinfo prints them")).action(async (o: { host?: string }) => {
    const host = await h.withClient((c) => chosenHost(c, o.host));
    h.out().result(nodeinfo(host), { hostId: host.hostId, ...host.capabilities });
  });

  hostOption(program.command('hostname').description("a host's hostname")).action(async (o: { host?: string }) => {
    const host = await h.withClient((c) => chosenHost(c, o.host));
    h.out().result(host.hostname, { hostId: host.hostId, hostname: host.hostname });
  });

  hostOption(program.command('version').description('the versions of virtplane and of the hypervisor a host runs')).action(async (o: { host?: string }) => {
    const host = await h.withClient((c) => chosenHost(c, o.host));
    h.out().result(versionLines(host), { library: VERSION, hostId: host.hostId, agentVersion: host.agentVersion, driver: host.capabilities?.driver ?? null, hypervisor: host.capabilities?.features.qemu ?? null });
  });

  hostOption(program.command('capabilities').description("a host's capabilities as libvirt XML: CPU, topology, the guests it runs")).action(async (o: { host?: string }) => {
    const host = await h.withClient((c) => chosenHost(c, o.host));
    const xml = capabilitiesXml(host);
    h.out().result(xml, { hostId: host.hostId, xml });
  });

  hostOption(
    program
      .command('domcapabilities')
      .description("what a host's hypervisor offers a domain: machine, vCPUs, CPU models, devices")
      .option('--virttype <type>', 'the domain type (kvm, qemu)')
      .option('--emulatorbin <path>', 'the emulator binary')
      .option('--arch <arch>', 'the guest architecture')
      .option('--machine <machine>', 'the machine type'),
  ).action(async (o: { host?: string; virttype?: string; emulatorbin?: string; arch?: string; machine?: string }) => {
    const { host, ...req } = o;
    const xml = await h.withClient(async (c) => {
      const hostId = (await chosenHost(c, host)).hostId;
      return c.domainCapabilities(hostId, req).catch((e: unknown) => {
        throw new VerbFailed('failed to get emulator capabilities', e);
      });
    });
    h.out().result(xml, { xml });
  });

  hostOption(program.command('nodememstats').description("a host's memory now: total, free, buffers, cached")).action(async (o: { host?: string }) => {
    const stats = await h.withClient(async (c) => c.nodeStats((await chosenHost(c, o.host)).hostId));
    if (!stats.memory) throw new VerbFailed('Unable to get number of memory stats', virtError('operation-unsupported', 'this function is not supported by the connection driver: virNodeGetMemoryStats'));
    h.out().result(nodeMemStats(stats.memory), stats.memory);
  });

  hostOption(program.command('freecell').description("a host's free memory, in total or by NUMA cell"))
    .option('--all', 'each cell and the total')
    .option('--cellno <n>', 'one cell')
    .action(async (o: { host?: string; all?: boolean; cellno?: string }) => {
      if (o.all && o.cellno !== undefined) throw h.usageError('Options --all and --cellno are mutually exclusive');
      if (o.cellno !== undefined && !/^\d+$/.test(o.cellno)) throw h.usageError(`Numeric value '${o.cellno}' for <cellno> option is malformed or out of range`);
      const cellno = o.cellno === undefined ? undefined : Number(o.cellno);
      const stats = await h.withClient(async (c) => c.nodeStats((await chosenHost(c, o.host)).hostId));
      if (cellno !== undefined && !stats.cells.some((c) => c.id === cellno)) {
        throw virtError('invalid-arg', 'Range exceeds available cells');
      }
      h.out().result(freeCell(stats.cells, { all: Boolean(o.all), ...(cellno !== undefined ? { cellno } : {}) }), stats.cells);
    });

  program
    .command('uri')
    .description('the address of the control plane this CLI talks to')
    .action(async () => {
      // The server this connection reached, as virsh names the connection it opened.
      const uri = `nats://${await h.withClient(async (c) => c.nats.nc.getServer())}`;
      h.out().result(uri, { uri });
    });
};
