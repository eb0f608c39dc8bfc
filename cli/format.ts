import { InvalidArgumentError } from 'commander';
import { VIRSH_STATE_LABEL } from '../contracts/domain/state.ts';
import { currentVcpus } from '../contracts/domain/resources.ts';
import { MAX_PAGE_SIZE } from '../contracts/paging.ts';
import type { DomainView, HostView } from '../contracts/views.ts';
import type { LifecycleEvent } from '../contracts/lifecycle.ts';

/** Human output in virsh's shapes, so operators read it without thinking. */

/** `--page-size`: how many items each request of a list asks for; the list is still read to its end. */
export const parsePageSize = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE_SIZE) throw new InvalidArgumentError(`must be a whole number from 1 to ${MAX_PAGE_SIZE}`);
  return n;
};

/** virsh's vshTable: a leading space, cells padded and three spaces apart, dashes as wide as every cell plus three. */
export const table = (headers: string[], rows: string[][]): string => {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => ` ${cells.map((c, i) => c.padEnd(widths[i]!)).join('   ')}`.trimEnd();
  const total = widths.reduce((a, b) => a + b + 3, 0);
  return [line(headers), '-'.repeat(total), ...rows.map(line)].join('\n');
};

/** A domain whose host is lost is never shown as running: nobody knows. */
export const HOST_LOST_LABEL = 'unknown (host lost)';

export const stateLabel = (v: DomainView): string => {
  const label = v.hostLost ? HOST_LOST_LABEL : VIRSH_STATE_LABEL[v.observed.state];
  return v.pending ? `${label} (${v.pending.op} in progress)` : label;
};

/** `list`'s layouts: virsh's, or virsh's with virtplane's columns after it (`list --host`). */
export type ListColumns = 'virsh' | 'host';

const domidLabel = (v: DomainView): string => (v.domid === undefined ? '-' : String(v.domid));

/** `saved`: virsh list --managed-save, which shows an inactive domain with a saved state as 'saved'. */
export const domainList = (views: DomainView[], columns: ListColumns = 'virsh', saved = false): string => {
  const state = (v: DomainView) => (saved && v.managedSave && v.observed.state === 'shutoff' ? 'saved' : stateLabel(v));
  return columns === 'virsh'
    ? table(['Id', 'Name', 'State'], views.map((v) => [domidLabel(v), v.name, state(v)]))
    : table(['Id', 'Name', 'State', 'Host', 'UUID'], views.map((v) => [domidLabel(v), v.name, state(v), v.hostId, v.id]));
};

/** The test driver calls every guest's OS "linux"; other drivers give the definition's. */
const osType = (v: DomainView): string => (v.definition.type === 'test' ? 'linux' : v.definition.os.type);

/** virsh dominfo: `%-15s %s`, so values start at column 17. */
const infoLines = (rows: Array<[string, string]>): string => rows.map(([k, val]) => `${`${k}:`.padEnd(15)} ${val}`).join('\n');

export const dominfo = (v: DomainView, extra = false): string => {
  const d = v.definition;
  const test = d.type === 'test';
  const rows: Array<[string, string]> = [
    ['Id', domidLabel(v)],
    ['Name', v.name],
    ['UUID', v.id],
    ['OS Type', osType(v)],
    ['State', v.hostLost ? HOST_LOST_LABEL : VIRSH_STATE_LABEL[v.observed.state]],
    // virDomainGetInfo's nrVirtCpu: the vCPUs online, not the maximum.
    ['CPU(s)', String(currentVcpus(d))],
    ['Max memory', `${d.maxMemoryKiB ?? d.memoryKiB} KiB`],
    ['Used memory', `${d.currentMemoryKiB ?? d.memoryKiB} KiB`],
    ['Persistent', v.persistent ? 'yes' : 'no'],
    ['Autostart', v.autostart ? 'enable' : 'disable'],
    ['Managed save', v.managedSave ? 'yes' : 'no'],
    // The test driver's security model; QEMU guests here run under libvirt's "none" model.
    ['Security model', test ? 'testSecurity' : 'none'],
    ['Security DOI', test ? '' : '0'],
  ];
  if (extra) {
    rows.push(
      ['State reason', v.hostLost ? `host '${v.hostId}' lost; last known ${v.lastObserved ? `${VIRSH_STATE_LABEL[v.lastObserved.state]} (${v.lastObserved.reason})` : 'nothing'}` : v.observed.reason],
      ['Desired state', VIRSH_STATE_LABEL[v.desired]],
      ['Operation', v.pending ? `${v.pending.op} since ${v.pending.requestedAt} (deadline ${v.pending.deadline})` : 'none'],
      ['Last error', v.lastError ? `${v.lastError.op}: ${v.lastError.code}: ${v.lastError.message}` : 'none'],
      ['Host', v.hostId],
      ['Type', d.type],
      ['Version', String(v.version)],
    );
  }
  return infoLines(rows);
};

export const hostList = (hosts: HostView[]): string =>
  table(
    ['Host', 'State', 'Lease age', 'Domains', 'Running', 'Free memory', 'Driver', 'CPUs'],
    hosts.map((h) => [
      h.hostId,
      h.removed ? 'removed' : `${h.lost ? 'lost' : h.alive ? 'up' : 'down'}${h.maintenance ? ' (maintenance)' : ''}`,
      h.leaseAgeMs === null || h.leaseAgeMs === undefined ? 'none' : `${(h.leaseAgeMs / 1000).toFixed(1)} s`,
      String(h.domains ?? 0),
      String(h.activeDomains ?? 0),
      h.freeMemoryKiB === null || h.freeMemoryKiB === undefined ? '-' : `${Math.round(h.freeMemoryKiB / 1024)} MiB`,
      h.capabilities?.driver ?? '-',
      String(h.capabilities?.cpus ?? '-'),
    ]),
  );

export const hostInfo = (h: HostView): string => {
  const rows: Array<[string, string]> = [
    ['Host', h.hostId],
    ['Hostname', h.hostname],
    ['State', h.removed ? 'removed (enroll it again to let it register)' : `${h.lost ? `lost since ${h.lostAt ?? '?'}` : h.alive ? 'up' : 'down'}`],
    ['Maintenance', h.maintenance ? 'on (no new domains)' : 'off'],
    ['Lease age', h.leaseAgeMs === null || h.leaseAgeMs === undefined ? 'no lease' : `${(h.leaseAgeMs / 1000).toFixed(1)} s`],
    ['Last renewal', h.lastHeartbeat ?? 'never'],
    ['Agent', `${h.agentVersion} (instance ${h.instanceId})`],
    ['Registered', h.registeredAt ?? 'never'],
    ['Driver', h.capabilities?.driver ?? '-'],
    ['Domain types', h.capabilities?.domainTypes.join(', ') ?? '-'],
    ['CPU(s)', String(h.capabilities?.cpus ?? '-')],
    ['Memory', h.capabilities ? `${h.capabilities.memoryKiB} KiB` : '-'],
    ['Free memory', h.freeMemoryKiB === null || h.freeMemoryKiB === undefined ? '-' : `${h.freeMemoryKiB} KiB`],
    ['Domains', String(h.domains ?? 0)],
    ['Running', String(h.activeDomains ?? 0)],
  ];
  const w = Math.max(...rows.map(([k]) => k.length)) + 2;
  return rows.map(([k, val]) => `${`${k}:`.padEnd(w)}${val}`).join('\n');
};

const title = (s: string) => s.charAt(0) + s.slice(1).toLowerCase();

/** `virsh event --loop` prints: event 'lifecycle' for domain 'vm1': Started Booted */
export const lifecycleLine = (e: LifecycleEvent): string =>
  `event 'lifecycle' for domain '${e.name}': ${title(e.event)} ${title(e.detail)}`;
