import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { isActive } from '../contracts/domain/state.ts';
import type { LifecycleOp } from '../contracts/domain/events.ts';
import type { CommandAccepted, DomainView, VirtplaneClient } from '../client/index.ts';
import type { DomainDefinitionInput } from '../contracts/domain/definition.ts';
import { domainList, parsePageSize, type ListColumns } from './format.ts';
import { failing, VerbFailed } from './errors.ts';
import { MANAGED_SAVE_BLOCKS_UNDEFINE } from '../contracts/domain/autostart-save.ts';
import type { CliHelpers } from './network-commands.ts';

/** Messages virsh prints on success, so scripts and people see what they expect. */
const DONE: Record<LifecycleOp, (name: string) => string> = {
  start: (n) => `Domain '${n}' started`,
  shutdown: (n) => `Domain '${n}' is being shutdown`,
  destroy: (n) => `Domain '${n}' destroyed`,
  suspend: (n) => `Domain '${n}' suspended`,
  resume: (n) => `Domain '${n}' resumed`,
  reboot: (n) => `Domain '${n}' is being rebooted`,
};

/**
 * virsh returns once libvirt has done these. shutdown and reboot only ask the guest, unless --wait,
 * except on the test driver, which carries them out before answering: a test domain's shutdown or
 * reboot is over when the command returns, so the next command never finds it in progress.
 */
const WAITS_BY_DEFAULT: Record<LifecycleOp, boolean> = {
  start: true,
  shutdown: false,
  destroy: true,
  suspend: true,
  resume: true,
  reboot: false,
};

/** Operations whose success may remove a transient domain: its removal is their outcome. */
const ENDS_TRANSIENT: ReadonlySet<LifecycleOp> = new Set(['shutdown', 'destroy']);

const STATE_FILTERS = ['running', 'paused', 'shutoff', 'other'] as const;
type StateFilter = (typeof STATE_FILTERS)[number];
const matchesState = (v: DomainView, f: StateFilter): boolean => {
  const s = v.observed.state;
  if (f === 'running') return s === 'running';
  if (f === 'paused') return s === 'paused';
  if (f === 'shutoff') return s === 'shutoff';
  return !['running', 'paused', 'shutoff'].includes(s);
};

interface ListOptions {
  all?: boolean;
  inactive?: boolean;
  name?: boolean;
  uuid?: boolean;
  table?: boolean;
  host?: boolean | string;
  onHost?: string;
  nameContains?: string;
  stateRunning?: boolean;
  statePaused?: boolean;
  stateShutoff?: boolean;
  stateOther?: boolean;
  persistent?: boolean;
  transient?: boolean;
  autostart?: boolean;
  withManagedSave?: boolean;
  withoutManagedSave?: boolean;
  managedSave?: boolean;
  pageSize?: number;
}

/** virsh's domain verbs that change domains: lifecycle, definitions, devices, names and descriptions. */
export const registerDomainCommands = (program: Command, h: CliHelpers): void => {
  program
    .command('list')
    .description('list domains as virsh does (active ones unless --all or --inactive)')
    .option('--all', 'active and inactive domains')
    .option('--inactive', 'inactive domains only')
    .option('--name', 'print names only, one a line')
    .option('--uuid', 'print uuids only, one a line')
    .option('--table', 'the table (the default layout)')
    .option('--state-running', 'running domains')
    .option('--state-paused', 'paused domains')
    .option('--state-shutoff', 'shut off domains')
    .option('--state-other', 'domains in any other state')
    .option('--persistent', 'persistent domains')
    .option('--transient', 'transient domains')
    .option('--autostart', 'domains marked autostart')
    .option('--no-autostart', 'domains not marked autostart')
    .option('--with-managed-save', 'domains with a saved state')
    .option('--without-managed-save', 'domains without a saved state')
    .option('--managed-save', "show an inactive domain's state as 'saved' when it has a saved state")
    .option('--host [hostId]', "add virtplane's columns (host, uuid, operation in progress); with an id, only that host's domains")
    .option('--name-contains <text>', 'only domains whose name contains this')
    .option('--page-size <n>', 'domains per request (the list is read page by page to the end)', parsePageSize)
    .action(async (o: ListOptions) => {
      const states = STATE_FILTERS.filter((f) => o[`state${f.charAt(0).toUpperCase()}${f.slice(1)}` as keyof ListOptions]);
      const hostId = typeof o.host === 'string' ? o.host : undefined;
      const all = Boolean(o.all || o.inactive || states.length > 0);
      const fetched = await h.withClient((c) =>
        c.list({
          all,
          ...(hostId ? { host: hostId } : {}),
          ...(o.nameContains ? { name: o.nameContains } : {}),
          ...(o.pageSize ? { pageSize: o.pageSize } : {}),
        }),
      );
      const active = (v: DomainView) => isActive(v.observed.state) || v.hostLost === true;
      const views = fetched
        .filter((v) => !o.inactive || o.all || !active(v))
        .filter((v) => states.length === 0 || states.some((f) => matchesState(v, f)))
        .filter((v) => (o.persistent && !o.transient ? v.persistent : o.transient && !o.persistent ? !v.persistent : true))
        // Commander reads --no-autostart as autostart=false.
        .filter((v) => (o.autostart === undefined ? true : o.autostart ? v.autostart === true : !v.autostart))
        .filter((v) => (o.withManagedSave && !o.withoutManagedSave ? v.managedSave === true : o.withoutManagedSave && !o.withManagedSave ? !v.managedSave : true))
        // virsh lists running domains by id, then inactive ones by name.
        .sort((a, b) => (a.domid ?? Infinity) - (b.domid ?? Infinity) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      let human: string;
      if (o.name || o.uuid) {
        human = views.map((v) => (o.name && o.uuid ? `${v.id}  ${v.name}` : o.name ? v.name : v.id)).join('\n');
      } else {
        const columns: ListColumns = o.host ? 'host' : 'virsh';
        human = domainList(views, columns, Boolean(o.managedSave));
      }
      h.out().result(human, views);
    });

  program
    .command('define')
    .description('define a domain from libvirt XML or a JSON file, or from --name/--memory/--vcpus')
    .argument('[file]', 'libvirt domain XML or a JSON definition')
    .option('--name <name>', 'domain name')
    .option('--memory <MiB>', 'memory in MiB')
    .option('--vcpus <n>', 'virtual CPUs', '1')
    .option('--type <type>', 'domain type (test, kvm, qemu)', 'test')
    .option('--uuid <uuid>', 'domain uuid (generated when absent)')
    .option('--host <hostId>', 'place the domain on this host')
    .option('--ha', 'restart the domain on another host when its host is lost (kept in <metadata>)')
    .action(async (file: string | undefined, o: { name?: string; memory?: string; vcpus: string; type: string; uuid?: string; host?: string; ha?: boolean }) => {
      const host = o.host ? { hostId: o.host } : {};
      let input: Parameters<VirtplaneClient['define']>[0];
      if (file) {
        if (o.ha) throw h.usageError('--ha goes with --name; in a file, put it in <metadata> (see `virtplane define --help`)');
        const text = await readFile(file, 'utf8');
        // The command service checks a JSON definition against the schema and names each bad field.
        input = text.trimStart().startsWith('<') ? { xml: text, ...host } : { definition: parseJson(h, text, file) as DomainDefinitionInput, ...host };
      } else {
        if (!o.name || !o.memory) throw h.usageError('define needs a FILE, or --name and --memory');
        input = {
          definition: {
            name: o.name,
            type: o.type,
            memoryKiB: Number(o.memory) * 1024,
            vcpus: Number(o.vcpus),
            ...(o.uuid ? { uuid: o.uuid } : {}),
            ...(o.ha ? { metadata: (await import('../contracts/domain/ha.ts')).withRestartOnHostLoss(undefined) } : {}),
          },
          ...host,
        };
      }
      const r = await failing(file ? `Failed to define domain from ${file}` : `Failed to define domain '${o.name}'`, null, () => h.withClient((c) => c.define(input)));
      h.out().result(`Domain '${r.name}' defined${file ? ` from ${file}` : ''}`, r);
    });

  program
    .command('create')
    .description('create and start a domain from libvirt XML or a JSON file: transient unless it is already defined')
    .argument('<file>', 'libvirt domain XML or a JSON definition')
    .option('--paused', 'leave the guest paused after start')
    .option('--host <hostId>', 'place the domain on this host')
    .option('--timeout <seconds>', 'deadline for the host to start it', '120')
    .action(async (file: string, o: { paused?: boolean; host?: string; timeout: string }) => {
      const text = await readFile(file, 'utf8');
      const input = {
        ...(text.trimStart().startsWith('<') ? { xml: text } : { definition: parseJson(h, text, file) as DomainDefinitionInput }),
        ...(o.host ? { hostId: o.host } : {}),
        ...(o.paused ? { paused: true } : {}),
      };
      const timeoutMs = Number(o.timeout) * 1000;
      const r = await failing(`Failed to create domain from ${file}`, null, () =>
        h.withClient(async (c) => {
          const accepted = await c.create(input, { timeoutSeconds: Number(o.timeout) });
          return { accepted, view: await (await import('./progress.ts')).withProgress(`create ${accepted.name}`, timeoutMs, !h.json(), () => c.outcome(accepted, timeoutMs)) };
        }),
      );
      h.out().result(`Domain '${r.accepted.name}' created from ${file}`, r);
    });

  program
    .command('undefine')
    .description('undefine a domain (a running one keeps running as transient)')
    .argument('<domain>', 'name or uuid')
    .option('--managed-save', "remove the domain's saved state too")
    .option('--snapshots-metadata', "remove the domain's snapshot metadata too")
    .action(async (domain: string, o: { managedSave?: boolean; snapshotsMetadata?: boolean }) => {
      const r = await failing(`Failed to undefine domain '${domain}'`, domain, () =>
        h.withClient((c) =>
          c.undefine(domain, { ...(o.managedSave ? { managedSave: true } : {}), ...(o.snapshotsMetadata ? { snapshotsMetadata: true } : {}) }).catch(async (e: unknown) => {
            // virsh checks for a saved state itself and says only this, unless the domain has
            // snapshots: then it leaves the check to libvirt, whose refusal it prints as any other.
            if ((e as Error).message === MANAGED_SAVE_BLOCKS_UNDEFINE && !(await c.get(domain).catch(() => null))?.snapshots?.length) {
              throw new VerbFailed(null, e, MANAGED_SAVE_BLOCKS_UNDEFINE);
            }
            throw e;
          }),
        ),
      );
      h.out().result(`Domain '${r.name}' has been undefined`, r);
    });

  for (const op of ['start', 'shutdown', 'destroy', 'suspend', 'resume', 'reboot'] as const) {
    const cmd = program
      .command(op)
      .description(`${op} a domain`)
      .argument('<domain>', 'name or uuid')
      .option('--wait', 'wait until the host has finished')
      .option('--no-wait', 'return once the command is recorded')
      .option('--timeout <seconds>', 'deadline for the host to finish; the operation is recorded failed after it', '120');
    if (op === 'start') cmd.option('--paused', 'leave the guest paused after start');
    if (op === 'destroy') cmd.option('--force', "the domain's host is lost and known to be off: record the domain shut off");
    cmd.action(async (domain: string, o: { wait?: boolean; paused?: boolean; timeout: string; force?: boolean }) => {
      const timeoutSeconds = Number(o.timeout);
      const result = await failing(`Failed to ${op} domain '${domain}'`, domain, () =>
        h.withClient(async (c) => {
          const opts = { timeoutSeconds };
          const accepted: CommandAccepted = await alreadyActive(op, domain, () =>
            o.force ? c.destroy(domain, { ...opts, force: true }) : op === 'start' ? c.start(domain, { ...opts, paused: Boolean(o.paused) }) : c.operation(op, domain, opts),
          );
          if (o.force || o.wait === false) return { accepted, view: null };
          if (o.wait === undefined && !WAITS_BY_DEFAULT[op] && !(await onTestDriver(c, accepted))) return { accepted, view: null };
          const view = await (await import('./progress.ts')).withProgress(`${op} ${accepted.name}`, timeoutSeconds * 1000, !h.json(), () =>
            ENDS_TRANSIENT.has(op) ? c.outcomeOrGone(accepted, timeoutSeconds * 1000) : c.outcome(accepted, timeoutSeconds * 1000),
          );
          return { accepted, view };
        }),
      );
      const message = op === 'start' && o.paused ? `Domain '${result.accepted.name}' started (paused)` : DONE[op](result.accepted.name);
      h.out().result(message, result);
    });
  }

  const scope = (o: { live?: boolean; config?: boolean; persistent?: boolean }) => ({
    ...(o.live || o.persistent ? { live: true } : {}),
    ...(o.config || o.persistent ? { config: true } : {}),
  });
  program
    .command('attach-interface')
    .description('plug a network interface into a domain (live when running, config otherwise)')
    .argument('<domain>', 'name or uuid')
    .argument('<type>', 'network, bridge, ethernet, direct or user')
    .argument('[source]', 'network name, bridge or host device')
    .option('--model <model>', 'device model, e.g. virtio')
    .option('--mac <mac>', 'MAC address (52:54:00:xx:xx:xx generated when absent)')
    .option('--target <dev>', 'host device name (or a %d template)')
    .option('--live', 'change the running domain')
    .option('--config', 'change the persistent definition')
    .option('--persistent', 'both --live and --config')
    .action(async (domain: string, type: string, source: string | undefined, o: { model?: string; mac?: string; target?: string; live?: boolean; config?: boolean; persistent?: boolean }) => {
      const key = type === 'network' ? 'network' : type === 'bridge' ? 'bridge' : 'dev';
      const iface = {
        type,
        ...(source ? { source: { [key]: source } } : {}),
        ...(o.model ? { model: o.model } : {}),
        ...(o.mac ? { mac: o.mac } : {}),
        ...(o.target ? { targetDev: o.target } : {}),
      };
      const view = await failing('Failed to attach interface', domain, () => h.withClient(async (c) => c.outcome(await c.attachInterface(domain, iface, scope(o)), 120_000)));
      h.out().result('Interface attached successfully', view);
    });

  program
    .command('detach-interface')
    .description('unplug a network interface from a domain, by MAC address')
    .argument('<domain>', 'name or uuid')
    .argument('<type>', 'interface type (as virsh takes it)')
    .requiredOption('--mac <mac>', 'MAC address of the interface')
    .option('--live', 'change the running domain')
    .option('--config', 'change the persistent definition')
    .option('--persistent', 'both --live and --config')
    .action(async (domain: string, _type: string, o: { mac: string; live?: boolean; config?: boolean; persistent?: boolean }) => {
      const view = await failing('Failed to detach interface', domain, () => h.withClient(async (c) => c.outcome(await c.detachInterface(domain, o.mac, scope(o)), 120_000)));
      h.out().result('Interface detached successfully', view);
    });

  program
    .command('domrename')
    .description('rename a shut off persistent domain')
    .argument('<domain>', 'name or uuid')
    .argument('<new-name>', 'its new name')
    .action(async (domain: string, newName: string) => {
      const r = await failing(null, domain, () => h.withClient((c) => c.rename(domain, newName)));
      h.out().result('Domain successfully renamed', r);
    });

  program
    .command('desc')
    .description("show or set a domain's description (or title, with --title)")
    .argument('<domain>', 'name or uuid')
    .option('--title', 'the title instead of the description')
    .option('--new-desc <text>', "the new text ('' removes it)")
    .option('--live', 'the running domain')
    .option('--config', 'the persistent definition')
    .option('--current', 'the running domain when it runs, else the persistent definition')
    .action(async (domain: string, o: { title?: boolean; newDesc?: string; live?: boolean; config?: boolean; current?: boolean }) => {
      const field = o.title ? 'title' : 'description';
      const what = o.title ? 'title' : 'description';
      if (o.current && (o.live || o.config)) throw h.usageError('--current goes with neither --live nor --config');
      if (o.newDesc !== undefined) {
        const r = await failing(`Failed to set new domain ${what}`, domain, () =>
          h.withClient((c) => c.setMetadata(domain, field, o.newDesc!, { live: Boolean(o.live), config: Boolean(o.config) })),
        );
        h.out().result(`Domain ${what} updated successfully`, r);
        return;
      }
      const v = await failing(null, domain, () => h.withClient((c) => c.get(domain)));
      const def = o.config ? (v.nextDefinition ?? v.definition) : v.definition;
      const text = def[field];
      h.out().result(text ?? `No ${what} for domain: ${v.name}`, { [field]: text ?? null });
    });

};


/** virsh start checks the domain before asking libvirt and says only this when it runs already. */
const alreadyActive = async <T>(op: LifecycleOp, domain: string, fn: () => Promise<T>): Promise<T> => {
  try {
    return await fn();
  } catch (e) {
    const err = e as { code?: string; message?: string };
    if (op === 'start' && err.code === 'operation-invalid' && err.message === 'domain is already running') {
      throw new VerbFailed(null, e, 'Domain is already active');
    }
    throw e;
  }
};

/** Is the domain on the test driver, which finishes shutdown and reboot before it answers? */
const onTestDriver = async (c: VirtplaneClient, accepted: CommandAccepted): Promise<boolean> => {
  const v = await c.get(accepted.domainId, { minVersion: accepted.version }).catch(() => null);
  return v?.definition.type === 'test';
};


const parseJson = (h: CliHelpers, text: string, file: string): Record<string, unknown> => {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw h.usageError(`${file}: malformed JSON: ${(e as Error).message}`);
  }
};
