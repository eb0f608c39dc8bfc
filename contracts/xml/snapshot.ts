import { parseDocument } from './document.ts';
import { xmlError, quote } from './errors.ts';
import { childElements, childrenNamed, firstChild, textOf, type XElement } from './tree.ts';
import { formatDomainXml } from './domain.ts';
import { SnapshotName, type SnapshotRecord } from '../domain/snapshots.ts';
import type { SnapshotDiskSpec } from '../domain/external-snapshots.ts';

/**
 * libvirt's <domainsnapshot> documents: what virsh snapshot-create reads (a name, a description and
 * which disks get an external overlay; the rest is libvirt's to decide unless redefining, which is
 * not offered) and what snapshot-dumpxml
 * prints. The document goes through the hardened parser, so a hostile one costs one linear scan and
 * is refused as an xml-error.
 */

/** The elements libvirt's virDomainSnapshotDefParse knows; any other is refused rather than ignored. */
const KNOWN = new Set(['name', 'description', 'state', 'creationTime', 'parent', 'memory', 'disks', 'domain', 'active', 'inactive', 'cookie']);

export interface SnapshotDocument {
  name?: string;
  description?: string;
  disks?: SnapshotDiskSpec[];
}

const DISK_SNAPSHOT = new Set(['external', 'internal', 'no']);

/** virDomainSnapshotDiskDefParseXML: a disk by its target, how it is snapshotted, and the overlay's file. */
const parseDisks = (el: XElement): SnapshotDiskSpec[] => {
  const out: SnapshotDiskSpec[] = [];
  for (const d of childrenNamed(el, 'disk')) {
    if (out.length >= 64) throw xmlError('too many <disk> elements in <disks>');
    const name = d.attrs.name;
    if (!name || name.length > 64) throw xmlError('missing name from disk snapshot element');
    const snapshot = d.attrs.snapshot;
    if (snapshot !== undefined && !DISK_SNAPSHOT.has(snapshot)) throw xmlError(`unknown disk snapshot setting ${quote(snapshot, 40)}`);
    const file = firstChild(d, 'source')?.attrs.file;
    if (file !== undefined && (file === '' || file.length > 4096)) throw xmlError(`invalid source file for disk ${quote(name, 64)}`);
    // A <source> alone means external, as libvirt reads it.
    const kind = (snapshot ?? (file !== undefined ? 'external' : undefined)) as SnapshotDiskSpec['snapshot'];
    out.push({ name, ...(kind ? { snapshot: kind } : {}), ...(file !== undefined ? { file } : {}) });
  }
  return out;
};

export const parseSnapshotXml = (text: unknown): SnapshotDocument => {
  const root = parseDocument(text);
  if (root.name !== 'domainsnapshot') throw xmlError(`expecting root element of <domainsnapshot>, not <${quote(root.name, 40).slice(1, -1)}>`);
  for (const el of childElements(root)) {
    if (!KNOWN.has(el.name)) throw xmlError(`unsupported element <${quote(el.name, 40).slice(1, -1)}> in <domainsnapshot>`);
  }
  const nameEl = firstChild(root, 'name');
  const descEl = firstChild(root, 'description');
  const out: SnapshotDocument = {};
  if (nameEl) {
    const parsed = SnapshotName.safeParse(textOf(nameEl).trim());
    if (!parsed.success) throw xmlError(`invalid snapshot name ${quote(textOf(nameEl))}: ${parsed.error.issues[0]?.message ?? 'not a name'}`);
    out.name = parsed.data;
  }
  if (descEl) {
    const d = textOf(descEl);
    if (d.length > 65536) throw xmlError('snapshot description is longer than 65536 characters');
    if (d !== '') out.description = d;
  }
  const disksEl = firstChild(root, 'disks');
  if (disksEl) out.disks = parseDisks(disksEl);
  return out;
};

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** virsh snapshot-dumpxml, as libvirt's virDomainSnapshotDefFormat lays it out for an internal snapshot. */
export const formatSnapshotXml = (snap: SnapshotRecord): string => {
  const external = snap.disks !== undefined;
  const internal = !external && snap.state !== 'shutoff';
  const lines = ['<domainsnapshot>', `  <name>${esc(snap.name)}</name>`];
  if (snap.description) lines.push(`  <description>${esc(snap.description)}</description>`);
  lines.push(`  <state>${snap.state}</state>`);
  if (snap.parent) lines.push('  <parent>', `    <name>${esc(snap.parent)}</name>`, '  </parent>');
  lines.push(`  <creationTime>${snap.creationTime}</creationTime>`);
  lines.push(`  <memory snapshot='${internal ? 'internal' : 'no'}'/>`);
  const disks = snap.definition.devices.disks.filter((d) => d.device === undefined || d.device === 'disk');
  if (external && snap.disks!.length) {
    lines.push('  <disks>');
    for (const d of snap.disks!) {
      if (d.snapshot !== 'external') lines.push(`    <disk name='${esc(d.name)}' snapshot='no'/>`);
      else {
        lines.push(`    <disk name='${esc(d.name)}' snapshot='external' type='file'>`, `      <driver type='${esc(d.driverType ?? 'qcow2')}'/>`);
        lines.push(`      <source file='${esc(d.file ?? '').replace(/'/g, '&apos;')}'/>`, '    </disk>');
      }
    }
    lines.push('  </disks>');
  } else if (disks.length) {
    lines.push('  <disks>');
    for (const d of disks) lines.push(`    <disk name='${esc(d.target.dev)}' snapshot='internal'/>`);
    lines.push('  </disks>');
  }
  const domain = (snap.definition.xml ?? formatDomainXml(snap.definition)).trimEnd().split('\n');
  for (const l of domain) lines.push(`  ${l}`);
  lines.push('</domainsnapshot>');
  return lines.join('\n') + '\n';
};
