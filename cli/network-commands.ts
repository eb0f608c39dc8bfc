import type { Command } from 'commander';
import type { VirtplaneClient } from '../client/index.ts';
import { isActive } from '../contracts/domain/state.ts';
import { virtError } from '../contracts/errors.ts';
import { readDocument } from './documents.ts';
import { feedOptions, runFeed, type FeedOptions } from './event-feed.ts';
import { dhcpLeases, domIfAddr, domIfList, interfaceRows, netEventLine, netInfo, netList, type AddressRow } from './network-format.ts';
import { VerbFailed } from './errors.ts';
import { isVirtError } from '../contracts/errors.ts';
import { parsePageSize } from './format.ts';

/** What cli/main.ts shares with the commands registered here. */
export interface CliHelpers {
  out(): { result(human: string, data: unknown): void };
  withClient<T>(fn: (c: VirtplaneClient) => Promise<T>): Promise<T>;
  json(): boolean;
  /** An error that exits with status 2, as a usage mistake. */
  usageError(message: string): Error;
}

/** virsh's network verbs, and the domain interface listings that read network data. */
export const registerNetworkCommands = (program: Command, h: CliHelpers): void => {
  const networkInput = (file: string) => readDocument(file, h.usageError);

  program
    .command('net-define')
    .description('define (or redefine) a persistent network from libvirt network XML or a JSON definition')
    .argument('<file>', 'libvirt network XML or a JSON definition')
    .action(async (file: string) => {
      const input = await networkInput(file);
      const r = await h.withClient((c) => c.netDefine(input));
      h.out().result(`Network ${r.name} defined from ${file}`, r);
    });

  program
    .command('net-create')
    .description('create and start a network from libvirt network XML or a JSON definition; a new one is transient')
    .argument('<file>', 'libvirt network XML or a JSON definition')
    .action(async (file: string) => {
      const input = await networkInput(file);
      const r = await h.withClient((c) => c.netCreate(input));
      h.out().result(`Network ${r.name} created from ${file}`, r);
    });

  program
    .command('net-undefine')
    .description('undefine an inactive network')
    .argument('<network>', 'name or uuid')
    .action(async (network: string) => {
      const r = await h.withClient((c) => c.netUndefine(network));
      h.out().result(`Network ${r.name} has been undefined`, r);
    });

  program
    .command('net-start')
    .description('start (activate) a network: hosts realise it as guests attached to it start')
    .argument('<network>', 'name or uuid')
    .action(async (network: string) => {
      const r = await h.withClient((c) => c.netStart(network));
      h.out().result(`Network ${r.name} started`, r);
    });

  program
    .command('net-destroy')
    .description('stop (deactivate) a network')
    .argument('<network>', 'name or uuid')
    .action(async (network: string) => {
      const r = await h.withClient((c) => c.netDestroy(network));
      h.out().result(`Network ${r.name} destroyed`, r);
    });

  program
    .command('net-dhcp-leases')
    .description("print lease info for a given network, read now from each host's DHCP server")
    .argument('<network>', 'name or uuid')
    .option('--mac <mac>', 'MAC address')
    .action(async (network: string, o: { mac?: string }) => {
      const leases = await h.withClient(async (c) => {
        try {
          return await c.netDhcpLeases(network, o.mac ? { mac: o.mac } : {});
        } catch (e) {
          if (!isVirtError(e)) throw e;
          if (e.code === 'no-network') throw new VerbFailed(`failed to get network '${network}'`, e);
          throw new VerbFailed(`Failed to get leases info for ${network}`, e);
        }
      });
      h.out().result(dhcpLeases(leases), leases);
    });

  program
    .command('net-autostart')
    .description('mark a network to be started automatically')
    .argument('<network>', 'name or uuid')
    .option('--disable', 'unmark it instead')
    .action(async (network: string, o: { disable?: boolean }) => {
      const r = await h.withClient((c) => c.netAutostart(network, !o.disable));
      h.out().result(o.disable ? `Network ${r.name} unmarked as autostarted` : `Network ${r.name} marked as autostarted`, r);
    });

  program
    .command('net-list')
    .description('list networks (active ones unless --all or --inactive)')
    .option('--all', 'include inactive networks')
    .option('--inactive', 'only inactive networks')
    .option('--page-size <n>', 'networks per request (the list is read page by page to the end)', parsePageSize)
    .action(async (o: { all?: boolean; inactive?: boolean; pageSize?: number }) => {
      const views = await h.withClient((c) => c.netList({ all: Boolean(o.all), inactive: Boolean(o.inactive), ...(o.pageSize ? { pageSize: o.pageSize } : {}) }));
      h.out().result(netList(views), views);
    });

  program
    .command('net-info')
    .description('network information')
    .argument('<network>', 'name or uuid')
    .action(async (network: string) => {
      const v = await h.withClient((c) => c.netGet(network));
      h.out().result(netInfo(v), v);
    });

  program
    .command('net-dumpxml')
    .description('the network as libvirt XML, as virtplane stores it')
    .argument('<network>', 'name or uuid')
    .option('--inactive', 'the definition for the next start, when one was recorded while the network was active')
    .action(async (network: string, o: { inactive?: boolean }) => {
      const v = await h.withClient((c) => c.netGet(network));
      const def = o.inactive && v.nextDefinition ? v.nextDefinition : v.definition;
      const xml = def.xml ?? (await import('../contracts/xml/index.ts')).formatNetworkXml(def);
      h.out().result(xml.trimEnd(), { networkId: v.id, xml });
    });

  feedOptions(program.command('net-event').description('print network events as virsh does: the first one, or all with --loop'))
    .option('--network <network>', 'only events of this network (name or uuid)')
    .action(async (o: FeedOptions & { network?: string }) => {
      await h.withClient((c) =>
        runFeed(
          h,
          o,
          async (from, signal) => {
            const networkId = o.network ? (await c.netGet(o.network)).id : undefined;
            return c.netEvents({ ...(networkId ? { networkId } : {}), from, signal });
          },
          netEventLine,
        ),
      );
    });

  program
    .command('domiflist')
    .description("list a domain's network interfaces")
    .argument('<domain>', 'name or uuid')
    .action(async (domain: string) => {
      const v = await h.withClient((c) => c.get(domain));
      const rows = interfaceRows(v);
      h.out().result(domIfList(rows), { domainId: v.id, interfaces: rows });
    });

  program
    .command('domifaddr')
    .description("a running domain's interface addresses, as far as virtplane knows them")
    .argument('<domain>', 'name or uuid')
    .action(async (domain: string) => {
      const v = await h.withClient((c) => c.get(domain));
      // virDomainInterfaceAddresses needs a running domain.
      if (!isActive(v.observed.state)) throw virtError('operation-invalid', 'domain is not running', { domain: v.name });
      // What the host saw in its DHCP leases (virsh domifaddr's default source); a network's static
      // DHCP entries are not shown, since the guest may never have taken them.
      const rows: AddressRow[] = v.interfaces.flatMap((i) =>
        (i.addresses ?? []).map((a) => ({
          name: i.ifname,
          mac: i.mac,
          protocol: a.family,
          address: a.prefix !== undefined ? `${a.address}/${a.prefix}` : a.address,
        })),
      );
      h.out().result(domIfAddr(rows), { domainId: v.id, interfaces: rows });
    });
};
