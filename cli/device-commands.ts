import { readFile, stat } from 'node:fs/promises';
import type { Command } from 'commander';
import type { CommandAccepted, DeviceScope, VirtplaneClient } from '../client/index.ts';
import { isVirtError } from '../contracts/errors.ts';
import { failing, VerbFailed } from './errors.ts';
import type { CliHelpers } from './network-commands.ts';

interface ScopeFlags {
  live?: boolean;
  config?: boolean;
  current?: boolean;
  persistent?: boolean;
}

const WAIT_MS = 120_000;

/** virsh's VSH_EXCLUSIVE_OPTIONS checks, in its order and words. */
const checkScope = (h: CliHelpers, o: ScopeFlags, persistent: boolean): void => {
  if (persistent && o.persistent && o.current) throw h.usageError('Options --persistent and --current are mutually exclusive');
  if (o.current && o.live) throw h.usageError('Options --current and --live are mutually exclusive');
  if (o.current && o.config) throw h.usageError('Options --current and --config are mutually exclusive');
};

/**
 * `current`: the verb passes VIR_DOMAIN_AFFECT_CURRENT when given no flag (update-device,
 * change-media); the others call libvirt's flagless API, which is the running guest.
 */
const scopeOf = (o: ScopeFlags, current: boolean): DeviceScope => ({
  ...(o.live ? { live: true } : {}),
  ...(o.config ? { config: true } : {}),
  ...(o.persistent ? { persistent: true } : {}),
  ...(o.current || (current && !o.live && !o.config && !o.persistent) ? { current: true } : {}),
});

/** An error of virsh's own lookup is its one line, without a headline or libvirt's prefix. */
const virshLookup = async <T>(fn: () => Promise<T>): Promise<T> => {
  try {
    return await fn();
  } catch (e) {
    if (isVirtError(e) && (e.details as { lookup?: string } | undefined)?.lookup === 'virsh') throw new VerbFailed(null, e, e.message);
    throw e;
  }
};

/** A host operation is over when the host has reported; a change of the definition alone, at once. */
const settled = (c: VirtplaneClient, accepted: CommandAccepted) => c.outcome(accepted, WAIT_MS);

const withScope = (cmd: Command, persistent = true): Command => {
  cmd
    .option('--live', 'change the running domain')
    .option('--config', 'change the persistent definition')
    .option('--current', 'the running domain when it runs, the persistent definition otherwise');
  if (persistent) cmd.option('--persistent', 'the persistent definition, and the running domain too when it runs');
  return cmd;
};

/** virsh's disk and device verbs: attach-disk, detach-disk, attach-device, detach-device, update-device, change-media. */
export const registerDeviceCommands = (program: Command, h: CliHelpers): void => {
  const readDeviceFile = async (file: string): Promise<string> => {
    try {
      return await readFile(file, 'utf8');
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const why: Record<string, string> = { ENOENT: 'No such file or directory', EACCES: 'Permission denied', EISDIR: 'Is a directory' };
      throw h.usageError(`Failed to open file '${file}': ${why[err.code ?? ''] ?? err.message}`);
    }
  };

  withScope(
    program
      .command('attach-disk')
      .description('attach a disk (live on a running domain unless --config; --current: live when running, else config)')
      .argument('<domain>', 'name or uuid')
      .argument('<source>', 'source of the disk: an image file or a block device')
      .argument('<target>', 'target of the disk device, e.g. vdb')
      .option('--targetbus <bus>', 'target bus of the disk device (virtio, ide, scsi, sata)')
      .option('--driver <driver>', 'driver of the disk device, e.g. qemu')
      .option('--subdriver <subdriver>', 'subdriver of the disk device: raw, qcow2, ...')
      .option('--type <type>', 'target device type: disk, cdrom, floppy or lun')
      .option('--mode <mode>', 'mode of the device: readonly or shareable')
      .option('--sourcetype <type>', 'type of the source: file or block (looked up when absent)')
      .option('--cache <cache>', 'cache mode of the disk device'),
  ).action(
    async (
      domain: string,
      source: string,
      target: string,
      o: ScopeFlags & { targetbus?: string; driver?: string; subdriver?: string; type?: string; mode?: string; sourcetype?: string; cache?: string },
    ) => {
      checkScope(h, o, true);
      if (o.mode && o.mode !== 'readonly' && o.mode !== 'shareable') throw h.usageError(`No support for ${o.mode} in command 'attach-disk'`);
      if (o.sourcetype && o.sourcetype !== 'file' && o.sourcetype !== 'block') throw h.usageError(`Unknown source type: '${o.sourcetype}'`);
      // virsh stats the source where it runs to tell a block device from a file.
      const type = o.sourcetype ?? (await stat(source).then((s) => (s.isBlockDevice() ? 'block' : 'file'), () => 'file'));
      const driver = { ...(o.driver ? { name: o.driver } : {}), ...(o.subdriver ? { type: o.subdriver } : {}), ...(o.cache ? { cache: o.cache } : {}) };
      const disk = {
        type,
        device: o.type ?? 'disk',
        ...(Object.keys(driver).length ? { driver } : {}),
        source: type === 'block' ? { dev: source } : { file: source },
        target: { dev: target, ...(o.targetbus ? { bus: o.targetbus } : {}) },
        ...(o.mode === 'readonly' ? { readonly: true } : {}),
        ...(o.mode === 'shareable' ? { shareable: true } : {}),
      };
      const view = await failing('Failed to attach disk', domain, () => h.withClient(async (c) => settled(c, await c.attachDisk(domain, disk, scopeOf(o, false)))));
      h.out().result('Disk attached successfully', view);
    },
  );

  withScope(
    program
      .command('detach-disk')
      .description('detach a disk by its target or source path (live unless --config)')
      .argument('<domain>', 'name or uuid')
      .argument('<target>', 'target of the disk (vdb) or its source path'),
  ).action(async (domain: string, target: string, o: ScopeFlags) => {
    checkScope(h, o, true);
    const view = await failing('Failed to detach disk', domain, () =>
      h.withClient(async (c) => settled(c, await virshLookup(() => c.detachDisk(domain, target, scopeOf(o, false))))),
    );
    h.out().result('Disk detached successfully', view);
  });

  const deviceVerb = (verb: 'attach-device' | 'detach-device' | 'update-device', what: string, done: string, current: boolean) =>
    withScope(
      program
        .command(verb)
        .description(`${what} a device from an XML file (<disk> or <interface>)`)
        .argument('<domain>', 'name or uuid')
        .argument('<file>', 'XML file holding one device element'),
    ).action(async (domain: string, file: string, o: ScopeFlags) => {
      checkScope(h, o, true);
      const xml = await readDeviceFile(file);
      const view = await failing(`Failed to ${what} device from ${file}`, domain, () => h.withClient(async (c) => settled(c, await c.deviceXml(verb, domain, xml, scopeOf(o, current)))));
      h.out().result(done, view);
    });
  deviceVerb('attach-device', 'attach', 'Device attached successfully', false);
  deviceVerb('detach-device', 'detach', 'Device detached successfully', false);
  deviceVerb('update-device', 'update', 'Device updated successfully', true);

  program
    .command('change-media')
    .description('eject, insert or update the media of a cdrom or floppy')
    .argument('<domain>', 'name or uuid')
    .argument('<path>', 'target of the cdrom or floppy (hdc) or its current media path')
    .argument('[source]', 'the new media')
    .option('--eject', 'eject the media')
    .option('--insert', 'insert the media')
    .option('--update', 'change the media (ejects when no source is given)')
    .option('--force', 'force the media change')
    .option('--live', 'change the running domain')
    .option('--config', 'change the persistent definition')
    .option('--current', 'the running domain when it runs, the persistent definition otherwise')
    .action(async (domain: string, path: string, source: string | undefined, o: ScopeFlags & { eject?: boolean; insert?: boolean; update?: boolean }) => {
      if (o.eject && o.insert) throw h.usageError('Options --eject and --insert are mutually exclusive');
      if (o.eject && o.update) throw h.usageError('Options --eject and --update are mutually exclusive');
      if (o.insert && o.update) throw h.usageError('Options --insert and --update are mutually exclusive');
      checkScope(h, o, false);
      const action = o.eject ? 'eject' : o.insert ? 'insert' : 'update';
      const view = await failing(`Failed to complete action ${action} on media`, domain, () =>
        h.withClient(async (c) => settled(c, await virshLookup(() => c.changeMedia(domain, path, action, source, scopeOf(o, true))))),
      );
      const done = { eject: 'Successfully ejected media.', insert: 'Successfully inserted media.', update: 'Successfully updated media.' }[action];
      h.out().result(done, view);
    });
};
