import type { DhcpLease } from '../contracts/network/leases.ts';
import type { DomainView } from '../contracts/views.ts';
import { NETWORK_EVENT_LABEL, type NetworkLifecycleEvent } from '../contracts/network/lifecycle.ts';
import type { NetworkView } from '../contracts/network/views.ts';
import { table } from './format.ts';

/** Network and interface output in virsh's shapes. */

const yesno = (b: boolean) => (b ? 'yes' : 'no');

/** virsh net-list */
export const netList = (views: NetworkView[]): string =>
  table(
    ['Name', 'State', 'Autostart', 'Persistent'],
    views.map((v) => [v.name, v.active ? 'active' : 'inactive', yesno(v.autostart), yesno(v.persistent)]),
  );

/** virsh net-info prints "%-15s %s"; the Bridge line only when the network has one. */
export const netInfo = (v: NetworkView): string =>
  (
    [
      ['Name:', v.name],
      ['UUID:', v.id],
      ['Active:', yesno(v.active)],
      ['Persistent:', yesno(v.persistent)],
      ['Autostart:', yesno(v.autostart)],
      ...(v.bridge ? [['Bridge:', v.bridge]] : []),
    ] as Array<[string, string]>
  )
    .map(([k, val]) => `${k.padEnd(15)} ${val}`)
    .join('\n');

/** virsh net-event prints the network name unquoted: event 'lifecycle' for network default: Started */
export const netEventLine = (e: NetworkLifecycleEvent): string => `event 'lifecycle' for network ${e.name}: ${NETWORK_EVENT_LABEL[e.event]}`;

export interface InterfaceRow {
  interface: string;
  type: string;
  source: string;
  model: string;
  mac: string;
}

/**
 * The rows of virsh domiflist. The Interface column is the device the host reported for the running
 * guest; otherwise a fixed `<target dev>` from the definition (as virsh shows for an inactive domain),
 * or '-' when the host picks the name and has not reported it.
 */
export const interfaceRows = (v: DomainView): InterfaceRow[] => {
  const reported = new Map((v.interfaces ?? []).map((r) => [r.mac.toLowerCase(), r.ifname]));
  return v.definition.devices.interfaces.map((i) => {
    const fixed = i.targetDev && !i.targetDev.includes('%') ? i.targetDev : undefined;
    const dev = (i.mac ? reported.get(i.mac.toLowerCase()) : undefined) ?? fixed ?? '-';
    const source =
      i.type === 'network' ? i.source?.network : i.type === 'bridge' ? i.source?.bridge : i.type === 'direct' ? i.source?.dev : undefined;
    return { interface: dev, type: i.type, source: source ?? '-', model: i.model ?? '-', mac: i.mac ?? '-' };
  });
};

export const domIfList = (rows: InterfaceRow[]): string =>
  table(
    ['Interface', 'Type', 'Source', 'Model', 'MAC'],
    rows.map((r) => [r.interface, r.type, r.source, r.model, r.mac]),
  );

export interface AddressRow {
  name: string;
  mac: string;
  protocol: 'ipv4' | 'ipv6';
  address: string;
}

/** virsh domifaddr */
export const domIfAddr = (rows: AddressRow[]): string =>
  table(
    ['Name', 'MAC address', 'Protocol', 'Address'],
    rows.map((r) => [r.name, r.mac, r.protocol, r.address]),
  );

/** virsh's expiry column: local time, "%Y-%m-%d %H:%M:%S". */
const localTime = (iso: string): string => {
  const d = new Date(iso);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
};

/** virsh net-dhcp-leases: its table, '-' for what a lease lacks. */
export const dhcpLeases = (leases: DhcpLease[]): string =>
  table(
    ['Expiry Time', 'MAC address', 'Protocol', 'IP address', 'Hostname', 'Client ID or DUID'],
    leases.map((l) => [localTime(l.expiresAt), l.mac, l.family, l.prefix !== undefined ? `${l.address}/${l.prefix}` : l.address, l.hostname ?? '-', l.clientId ?? '-']),
  );
