import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import type { DomainView } from '../contracts/views.ts';
import { snapshotsOf, type SnapshotRecord } from '../contracts/domain/snapshots.ts';
import { virtError } from '../contracts/errors.ts';
import { failing, VerbFailed } from './errors.ts';
import type { CliHelpers } from './network-commands.ts';
import { hostOp } from './host-op.ts';
import { filterSnapshots, snapshotInfo, snapshotTable, snapshotTree } from './snapshot-format.ts';

/**
 * virsh's snapshot verbs. The ones that change anything go through the domain's log and wait for its
 * host's outcome; the ones that read show the snapshot tree the log recorded.
 */

/** virsh --diskspec: disk[,snapshot=type][,driver=type][,stype=type][,file=name], ',,' for a comma in a name. */
export const parseDiskspec = (spec: string): { name: string; snapshot?: 'external' | 'internal' | 'no'; file?: string } => {
  const parts = spec.replace(/,,/g, '\u0000').split(',').map((p) => p.replace(/\u0000/g, ','));
  const name = parts[0] ?? '';
  if (!name) throw new VerbFailed(null, virtError('invalid-arg', `unable to parse diskspec: ${spec}`), `unable to parse diskspec: ${spec}`);
  const out: { name: string; snapshot?: 'external' | 'internal' | 'no'; file?: string } = { name };
  for (const p of parts.slice(1)) {
    const [k, ...v] = p.split('=');
    const val = v.join('=');
    if (k === 'snapshot' && (val === 'external' || val === 'internal' || val === 'no')) out.snapshot = val;
    else if (k === 'file' && val) out.file = val;
    else if ((k === 'driver' && val === 'qcow2') || (k === 'stype' && val === 'file')) continue;
    else throw new VerbFailed(null, virtError('invalid-arg', `unable to parse diskspec: ${spec}`), `unable to parse diskspec: ${spec}`);
  }
  if (out.file && !out.snapshot) out.snapshot = 'external';
  return out;
};

const noSnapshot = (name: string) => virtError('no-domain-snapshot', `no domain snapshot with matching name '${name}'`);

/** A named snapshot, or with --current (or, where virsh allows it, neither) the current one. */
const pick = (v: DomainView, name: string | undefined, current: boolean, orCurrent: boolean): SnapshotRecord => {
  if (name !== undefined && !current) {
    const found = snapshotsOf(v).find((x) => x.name === name);
    if (!found) throw noSnapshot(name);
    return found;
  }
  if (!current && !orCurrent) throw new VerbFailed(null, virtError('invalid-arg', '--snapshotname or --current is required'), '--snapshotname or --current is required');
  const cur = v.currentSnapshot ? snapshotsOf(v).find((x) => x.name === v.currentSnapshot) : undefined;
  if (!cur) throw new VerbFailed(null, virtError('no-domain-snapshot', 'the domain does not have a current snapshot'), `domain '${v.name}' has no current snapshot`);
  return cur;
};

export const registerSnapshotCommands = (program: Command, h: CliHelpers): void => {
  program
    .command('snapshot-create-as')
    .description('take a snapshot of a domain: its disks, and its memory when it runs')
    .argument('<domain>', 'name or uuid')
    .argument('[name]', 'name of the snapshot (default: the creation time)')
    .argument('[description]', 'description of the snapshot')
    .option('--name <name>', 'name of the snapshot')
    .option('--description <text>', 'description of the snapshot')
    .option('--disk-only', 'an external snapshot of the disks alone: each disk goes on a new qcow2 overlay backed by its image')
    .option('--diskspec <spec>', 'disk[,snapshot=external|no][,file=overlay]: which disks get an overlay, in which file (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--timeout <seconds>', 'deadline for the host to take it', '300')
    .action(async (domain: string, pName: string | undefined, pDesc: string | undefined, o: { name?: string; description?: string; diskOnly?: boolean; diskspec: string[]; timeout: string }) => {
      const name = o.name ?? pName;
      const description = o.description ?? pDesc;
      const disks = o.diskspec.map(parseDiskspec);
      const r = await hostOp(h, domain, null, Number(o.timeout), (c, timeoutSeconds) =>
        c.snapshotCreate(
          domain,
          { ...(name !== undefined ? { name } : {}), ...(description !== undefined ? { description } : {}), ...(o.diskOnly ? { diskOnly: true } : {}), ...(disks.length ? { disks } : {}) },
          { timeoutSeconds },
        ),
      );
      const taken = r.view.currentSnapshot ?? name;
      h.out().result(`Domain snapshot ${taken} created`, { ...r, snapshot: taken });
    });

  program
    .command('snapshot-create')
    .description('take a snapshot of a domain from a <domainsnapshot> document')
    .argument('<domain>', 'name or uuid')
    .argument('[xmlfile]', 'the <domainsnapshot> document (default: a snapshot named by its creation time)')
    .option('--disk-only', 'an external snapshot of the disks alone: each disk goes on a new qcow2 overlay backed by its image')
    .option('--timeout <seconds>', 'deadline for the host to take it', '300')
    .action(async (domain: string, file: string | undefined, o: { diskOnly?: boolean; timeout: string }) => {
      const xml = file !== undefined ? await readFile(file, 'utf8') : undefined;
      const r = await hostOp(h, domain, null, Number(o.timeout), (c, timeoutSeconds) =>
        c.snapshotCreate(domain, { ...(xml !== undefined ? { xml } : {}), ...(o.diskOnly ? { diskOnly: true } : {}) }, { timeoutSeconds }),
      );
      const taken = r.view.currentSnapshot;
      h.out().result(file !== undefined ? `Domain snapshot ${taken} created from '${file}'` : `Domain snapshot ${taken} created`, { ...r, snapshot: taken });
    });

  program
    .command('snapshot-list')
    .description("list a domain's snapshots")
    .argument('<domain>', 'name or uuid')
    .option('--parent', "add a column with each snapshot's parent")
    .option('--roots', 'only snapshots without a parent')
    .option('--leaves', 'only snapshots without children')
    .option('--current', "only the current snapshot's children")
    .option('--name', 'only the names')
    .option('--tree', 'the snapshots as a tree')
    .action(async (domain: string, o: { parent?: boolean; roots?: boolean; leaves?: boolean; current?: boolean; name?: boolean; tree?: boolean }) => {
      if (o.tree && o.name) throw new VerbFailed(null, virtError('invalid-arg', 'Options --tree and --name are mutually exclusive'), 'Options --tree and --name are mutually exclusive');
      const v = await failing(null, domain, () => h.withClient((c) => c.get(domain)));
      if (o.current && !v.currentSnapshot) throw new VerbFailed(null, virtError('no-domain-snapshot', 'the domain does not have a current snapshot'));
      const all = snapshotsOf(v);
      const list = filterSnapshots(all, { roots: o.roots, leaves: o.leaves, ...(o.current ? { from: v.currentSnapshot } : {}) });
      const human = o.tree ? snapshotTree(list) : o.name ? list.map((x) => x.name).join('\n') : snapshotTable(list, o.parent ?? false);
      h.out().result(human, { domainId: v.id, currentSnapshot: v.currentSnapshot ?? null, snapshots: list });
    });

  program
    .command('snapshot-info')
    .description('facts about a snapshot')
    .argument('<domain>', 'name or uuid')
    .argument('[snapshotname]', 'the snapshot')
    .option('--current', 'the current snapshot')
    .action(async (domain: string, name: string | undefined, o: { current?: boolean }) => {
      const v = await failing(null, domain, () => h.withClient((c) => c.get(domain)));
      const x = await failing(null, null, async () => pick(v, name, o.current ?? false, false));
      const current = v.currentSnapshot === x.name;
      h.out().result(snapshotInfo(x, v.name, current, snapshotsOf(v)), { domainId: v.id, current, snapshot: x });
    });

  program
    .command('snapshot-dumpxml')
    .description('a snapshot as libvirt <domainsnapshot> XML')
    .argument('<domain>', 'name or uuid')
    .argument('<snapshotname>', 'the snapshot')
    .action(async (domain: string, name: string) => {
      const v = await failing(null, domain, () => h.withClient((c) => c.get(domain)));
      const x = await failing(null, null, async () => pick(v, name, false, false));
      const { formatSnapshotXml } = await import('../contracts/xml/snapshot.ts');
      const xml = formatSnapshotXml(x);
      h.out().result(xml.trimEnd(), { domainId: v.id, xml });
    });

  program
    .command('snapshot-current')
    .description("the domain's current snapshot, as XML or (--name) its name; given a snapshot, make it current")
    .argument('<domain>', 'name or uuid')
    .argument('[snapshotname]', 'the snapshot to make current')
    .option('--name', 'only its name')
    .action(async (domain: string, name: string | undefined, o: { name?: boolean }) => {
      if (name !== undefined) {
        if (o.name) throw new VerbFailed(null, virtError('invalid-arg', 'Options --name and --snapshotname are mutually exclusive'), 'Options --name and --snapshotname are mutually exclusive');
        const r = await failing(null, domain, () => h.withClient((c) => c.snapshotSetCurrent(domain, name)));
        h.out().result(`Snapshot ${name} set as current`, r);
        return;
      }
      const v = await failing(null, domain, () => h.withClient((c) => c.get(domain)));
      const x = await failing(null, null, async () => pick(v, undefined, true, true));
      const { formatSnapshotXml } = await import('../contracts/xml/snapshot.ts');
      h.out().result(o.name ? x.name : formatSnapshotXml(x).trimEnd(), { domainId: v.id, snapshot: x });
    });

  program
    .command('snapshot-parent')
    .description("the name of a snapshot's parent")
    .argument('<domain>', 'name or uuid')
    .argument('[snapshotname]', 'the snapshot')
    .option('--current', 'the current snapshot')
    .action(async (domain: string, name: string | undefined, o: { current?: boolean }) => {
      const v = await failing(null, domain, () => h.withClient((c) => c.get(domain)));
      const x = await failing(null, null, async () => pick(v, name, o.current ?? false, false));
      if (!x.parent) throw new VerbFailed(null, virtError('invalid-arg', `snapshot '${x.name}' has no parent`), `snapshot '${x.name}' has no parent`);
      h.out().result(x.parent, { domainId: v.id, parent: x.parent });
    });

  program
    .command('snapshot-revert')
    .description('bring a domain back to a snapshot: its disks, and its memory when the snapshot has it')
    .argument('<domain>', 'name or uuid')
    .argument('[snapshotname]', 'the snapshot')
    .option('--current', 'the current snapshot')
    .option('--running', 'leave the domain running')
    .option('--paused', 'leave the domain paused')
    .option('--timeout <seconds>', 'deadline for the host to revert it', '300')
    .action(async (domain: string, name: string | undefined, o: { current?: boolean; running?: boolean; paused?: boolean; timeout: string }) => {
      if (name === undefined && !o.current) throw new VerbFailed(null, virtError('invalid-arg', '--snapshotname or --current is required'), '--snapshotname or --current is required');
      const shown = name ?? 'current';
      const r = await hostOp(h, domain, `Failed to revert snapshot ${shown}`, Number(o.timeout), (c, timeoutSeconds) =>
        c.snapshotRevert(domain, { ...(name !== undefined && !o.current ? { name } : {}), ...(o.running ? { running: true } : {}), ...(o.paused ? { paused: true } : {}) }, { timeoutSeconds }),
      );
      h.out().result(`Domain snapshot ${name ?? r.view.currentSnapshot} reverted`, r);
    });

  program
    .command('snapshot-delete')
    .description('delete a snapshot (its data on the host and its metadata)')
    .argument('<domain>', 'name or uuid')
    .argument('[snapshotname]', 'the snapshot')
    .option('--current', 'the current snapshot')
    .option('--children', 'its descendants too')
    .option('--children-only', 'only its descendants')
    .option('--metadata', 'only the metadata: the data stays on the host')
    .option('--timeout <seconds>', 'deadline for the host to delete it', '120')
    .action(async (domain: string, name: string | undefined, o: { current?: boolean; children?: boolean; childrenOnly?: boolean; metadata?: boolean; timeout: string }) => {
      if (name === undefined && !o.current) throw new VerbFailed(null, virtError('invalid-arg', '--snapshotname or --current is required'), '--snapshotname or --current is required');
      let shown = name;
      const r = await failing(null, domain, () =>
        h.withClient(async (c) => {
          // virsh looks the snapshot up first: a missing one is its one line, not a failed delete.
          const v = await c.get(domain);
          const x = pick(v, name, o.current ?? false, false);
          shown = x.name;
          const timeoutSeconds = Number(o.timeout);
          const accepted = await failing(`Failed to delete snapshot ${x.name}`, null, () =>
            c.snapshotDelete(domain, { name: x.name, ...(o.children ? { children: true } : {}), ...(o.childrenOnly ? { childrenOnly: true } : {}), ...(o.metadata ? { metadata: true } : {}) }, { timeoutSeconds }),
          );
          return { accepted, view: await failing(`Failed to delete snapshot ${x.name}`, null, () => c.outcome(accepted, timeoutSeconds * 1000)) };
        }),
      );
      h.out().result(o.childrenOnly ? `Domain snapshot ${shown} children deleted` : `Domain snapshot ${shown} deleted`, r);
    });
};
