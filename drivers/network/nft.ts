import { isIPv4, isIPv6 } from 'node:net';
import { VirtError } from '../../contracts/errors.ts';

/**
 * nftables rule sets for one network, as text for `nft -f -` so each change is one atomic
 * transaction. Every network owns two tables of the same name (family inet for forwarding and
 * masquerade, family bridge for per-port filters), so removing the network is two `delete table`s
 * and never touches rules anyone else wrote.
 */

export type RoutedMode = 'isolated' | 'nat' | 'route';

export interface Subnet {
  family: 'ipv4' | 'ipv6';
  /** CIDR with the host bits cleared, e.g. 192.168.122.0/24. */
  cidr: string;
}

export function tableName(networkUuid: string): string {
  return `virtplane_${networkUuid.replace(/-/g, '').slice(0, 16).toLowerCase()}`;
}

/** Port chains are keyed by the device name; a leading digit is not valid in an nft identifier. */
export const portChain = (ifname: string): string => `port_${ifname.replace(/[.-]/g, '_')}`;

function ipv4ToInt(a: string): number {
  return a.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

function ipv6ToBig(a: string): bigint {
  let parts: string[];
  if (a.includes('::')) {
    const [head = '', tail = ''] = a.split('::');
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    parts = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  } else {
    parts = a.split(':');
  }
  return parts.reduce((acc, p) => (acc << 16n) + BigInt(parseInt(p || '0', 16)), 0n);
}

function bigToIpv6(v: bigint): string {
  const parts: string[] = [];
  for (let i = 7; i >= 0; i--) parts.push(((v >> BigInt(i * 16)) & 0xffffn).toString(16));
  return parts.join(':');
}

/** The subnet an address/prefix lies in; rejects what nft would reject later, with a clearer message. */
export function subnetOf(family: 'ipv4' | 'ipv6', address: string, prefix: number): Subnet {
  if (family === 'ipv4') {
    if (!isIPv4(address) || prefix > 32) {
      throw new VirtError('invalid-arg', `invalid IPv4 address '${address}/${prefix}'`);
    }
    const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    const net = (ipv4ToInt(address) & mask) >>> 0;
    const dotted = [24, 16, 8, 0].map((s) => (net >>> s) & 255).join('.');
    return { family, cidr: `${dotted}/${prefix}` };
  }
  if (!isIPv6(address) || address.includes('.')) {
    throw new VirtError('invalid-arg', `invalid IPv6 address '${address}/${prefix}'`);
  }
  const mask = prefix === 0 ? 0n : ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - prefix)) - 1n);
  return { family, cidr: `${bigToIpv6(ipv6ToBig(address) & mask)}/${prefix}` };
}

/** nft string literal for a comment; only characters needing no escape survive. */
const comment = (s: string) => `"${s.replace(/[^A-Za-z0-9 _.:-]/g, '_').slice(0, 120)}"`;

export function networkTables(opts: {
  table: string;
  networkName: string;
  bridge: string;
  mode: RoutedMode;
  subnets: Subnet[];
}): string {
  const { table, bridge, mode, subnets } = opts;
  const br = `"${bridge}"`;
  const fwd: string[] = [];
  if (mode === 'isolated') {
    // Guests on an isolated network reach each other and the host, never anything routed.
    fwd.push(`iifname ${br} oifname ${br} accept`, `iifname ${br} drop`, `oifname ${br} drop`);
  } else {
    for (const s of subnets) {
      const af = s.family === 'ipv4' ? 'ip' : 'ip6';
      // libvirt masquerades IPv4 only; IPv6 on a nat network is routed.
      if (mode === 'nat' && s.family === 'ipv4') {
        fwd.push(`oifname ${br} ${af} daddr ${s.cidr} ct state related,established accept`);
      } else {
        fwd.push(`oifname ${br} ${af} daddr ${s.cidr} accept`);
      }
      fwd.push(`iifname ${br} ${af} saddr ${s.cidr} accept`);
    }
    fwd.push(`iifname ${br} oifname ${br} accept`, `iifname ${br} reject`, `oifname ${br} reject`);
  }
  const nat: string[] = [];
  if (mode === 'nat') {
    for (const s of subnets.filter((x) => x.family === 'ipv4')) {
      nat.push(
        `ip saddr ${s.cidr} ip daddr 224.0.0.0/24 return`,
        `ip saddr ${s.cidr} ip daddr 255.255.255.255 return`,
        `meta l4proto { tcp, udp } ip saddr ${s.cidr} ip daddr != ${s.cidr} masquerade to :1024-65535`,
        `ip saddr ${s.cidr} ip daddr != ${s.cidr} masquerade`,
      );
    }
  }
  const lines = [
    `table inet ${table} {`,
    `  comment ${comment(`virtplane network ${opts.networkName}`)}`,
    `  chain forward {`,
    `    type filter hook forward priority filter; policy accept;`,
    ...fwd.map((r) => `    ${r}`),
    `  }`,
  ];
  if (nat.length > 0) {
    lines.push(
      `  chain postrouting {`,
      `    type nat hook postrouting priority srcnat; policy accept;`,
      ...nat.map((r) => `    ${r}`),
      `  }`,
    );
  }
  lines.push(`}`, ...portTable(table, opts.networkName));
  return `${lines.join('\n')}\n`;
}

/** The per-port filter table alone, for networks whose bridge we own but route nothing ('open'). */
export function portTable(table: string, networkName: string): string[] {
  return [
    `table bridge ${table} {`,
    `  comment ${comment(`virtplane network ${networkName} ports`)}`,
    `  map ports { type ifname : verdict; }`,
    `  chain prerouting {`,
    `    type filter hook prerouting priority filter; policy accept;`,
    `    iifname vmap @ports`,
    `  }`,
    `}`,
  ];
}

/** Drops frames a guest sends with any source MAC but its own (libvirt's no-mac-spoofing). */
export function addPort(table: string, ifname: string, mac: string): string {
  const chain = portChain(ifname);
  return [
    `add chain bridge ${table} ${chain}`,
    `add rule bridge ${table} ${chain} ether saddr != ${mac} drop`,
    `add element bridge ${table} ports { "${ifname}" : jump ${chain} }`,
    '',
  ].join('\n');
}

export function removePort(table: string, ifname: string): string {
  const chain = portChain(ifname);
  return [
    `delete element bridge ${table} ports { "${ifname}" }`,
    `flush chain bridge ${table} ${chain}`,
    `delete chain bridge ${table} ${chain}`,
    '',
  ].join('\n');
}

export function deleteTables(table: string, families: readonly ('inet' | 'bridge')[]): string {
  return families.map((f) => `delete table ${f} ${table}`).join('\n') + '\n';
}
