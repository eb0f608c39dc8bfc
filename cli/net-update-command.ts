import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { isVirtError } from '../contracts/errors.ts';
import { NET_UPDATE_COMMANDS, NET_UPDATE_SECTIONS } from '../contracts/network/update.ts';
import { VerbFailed } from './errors.ts';
import type { CliHelpers } from './network-commands.ts';

/** virsh net-update, with its checks of the command and section names and its lines. */
export const registerNetUpdate = (program: Command, h: CliHelpers): void => {
  program
    .command('net-update')
    .description('update parts of an existing network\'s configuration (ip-dhcp-host, dns-host): its running state (--live), its persistent config (--config), or both')
    .argument('<network>', 'name or uuid')
    .argument('<command>', 'add, add-first, add-last, delete or modify')
    .argument('<section>', 'ip-dhcp-host or dns-host')
    .argument('<xml>', 'the element as XML, or a file holding it')
    .option('--parent-index <n>', 'which <ip> element (for ip-dhcp-host)')
    .option('--config', 'affect the persistent config')
    .option('--live', 'affect the running network: every host running it serves the DHCP hosts at once, without a restart')
    .option('--current', 'affect the current state of the network (live when it runs, else its config); the default')
    .action(async (network: string, command: string, section: string, xmlArg: string, o: { parentIndex?: string; config?: boolean; live?: boolean; current?: boolean }) => {
      if (o.current && o.live) throw h.usageError('Options --current and --live are mutually exclusive');
      if (o.current && o.config) throw h.usageError('Options --current and --config are mutually exclusive');
      if (!(NET_UPDATE_COMMANDS as readonly string[]).includes(command)) throw h.usageError(`unrecognized command name '${command}'`);
      if (!(NET_UPDATE_SECTIONS as readonly string[]).includes(section)) throw h.usageError(`unrecognized section name '${section}'`);
      let parentIndex: number | undefined;
      if (o.parentIndex !== undefined) {
        parentIndex = Number(o.parentIndex);
        if (!/^[0-9]+$/.test(o.parentIndex) || parentIndex > 1024) throw h.usageError(`Numeric value '${o.parentIndex}' for <parent-index> option is malformed or out of range`);
      }
      // As virsh: an argument that is not XML names a file holding it.
      const xml = xmlArg.trimStart().startsWith('<') ? xmlArg : await readFile(xmlArg, 'utf8');
      const r = await h.withClient(async (c) => {
        try {
          return await c.netUpdate(network, { command, section, xml, ...(parentIndex !== undefined ? { parentIndex } : {}), ...(o.config ? { config: true } : {}), ...(o.live ? { live: true } : {}) });
        } catch (e) {
          if (!isVirtError(e)) throw e;
          if (e.code === 'no-network') throw new VerbFailed(`failed to get network '${network}'`, e);
          throw new VerbFailed(`Failed to update network ${network}`, e);
        }
      });
      // Which state changed, worded as virsh does; for --current virsh asks whether the network runs.
      const live = o.live || (!o.config && (await h.withClient((c) => c.netGet(network))).active);
      const what = o.config && live ? 'persistent config and live state' : live ? 'live state' : 'persistent config';
      h.out().result(`Updated network ${network} ${what}`, r);
    });
};
