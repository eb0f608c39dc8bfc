import type { Command } from 'commander';
import { failing } from './errors.ts';
import type { CliHelpers } from './network-commands.ts';
import { hostOp } from './host-op.ts';

/** virsh's verbs for a domain's kept state: autostart, reset, managedsave and managedsave-remove. */
export const registerDomainStateCommands = (program: Command, h: CliHelpers): void => {
  program
    .command('autostart')
    .description("start the domain when its host's agent starts (--disable: no longer)")
    .argument('<domain>', 'name or uuid')
    .option('--disable', 'no longer start it with its host')
    .action(async (domain: string, o: { disable?: boolean }) => {
      const verb = o.disable ? 'unmark' : 'mark';
      const r = await failing(`Failed to ${verb} domain '${domain}' as autostarted`, domain, () => h.withClient((c) => c.autostart(domain, !o.disable)));
      h.out().result(`Domain '${r.name}' ${verb}ed as autostarted`, r);
    });

  program
    .command('reset')
    .description('reset a running domain, as its reset button does')
    .argument('<domain>', 'name or uuid')
    .option('--timeout <seconds>', 'deadline for the host to reset it', '60')
    .action(async (domain: string, o: { timeout: string }) => {
      const timeoutSeconds = Number(o.timeout);
      const r = await hostOp(h, domain, `Failed to reset domain '${domain}'`, timeoutSeconds, (c, t) => c.reset(domain, { timeoutSeconds: t }));
      h.out().result(`Domain '${r.accepted.name}' was reset`, r);
    });

  program
    .command('managedsave')
    .description("save a running domain's state on its host and stop it; the next start resumes it")
    .argument('<domain>', 'name or uuid')
    .option('--timeout <seconds>', 'deadline for the host to save it', '300')
    .action(async (domain: string, o: { timeout: string }) => {
      const timeoutSeconds = Number(o.timeout);
      const r = await failing(`Failed to save domain '${domain}' state`, domain, () =>
        h.withClient(async (c) => {
          const accepted = await c.managedSave(domain, { timeoutSeconds });
          const view = await (await import('./progress.ts')).withProgress(`managedsave ${accepted.name}`, timeoutSeconds * 1000, !h.json(), () =>
            c.outcome(accepted, timeoutSeconds * 1000),
          );
          return { accepted, view };
        }),
      );
      h.out().result(`Domain '${r.accepted.name}' state saved by libvirt`, r);
    });

  program
    .command('managedsave-remove')
    .description("remove a domain's saved state, so its next start boots afresh")
    .argument('<domain>', 'name or uuid')
    .action(async (domain: string) => {
      const r = await failing(`Failed to remove managed save image for domain '${domain}'`, domain, () =>
        h.withClient(async (c) => {
          // virsh asks whether there is an image first, and says so when there is none.
          const v = await c.get(domain);
          return v.managedSave ? { name: v.name, removed: await c.managedSaveRemove(v.id) } : { name: v.name, removed: null };
        }),
      );
      h.out().result(r.removed ? `Removed managedsave image for domain '${r.name}'` : `Domain '${r.name}' has no manage save image; removal skipped`, r);
    });
};
