import type { Command } from 'commander';
import { DOMAIN_STATE_NUMBER, VIRSH_STATE_LABEL } from '../contracts/domain/state.ts';
import type { DomainView, VirtplaneClient } from '../client/index.ts';
import { liveDefinition } from '../contracts/domain/live.ts';
import { dominfo, HOST_LOST_LABEL, lifecycleLine } from './format.ts';
import { failing } from './errors.ts';
import { feedOptions, runFeed, type FeedOptions } from './event-feed.ts';
import type { CliHelpers } from './network-commands.ts';

/** virsh's domain verbs that read: dominfo, domid, domname, domuuid, dumpxml, domstate, and event. */
export const registerDomainInfoCommands = (program: Command, h: CliHelpers): void => {
  program
    .command('dominfo')
    .description('domain information, as virsh prints it')
    .argument('<domain>', 'name or uuid')
    .option('--extra', "add virtplane's lines: host, state reason, operation in progress, last error, version")
    .action(async (domain: string, o: { extra?: boolean }) => {
      const v = await failing(null, domain, () => h.withClient((c) => c.get(domain)));
      h.out().result(dominfo(v, Boolean(o.extra)), v);
    });

  program
    .command('domid')
    .description("the domain's id ('-' while it is not running)")
    .argument('<domain>', 'name or uuid')
    .action(async (domain: string) => {
      const v = await failing(null, domain, () => h.withClient((c) => c.get(domain)));
      h.out().result(v.domid === undefined ? '-' : String(v.domid), { id: v.domid ?? null });
    });

  const lookups: Array<[verb: string, description: string, by: string, field: 'name' | 'uuid', value: (v: DomainView) => string]> = [
    ['domname', "the domain's name, from its id or uuid", 'id or uuid', 'name', (v) => v.name],
    ['domuuid', "the domain's uuid, from its id or name", 'id or name', 'uuid', (v) => v.id],
  ];
  for (const [verb, description, by, field, value] of lookups) {
    program
      .command(verb)
      .description(description)
      .argument('<domain>', by)
      .action(async (domain: string) => {
        const v = await failing(null, domain, () => h.withClient((c) => lookup(c, domain)));
        h.out().result(value(v), { [field]: value(v) });
      });
  }

  program
    .command('dumpxml')
    .description('the domain as libvirt XML, as virtplane stores it')
    .argument('<domain>', 'name or uuid')
    .option('--inactive', 'the definition for the next boot, when one was recorded while the domain ran')
    .action(async (domain: string, o: { inactive?: boolean }) => {
      const v = await failing(null, domain, () => h.withClient((c) => c.get(domain)));
      // The running guest as libvirt shows it (devices the host gave it); --inactive, the next boot's.
      const def = o.inactive ? (v.nextDefinition ?? v.definition) : liveDefinition(v.definition, v.observed, v.interfaces, v.devices);
      const { formatDomainXml } = await import('../contracts/xml/index.ts');
      const xml = def === v.definition || def === v.nextDefinition ? (def.xml ?? formatDomainXml(def)) : formatDomainXml(def);
      h.out().result(xml.trimEnd(), { domainId: v.id, xml });
    });

  program
    .command('domstate')
    .description('domain state')
    .argument('<domain>', 'name or uuid')
    .option('--reason', 'also print the reason for the state')
    .action(async (domain: string, o: { reason?: boolean }) => {
      const v = await failing(null, domain, () => h.withClient((c) => c.get(domain)));
      const label = v.hostLost ? HOST_LOST_LABEL : VIRSH_STATE_LABEL[v.observed.state];
      // virsh writes reasons in words: 'from snapshot', 'starting up'.
      h.out().result(o.reason ? `${label} (${v.observed.reason.replaceAll('-', ' ')})` : label, {
        state: v.observed.state,
        reason: v.observed.reason,
        stateNumber: DOMAIN_STATE_NUMBER[v.observed.state],
        ...(v.hostLost ? { hostLost: true } : {}),
      });
    });

  feedOptions(program.command('event').description('print domain events as virsh does: the first one, or all with --loop'))
    .option('--domain <domain>', 'only events of this domain (name or uuid)')
    .action(async (o: FeedOptions & { domain?: string }) => {
      await h.withClient((c) =>
        runFeed(
          h,
          o,
          async (from, signal) => {
            const domainId = o.domain ? (await failing(null, o.domain, () => c.get(o.domain!))).id : undefined;
            return c.lifecycle({ ...(domainId ? { domainId } : {}), from, signal });
          },
          lifecycleLine,
        ),
      );
    });
};

/** A domain by name, uuid or (virsh's) id of a running domain. */
const lookup = async (c: VirtplaneClient, ref: string): Promise<DomainView> => {
  if (/^\d+$/.test(ref)) {
    const id = Number(ref);
    const found = (await c.list({ all: false })).find((v) => v.domid === id);
    if (found) return found;
  }
  return c.get(ref);
};
