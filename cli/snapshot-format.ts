import type { SnapshotRecord } from '../contracts/domain/snapshots.ts';
import { table } from './format.ts';

/**
 * virsh's snapshot listings: snapshot-list's table (and --parent, --tree, --name) and snapshot-info.
 * virsh sorts snapshots by name, children under their parent in --tree.
 */

const byName = (a: SnapshotRecord, b: SnapshotRecord): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** strftime's "%Y-%m-%d %H:%M:%S %z" in local time, as virsh prints a creation time. */
export const creationTime = (seconds: number): string => {
  const d = new Date(seconds * 1000);
  const p = (n: number, w = 2) => String(Math.abs(n)).padStart(w, '0');
  const off = -d.getTimezoneOffset();
  const zone = `${off < 0 ? '-' : '+'}${p(Math.trunc(Math.abs(off) / 60))}${p(Math.abs(off) % 60)}`;
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} ${zone}`;
};

export interface ListFilter {
  roots?: boolean;
  leaves?: boolean;
  /** --current: the current snapshot's children (virsh's --from of the current one). */
  from?: string;
}

export const filterSnapshots = (list: readonly SnapshotRecord[], f: ListFilter): SnapshotRecord[] => {
  let out = [...list];
  if (f.from !== undefined) out = out.filter((x) => x.parent === f.from);
  if (f.roots) out = out.filter((x) => !x.parent);
  if (f.leaves) out = out.filter((x) => !list.some((c) => c.parent === x.name));
  return out.sort(byName);
};

export const snapshotTable = (list: readonly SnapshotRecord[], parent: boolean): string => {
  const rows = list.map((x) => [x.name, creationTime(x.creationTime), x.state, ...(parent ? [x.parent ?? ''] : [])]);
  const headers = ['Name', 'Creation Time', 'State', ...(parent ? ['Parent'] : [])];
  // virsh pads every cell, the last one too, when a column can be empty.
  return parent ? paddedTable(headers, rows) : table(headers, rows);
};

const paddedTable = (headers: string[], rows: string[][]): string => {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => ` ${cells.map((c, i) => c.padEnd(i === cells.length - 1 ? 0 : widths[i]!)).join('   ')}`;
  const total = widths.reduce((a, b) => a + b + 3, 0);
  return [line(headers).trimEnd(), '-'.repeat(total), ...rows.map(line)].join('\n');
};

/** virsh's --tree (vshTreePrint): each root, its children under it with "+- ", bars down to a parent's last child. */
export const snapshotTree = (list: readonly SnapshotRecord[]): string => {
  const lines: string[] = [];
  const children = (name: string | undefined) => list.filter((x) => x.parent === name).sort(byName);
  const walk = (x: SnapshotRecord, last: string, root: boolean, indent: string): void => {
    lines.push(`${indent}${root ? '' : '+- '}${x.name}`);
    const own = root ? indent : `${indent}${x.name === last ? ' ' : '|'} `;
    const kids = children(x.name);
    if (kids.length) lines.push(`${own}  |`);
    for (const k of kids) walk(k, kids.at(-1)!.name, false, `${own}  `);
    if (!kids.length && x.name === last) lines.push(own);
  };
  for (const r of children(undefined)) walk(r, r.name, true, '');
  return lines.join('\n');
};

export const snapshotInfo = (x: SnapshotRecord, domain: string, current: boolean, list: readonly SnapshotRecord[]): string => {
  const kids = list.filter((c) => c.parent === x.name).length;
  const count = (n: string): number => list.filter((c) => c.parent === n).reduce((a, c) => a + 1 + count(c.name), 0);
  const rows: Array<[string, string]> = [
    ['Name', x.name],
    ['Domain', domain],
    ['Current', current ? 'yes' : 'no'],
    ['State', x.state],
    ['Location', x.disks ? 'external' : 'internal'],
    ['Parent', x.parent ?? '-'],
    ['Children', String(kids)],
    ['Descendants', String(count(x.name))],
    ['Metadata', 'yes'],
  ];
  return rows.map(([k, v]) => `${`${k}:`.padEnd(16)}${v}`).join('\n');
};
