import { z } from 'zod';
import { CommandHeader } from '../domain/commands.ts';
import { virtError } from '../errors.ts';
import { ObjectRef } from '../ids.ts';
import { parseDocument } from '../xml/document.ts';
import { formatNetworkXml, parseNetworkXml } from '../xml/network.ts';
import { serialize } from '../xml/tree.ts';
import type { NetworkDefinition, NetworkIp } from './definition.ts';

/**
 * virsh net-update for the sections virtplane offers (ip-dhcp-host, dns-host), with the matching
 * rules and messages of libvirt's virNetworkDefUpdateIPDHCPHost and virNetworkDefUpdateDNSHost.
 * Pure: the command service parses the element, the decider applies it to the definition it holds.
 */

export const NET_UPDATE_SECTIONS = ['ip-dhcp-host', 'dns-host'] as const;
export const NET_UPDATE_COMMANDS = ['add', 'add-first', 'add-last', 'delete', 'modify'] as const;
export type NetUpdateCommand = (typeof NET_UPDATE_COMMANDS)[number];

export const UpdateNetworkRequest = CommandHeader.extend({
  network: ObjectRef,
  command: z.enum(NET_UPDATE_COMMANDS),
  section: z.enum(NET_UPDATE_SECTIONS),
  /** The element, e.g. `<host mac='52:54:00:00:00:01' ip='192.168.122.5'/>`. */
  xml: z.string().min(1).max(65_536),
  parentIndex: z.number().int().min(0).max(1024).optional(),
  /** virsh --config / --live; neither is --current (live when active, else the config). */
  config: z.boolean().optional(),
  live: z.boolean().optional(),
});
export type UpdateNetworkRequest = z.infer<typeof UpdateNetworkRequest>;

export type DhcpHostEntry = NonNullable<NetworkIp['dhcp']>['hosts'][number];
export type DnsHostEntry = { ip: string; hostnames: string[] };

export type NetworkUpdate =
  | { section: 'ip-dhcp-host'; command: NetUpdateCommand; host: DhcpHostEntry; parentIndex?: number }
  | { section: 'dns-host'; command: NetUpdateCommand; host: DnsHostEntry };

/**
 * Reads the element through the network XML layer (so a MAC or an address gets the same checks as
 * in a definition): the element is parsed on its own first, so nothing in it can reach outside the
 * document it is then placed in.
 */
export const parseNetworkUpdate = (req: Pick<UpdateNetworkRequest, 'section' | 'command' | 'xml' | 'parentIndex'>, network: string): NetworkUpdate => {
  const el = parseDocument(req.xml, { maxBytes: 65_536, maxDepth: 8 });
  if (el.name !== 'host') throw virtError('xml-error', `unexpected element <${el.name}>, expecting <host>, while updating network '${network}'`);
  const host = serialize(el);
  if (req.section === 'dns-host') {
    const def = parseNetworkXml(`<network><name>update</name><dns>${host}</dns></network>`);
    const h = def.dns?.hosts?.[0];
    if (!h) throw virtError('xml-error', `missing IP address in network '${network}' DNS HOST record`);
    return { section: 'dns-host', command: req.command, host: { ip: h.ip, hostnames: h.hostnames } };
  }
  const v6 = (el.attrs.ip ?? '').includes(':');
  const wrapper = v6 ? `<ip family='ipv6' address='fd00::1' prefix='64'>` : `<ip address='192.0.2.1' prefix='24'>`;
  const def = parseNetworkXml(`<network><name>update</name>${wrapper}<dhcp>${host}</dhcp></ip></network>`);
  const h = def.ips[0]?.dhcp?.hosts[0];
  if (!h) throw virtError('xml-error', `cannot parse the dhcp host entry of network '${network}'`);
  return { section: 'ip-dhcp-host', command: req.command, host: h, ...(req.parentIndex !== undefined ? { parentIndex: req.parentIndex } : {}) };
};

/** libvirt's words for the entry in its refusal: all three attributes, a missing one printed as C's NULL is. */
const attrs = (h: DhcpHostEntry) => `mac='${h.mac ?? '(null)'}' name='${h.name ?? '(null)'}' ip='${h.ip ?? '<null>'}'`;

/** virNetworkIPDefByIndex: the <ip> at parentIndex, or the first IPv4 one with DHCP, or the first IPv4 one. */
const targetIp = (def: NetworkDefinition, u: Extract<NetworkUpdate, { section: 'ip-dhcp-host' }>): number => {
  if (u.parentIndex !== undefined) {
    if (u.parentIndex >= def.ips.length) throw virtError('operation-invalid', `couldn't update dhcp host entry - no <ip> element found at index ${u.parentIndex} in network '${def.name}'`);
    return u.parentIndex;
  }
  const family = u.host.ip?.includes(':') || (u.host.id && !u.host.mac) ? 'ipv6' : 'ipv4';
  const withDhcp = def.ips.findIndex((ip) => ip.family === family && ip.dhcp && (ip.dhcp.ranges.length > 0 || ip.dhcp.hosts.length > 0));
  const any = def.ips.findIndex((ip) => ip.family === family);
  const i = withDhcp >= 0 ? withDhcp : any;
  if (i < 0) throw virtError('operation-invalid', `couldn't update dhcp host entry - no <ip family='${family}'> element found in network '${def.name}'`);
  return i;
};

const sameMac = (a?: string, b?: string) => a !== undefined && b !== undefined && a.toLowerCase() === b.toLowerCase();

const updateDhcp = (def: NetworkDefinition, u: Extract<NetworkUpdate, { section: 'ip-dhcp-host' }>): NetworkDefinition => {
  const index = targetIp(def, u);
  const ip = def.ips[index]!;
  const hosts = ip.dhcp?.hosts ?? [];
  const h = u.host;
  let next: DhcpHostEntry[];
  if (u.command === 'delete') {
    // Every attribute given must match.
    const i = hosts.findIndex((o) => (!h.mac || !o.mac || sameMac(h.mac, o.mac)) && (!h.name || h.name === o.name) && (!h.ip || h.ip === o.ip));
    if (i < 0) throw virtError('operation-invalid', `couldn't locate a matching dhcp host entry in network '${def.name}'`);
    next = hosts.filter((_, j) => j !== i);
  } else {
    const i = hosts.findIndex((o) => sameMac(h.mac, o.mac) || (h.name !== undefined && h.name === o.name) || (h.ip !== undefined && h.ip === o.ip));
    if (u.command === 'modify') {
      if (i < 0) {
        throw virtError('operation-invalid', `couldn't locate an existing dhcp host entry with "mac='${h.mac ?? '(null)'}'" "name='${h.name ?? '(null)'}'" "ip='${h.ip ?? '(null)'}'" in network '${def.name}'`);
      }
      next = hosts.map((o, j) => (j === i ? h : o));
    } else {
      if (i >= 0) throw virtError('operation-invalid', `there is an existing dhcp host entry in network '${def.name}' that matches "<host ${attrs(h)}/>"`);
      next = u.command === 'add-first' ? [h, ...hosts] : [...hosts, h];
    }
  }
  const ips = def.ips.map((x, j) => (j === index ? { ...x, dhcp: { ranges: x.dhcp?.ranges ?? [], hosts: next } } : x));
  return { ...def, ips };
};

const updateDns = (def: NetworkDefinition, u: Extract<NetworkUpdate, { section: 'dns-host' }>): NetworkDefinition => {
  if (u.command === 'modify') throw virtError('operation-unsupported', 'DNS HOST records cannot be modified, only added or deleted');
  const hosts = def.dns?.hosts ?? [];
  // libvirt matches DNS host records by address alone, for adding and deleting alike (its test driver shows it).
  const matches = hosts.flatMap((o, i) => (o.ip === u.host.ip ? [i] : []));
  let next: DnsHostEntry[];
  if (u.command === 'delete') {
    if (matches.length === 0) throw virtError('operation-invalid', `couldn't locate a matching DNS HOST record in network ${def.name}`);
    if (matches.length > 1) throw virtError('operation-invalid', `multiple matching DNS HOST records were found in network ${def.name}`);
    next = hosts.filter((_, i) => i !== matches[0]);
  } else {
    if (matches.length > 0) throw virtError('operation-invalid', `there is already at least one DNS HOST record with a matching field in network ${def.name}`);
    next = u.command === 'add-first' ? [u.host, ...hosts] : [...hosts, u.host];
  }
  return { ...def, dns: { ...def.dns, hosts: next } };
};

/** The definition after the update, with its stored document written again. */
export const applyNetworkUpdate = (def: NetworkDefinition, u: NetworkUpdate): NetworkDefinition => {
  const next = u.section === 'ip-dhcp-host' ? updateDhcp(def, u) : updateDns(def, u);
  return { ...next, xml: formatNetworkXml(next) };
};
