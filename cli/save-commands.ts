import type { Command } from 'commander';
import type { VirtplaneClient } from '../client/index.ts';
import { virtError } from '../contracts/errors.ts';
import { failing } from './errors.ts';
import type { CliHelpers } from './network-commands.ts';

/**
 * The host that holds an image: the one named, or else the only live host that answers for the
 * file (an image is on the host that wrote it, and nowhere else).
 */
const imageHost = async (c: VirtplaneClient, file: string, id: string | undefined): Promise<string> => {
  if (id) return id;
  const hosts = (await c.hosts()).filter((h) => !h.lost).map((h) => h.hostId);
  if (hosts.length <= 1) {
    if (hosts.length === 0) throw virtError('invalid-arg', 'no host has registered');
    return hosts[0]!;
  }
  const answers = await Promise.allSettled(hosts.map(async (h) => (await c.saveImage(file, h), h)));
  const found = answers.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []));
  if (found.length === 1) return found[0]!;
  throw virtError('invalid-arg', found.length === 0 ? `cannot read domain image '${file}': no host holds it` : `'${file}' is on hosts ${found.join(', ')}: name one with --host`);
};

/** virsh save, restore and save-image-dumpxml: a guest's state in a file on its host. */
export const registerSaveCommands = (program: Command, h: CliHelpers): void => {
  program
    .command('save')
    .description("save a running domain's state to a file on its host and stop it; restore starts it from there")
    .argument('<domain>', 'name or uuid')
    .argument('<file>', "absolute path on the domain's host, inside its image directories")
    .option('--timeout <seconds>', 'deadline for the host to save it', '300')
    .action(async (domain: string, file: string, o: { timeout: string }) => {
      const timeoutSeconds = Number(o.timeout);
      const r = await failing(`Failed to save domain '${domain}' to ${file}`, domain, () =>
        h.withClient(async (c) => {
          const accepted = await c.save(domain, file, { timeoutSeconds });
          // A transient domain is gone once saved.
          const view = await (await import('./progress.ts')).withProgress(`save ${accepted.name}`, timeoutSeconds * 1000, !h.json(), () => c.outcomeOrGone(accepted, timeoutSeconds * 1000));
          return { accepted, view };
        }),
      );
      h.out().result(`Domain '${r.accepted.name}' saved to ${file}`, r);
    });

  program
    .command('restore')
    .description('start a domain from a saved image, recreating it from the definition the image records')
    .argument('<file>', 'absolute path of the image on its host')
    .option('--host <hostId>', 'the host that holds the image (default: the one that answers for it)')
    .option('--paused', 'leave the guest paused')
    .option('--running', 'leave the guest running')
    .option('--timeout <seconds>', 'deadline for the host to restore it', '120')
    .action(async (file: string, o: { host?: string; paused?: boolean; running?: boolean; timeout: string }) => {
      if (o.paused && o.running) throw h.usageError('Options --running and --paused are mutually exclusive');
      const timeoutSeconds = Number(o.timeout);
      const r = await failing(`Failed to restore domain from ${file}`, null, () =>
        h.withClient(async (c) => {
          const accepted = await c.restore(file, {
            timeoutSeconds,
            ...(o.host ? { hostId: o.host } : {}),
            ...(o.paused ? { paused: true } : {}),
            ...(o.running ? { running: true } : {}),
          });
          const view = await (await import('./progress.ts')).withProgress(`restore ${accepted.name}`, timeoutSeconds * 1000, !h.json(), () => c.outcome(accepted, timeoutSeconds * 1000));
          return { accepted, view };
        }),
      );
      h.out().result(`Domain restored from ${file}`, r);
    });

  program
    .command('save-image-dumpxml')
    .description('the domain XML a saved image records')
    .argument('<file>', 'absolute path of the image on its host')
    .option('--host <hostId>', 'the host that holds the image (default: the one that answers for it)')
    .action(async (file: string, o: { host?: string }) => {
      const r = await failing(`Failed to read domain XML from ${file}`, null, () =>
        h.withClient(async (c) => {
          const hostId = await imageHost(c, file, o.host);
          return { hostId, ...(await c.saveImage(file, hostId)) };
        }),
      );
      h.out().result(r.xml.trimEnd(), r);
    });
};
