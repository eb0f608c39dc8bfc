import type { Command } from 'commander';
import { isVirtError } from '../contracts/errors.ts';
import { VerbFailed } from './errors.ts';
import type { CliHelpers } from './network-commands.ts';

/** virsh pool-autostart: its lines on success, and "failed to (un)mark pool X as autostarted" over libvirt's message. */
export const registerPoolAutostart = (program: Command, h: CliHelpers): void => {
  program
    .command('pool-autostart')
    .description("autostart a pool: its host starts it when its agent starts")
    .argument('<pool>', 'name or uuid')
    .option('--disable', 'disable autostarting')
    .action(async (pool: string, o: { disable?: boolean }) => {
      const r = await h.withClient(async (c) => {
        try {
          return await c.poolAutostart(pool, !o.disable);
        } catch (e) {
          if (!isVirtError(e)) throw e;
          if (e.code === 'no-storage-pool') throw new VerbFailed(`failed to get pool '${pool}'`, e);
          throw new VerbFailed(`failed to ${o.disable ? 'unmark' : 'mark'} pool ${pool} as autostarted`, e);
        }
      });
      h.out().result(`Pool ${pool} ${o.disable ? 'unmarked' : 'marked'} as autostarted`, r);
    });
};
