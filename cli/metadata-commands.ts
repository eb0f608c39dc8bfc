import type { Command } from 'commander';
import { findAppMetadata, formatAppMetadata, metadataNotFound } from '../contracts/domain/metadata.ts';
import { failing } from './errors.ts';
import type { CliHelpers } from './network-commands.ts';

/** virsh metadata: an application's element under its namespace URI in the domain's <metadata>. */
export const registerMetadataCommands = (program: Command, h: CliHelpers): void => {
  program
    .command('metadata')
    .description("show, set or remove an application's element in a domain's <metadata>, by namespace URI")
    .argument('<domain>', 'name or uuid')
    .argument('[uri]', 'the namespace URI (or --uri)')
    .option('--uri <uri>', 'the namespace URI')
    .option('--key <key>', 'the prefix the element is stored under (needed with --set)')
    .option('--set <xml>', 'the new element')
    .option('--remove', 'remove the element')
    .option('--live', 'the running domain')
    .option('--config', 'the persistent definition')
    .option('--current', 'the running domain when it runs, else the persistent definition')
    .action(async (domain: string, pos: string | undefined, o: { uri?: string; key?: string; set?: string; remove?: boolean; live?: boolean; config?: boolean; current?: boolean }) => {
      const uri = o.uri ?? pos;
      if (!uri) throw h.usageError("command 'metadata' requires <uri> option");
      if (o.current && (o.live || o.config)) throw h.usageError('--current goes with neither --live nor --config');
      if (o.set !== undefined && o.remove) throw h.usageError('Options --set and --remove are mutually exclusive');
      if (o.set === '') throw h.usageError("Failed to get option 'set': Option argument is empty");
      const scope = { live: Boolean(o.live), config: Boolean(o.config) };
      if (o.set !== undefined || o.remove) {
        const r = await failing(null, domain, () => h.withClient((c) => c.setAppMetadata(domain, uri, o.key, o.remove ? null : o.set!, scope)));
        h.out().result(o.remove ? 'Metadata removed' : 'Metadata modified', r);
        return;
      }
      const xml = await failing(null, domain, () =>
        h.withClient(async (c) => {
          const v = await c.get(domain);
          const def = o.config ? (v.nextDefinition ?? v.definition) : v.definition;
          const el = findAppMetadata(def.metadata, uri);
          if (!el) throw metadataNotFound();
          return formatAppMetadata(el);
        }),
      );
      h.out().result(xml, { uri, xml });
    });
};
