import { NetworkDefinition } from '../network/definition.ts';
import {
  attr,
  attrs,
  child,
  childAttr,
  childText,
  custom,
  int,
  invalid,
  list,
  mac,
  obj,
  oneOf,
  onoff,
  positive,
  str,
  text,
  uint,
  uuid,
  yesno,
  type Codec,
} from './codec.ts';
import { formatWith, generateMac, parseWith, type Generators, type KindSpec, type ParseOptions } from './common.ts';
import { quote, xmlError } from './errors.ts';
import type { XElement } from './tree.ts';
import { defaultIPv4Prefix, isMulticastMac, netmaskToPrefix, parseIp, parseIPv4 } from './units.ts';

type NetworkDefinitionInput = import('zod').input<typeof NetworkDefinition>;

/** Forward modes libvirt's network XML accepts; "isolated" is the model's name for no <forward>. */
const XML_FORWARD_MODES = ['nat', 'route', 'open', 'bridge', 'private', 'vepa', 'passthrough', 'hostdev'] as const;
/** Modes where libvirt itself runs the bridge (and DHCP/DNS) rather than using a host device. */
const MANAGED_BRIDGE_MODES = new Set<string | undefined>([undefined, 'nat', 'route', 'open', 'isolated']);

const NETWORK_ORDER = [
  'name', 'uuid', 'title', 'description', 'metadata', 'forward', 'bridge', 'mac', 'mtu', 'domain', 'dns', 'virtualport',
  'bandwidth', 'vlan', 'port', 'portgroup', 'ip', 'route', 'dnsmasq:options',
] as const;

const s = str;
const family = oneOf(['ipv4', 'ipv6'] as const);

/** <ip prefix=...> or, for IPv4, <ip netmask=...>: the model holds the prefix length either way. */
const ipPrefix: Codec<number> = custom(
  (el, path) => {
    const prefix = el.attrs.prefix;
    const netmask = el.attrs.netmask;
    if (prefix !== undefined && netmask !== undefined) {
      throw xmlError(`${path}: an IP address cannot have both a prefix and a netmask`, { path });
    }
    if (prefix !== undefined) return int(0, 128).parse(prefix, `${path}/@prefix`);
    if (netmask !== undefined) {
      const p = netmaskToPrefix(netmask);
      if (p === undefined) throw invalid(`${path}/@netmask`, netmask, 'a contiguous IPv4 netmask such as 255.255.255.0');
      return p;
    }
    return undefined;
  },
  (el, value) => {
    if (value === undefined) {
      delete el.attrs.prefix;
      return;
    }
    const netmask = el.attrs.netmask;
    if (netmask !== undefined && netmaskToPrefix(netmask) === value) return;
    delete el.attrs.netmask;
    if (el.attrs.prefix !== undefined && Number(el.attrs.prefix.trim()) === value) return;
    el.attrs.prefix = String(value);
  },
);

const ip = obj(
  {
    family: attr('family', family, { implied: 'ipv4' }),
    address: attr('address', s),
    prefix: ipPrefix,
    via: attr('via', s),
    tftpRoot: childAttr('tftp', 'root', s),
    dhcp: child(
      'dhcp',
      obj(
        {
          ranges: list('range', obj({ start: attr('start', s), end: attr('end', s) })),
          hosts: list('host', obj({ mac: attr('mac', mac), id: attr('id', s), name: attr('name', s), ip: attr('ip', s) })),
        },
        ['range', 'host', 'bootp'],
      ),
    ),
    bootp: child('dhcp', child('bootp', obj({ file: attr('file', s), server: attr('server', s) })), { prune: true }),
  },
  ['tftp', 'dhcp'],
);

const networkCodec = obj(
  {
    ipv6: attr('ipv6', yesno),
    name: childText('name', s),
    uuid: childText('uuid', uuid),
    forward: child(
      'forward',
      obj(
        {
          mode: attr('mode', oneOf(XML_FORWARD_MODES)),
          dev: attr('dev', s),
          managed: attr('managed', yesno),
          nat: child(
            'nat',
            obj({
              ipv6: attr('ipv6', yesno),
              addresses: list('address', obj({ start: attr('start', s), end: attr('end', s) })),
              ports: list('port', obj({ start: attr('start', int(0, 65535)), end: attr('end', int(0, 65535)) })),
            }),
          ),
          pfs: list('pf', attr('dev', s)),
          interfaces: list('interface', attr('dev', s)),
        },
        ['driver', 'nat', 'pf', 'interface', 'address'],
      ),
    ),
    bridge: child('bridge', obj({ name: attr('name', s), stp: attr('stp', onoff), delay: attr('delay', uint) })),
    mac: childAttr('mac', 'address', mac),
    mtu: childAttr('mtu', 'size', positive),
    domain: childAttr('domain', 'name', s),
    dns: child(
      'dns',
      obj(
        {
          enable: attr('enable', yesno),
          forwardPlainNames: attr('forwardPlainNames', yesno),
          forwarders: list('forwarder', obj({ addr: attr('addr', s), domain: attr('domain', s) })),
          txts: list('txt', obj({ name: attr('name', s), value: attr('value', s) })),
          hosts: list('host', obj({ ip: attr('ip', s), hostnames: list('hostname', text(s)) })),
          srvs: list('srv', attrs()),
        },
        ['forwarder', 'txt', 'host', 'srv'],
      ),
    ),
    virtualport: child('virtualport', obj({ type: attr('type', s), parameters: child('parameters', attrs()) })),
    portgroups: list('portgroup', obj({ name: attr('name', s), default: attr('default', yesno) })),
    ips: list('ip', ip),
    routes: list(
      'route',
      obj({
        family: attr('family', family),
        address: attr('address', s),
        prefix: attr('prefix', int(0, 128)),
        netmask: attr('netmask', s),
        gateway: attr('gateway', s),
        metric: attr('metric', positive),
      }),
    ),
  },
  NETWORK_ORDER,
);

function preValidate(raw: Record<string, any>): void {
  if (raw.name === undefined || raw.name.trim() === '') throw xmlError('missing network name: <name> is required', { path: '/network/name' });
  (raw.ips ?? []).forEach((ip: Record<string, any>, i: number) => {
    const path = `/network/ip[${i + 1}]`;
    if (ip.address === undefined) throw xmlError(`${path}: missing required address attribute`, { path: `${path}/@address` });
    const parsed = parseIp(ip.address);
    if (!parsed) throw invalid(`${path}/@address`, ip.address, 'an IPv4 or IPv6 address');
    if (ip.family !== undefined && ip.family !== parsed.family) {
      throw xmlError(`${path}: family '${ip.family}' does not match address ${quote(ip.address)}`, { path: `${path}/@family` });
    }
  });
}

function generate(raw: Record<string, any>, gen: Generators): void {
  raw.uuid ??= gen.uuid();
  // libvirt gives the bridge of a network it manages a fixed MAC, so the bridge keeps its address.
  if (MANAGED_BRIDGE_MODES.has(raw.forward ? (raw.forward.mode ?? 'nat') : undefined)) raw.mac ??= generateMac(gen);
}

function normalize(raw: Record<string, any>): void {
  if (raw.forward && raw.forward.mode === undefined) raw.forward.mode = 'nat';
  if (MANAGED_BRIDGE_MODES.has(raw.forward?.mode)) {
    raw.bridge = { ...raw.bridge, stp: raw.bridge?.stp ?? true, delay: raw.bridge?.delay ?? 0 };
  }
  for (const ip of raw.ips ?? []) {
    const parsed = typeof ip.address === 'string' ? parseIp(ip.address) : undefined;
    if (!parsed) continue;
    ip.family ??= parsed.family;
    if (ip.prefix === undefined) ip.prefix = parsed.family === 'ipv6' ? 64 : defaultIPv4Prefix(parsed.value);
  }
}

function inSubnet(addr: bigint, net: bigint, prefix: number, bits: number): boolean {
  const shift = BigInt(bits - prefix);
  return addr >> shift === net >> shift;
}

function validate(def: NetworkDefinition, _root: XElement): void {
  const mode = def.forward?.mode;
  if (def.mac && isMulticastMac(def.mac)) throw xmlError(`/network/mac/@address: expected unicast mac address, found multicast '${def.mac}'`);
  if (mode !== undefined && !MANAGED_BRIDGE_MODES.has(mode)) {
    if (def.ips.length > 0) {
      throw xmlError(`Unsupported <ip> element in network '${def.name}' with forward mode='${mode}'`, { path: '/network/ip' });
    }
    if (mode === 'bridge' && !def.bridge?.name && !def.forward?.dev && !(def.forward?.interfaces?.length ?? 0)) {
      throw xmlError(`network '${def.name}' with forward mode='bridge' needs a <bridge name=...> or a forward device`, {
        path: '/network/bridge/@name',
      });
    }
  }
  def.ips.forEach((ip, i) => {
    const path = `/network/ip[${i + 1}]`;
    const parsed = parseIp(ip.address);
    if (!parsed) throw invalid(`${path}/@address`, ip.address, 'an IPv4 or IPv6 address');
    const bits = parsed.family === 'ipv4' ? 32 : 128;
    if (ip.family !== parsed.family) throw xmlError(`${path}: family '${ip.family}' does not match address ${quote(ip.address)}`);
    if (ip.prefix > bits) throw xmlError(`${path}: invalid prefix ${ip.prefix} for an ${parsed.family} address`, { path: `${path}/@prefix` });
    for (const [j, r] of (ip.dhcp?.ranges ?? []).entries()) {
      const rp = `${path}/dhcp/range[${j + 1}]`;
      const start = parseIp(r.start);
      const end = parseIp(r.end);
      if (!start || start.family !== parsed.family) throw invalid(`${rp}/@start`, r.start, `an ${parsed.family} address`);
      if (!end || end.family !== parsed.family) throw invalid(`${rp}/@end`, r.end, `an ${parsed.family} address`);
      if (start.value > end.value) throw xmlError(`${rp}: range ${r.start} - ${r.end} is reversed`, { path: rp });
      if (!inSubnet(start.value, parsed.value, ip.prefix, bits) || !inSubnet(end.value, parsed.value, ip.prefix, bits)) {
        throw xmlError(`${rp}: range ${r.start} - ${r.end} is not entirely within network ${ip.address}/${ip.prefix}`, { path: rp });
      }
    }
    for (const [j, h] of (ip.dhcp?.hosts ?? []).entries()) {
      const hp = `${path}/dhcp/host[${j + 1}]`;
      if (h.ip !== undefined) {
        const hip = parseIp(h.ip);
        if (!hip || hip.family !== parsed.family) throw invalid(`${hp}/@ip`, h.ip, `an ${parsed.family} address`);
      }
      if (h.mac !== undefined && isMulticastMac(h.mac)) throw xmlError(`${hp}/@mac: expected unicast mac address, found multicast '${h.mac}'`);
      if (h.mac === undefined && h.id === undefined && h.name === undefined) {
        throw xmlError(`${hp}: a static host needs a mac, id or name`, { path: hp });
      }
    }
  });
  for (const [i, r] of (def.routes ?? []).entries()) {
    const rp = `/network/route[${i + 1}]`;
    if (!parseIp(r.address)) throw invalid(`${rp}/@address`, r.address, 'an IP address');
    if (!parseIp(r.gateway)) throw invalid(`${rp}/@gateway`, r.gateway, 'an IP address');
    if (r.netmask !== undefined && (parseIPv4(r.netmask) === undefined || netmaskToPrefix(r.netmask) === undefined)) {
      throw invalid(`${rp}/@netmask`, r.netmask, 'a contiguous IPv4 netmask');
    }
  }
  const defaults = def.portgroups.filter((p) => p.default);
  if (defaults.length > 1) throw xmlError(`network '${def.name}' has more than one default portgroup`, { path: '/network/portgroup' });
}

export const networkSpec: KindSpec<NetworkDefinition> = {
  kind: 'network',
  root: 'network',
  codec: networkCodec,
  schema: NetworkDefinition,
  preValidate,
  generate,
  normalize,
  validate,
};

export const parseNetworkXml = (text: string, opts?: ParseOptions): NetworkDefinition => parseWith(networkSpec, text, opts);

export const formatNetworkXml = (def: NetworkDefinition | NetworkDefinitionInput): string => formatWith(networkSpec, def);
