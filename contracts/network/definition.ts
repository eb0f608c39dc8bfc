import { z } from 'zod';
import { AttrMap, MacAddress, Uuid } from '../domain/definition.ts';

/** The stored form of a virtual network, parsed from and formatted to libvirt network XML. */

export const ForwardMode = z.enum(['nat', 'route', 'bridge', 'open', 'isolated', 'passthrough', 'private', 'vepa', 'hostdev']);
export type ForwardMode = z.infer<typeof ForwardMode>;

export const DhcpRange = z.object({ start: z.string(), end: z.string() });
export const DhcpHost = z.object({
  mac: MacAddress.optional(),
  name: z.string().optional(),
  ip: z.string().optional(),
  /** DHCPv6 client id (DUID) for IPv6 hosts. */
  id: z.string().optional(),
});

export const NetworkIp = z.object({
  family: z.enum(['ipv4', 'ipv6']).default('ipv4'),
  address: z.string(),
  /** Prefix length; libvirt also accepts a netmask, which the XML layer converts. */
  prefix: z.number().int().min(0).max(128),
  dhcp: z.object({ ranges: z.array(DhcpRange).default([]), hosts: z.array(DhcpHost).default([]) }).optional(),
  /** Gateway of a static route expressed as an extra <ip> (`via`). */
  via: z.string().optional(),
  tftpRoot: z.string().optional(),
  bootp: z.object({ file: z.string(), server: z.string().optional() }).optional(),
});
export type NetworkIp = z.infer<typeof NetworkIp>;

export const NetworkDefinition = z.object({
  name: z
    .string()
    .min(1)
    .max(255)
    .regex(/^[^\n/]+$/, 'name must not contain a newline or "/"'),
  uuid: Uuid,
  /** Absent means an isolated network (libvirt: no <forward>). */
  forward: z
    .object({
      mode: ForwardMode,
      dev: z.string().optional(),
      managed: z.boolean().optional(),
      /** `<interface dev=...>` children: the pool of host devices for bridge/direct/hostdev modes. */
      interfaces: z.array(z.string()).optional(),
      /** `<pf dev=...>`: SR-IOV physical functions whose VFs form the pool. */
      pfs: z.array(z.string()).optional(),
      nat: z
        .object({
          ipv6: z.boolean().optional(),
          addresses: z.array(z.object({ start: z.string(), end: z.string() })).optional(),
          ports: z.array(z.object({ start: z.number().int().min(0).max(65535), end: z.number().int().min(0).max(65535) })).optional(),
        })
        .optional(),
    })
    .optional(),
  bridge: z
    .object({ name: z.string().max(15).optional(), stp: z.boolean().optional(), delay: z.number().int().optional() })
    .optional(),
  mac: MacAddress.optional(),
  mtu: z.number().int().positive().optional(),
  domain: z.string().optional(),
  ips: z.array(NetworkIp).default([]),
  portgroups: z.array(z.object({ name: z.string(), default: z.boolean().optional() })).default([]),
  /** `<network ipv6='yes'>`: guest-to-guest IPv6 without an IPv6 address on the bridge. */
  ipv6: z.boolean().optional(),
  dns: z
    .object({
      enable: z.boolean().optional(),
      forwardPlainNames: z.boolean().optional(),
      forwarders: z.array(z.object({ addr: z.string(), domain: z.string() }).partial()).optional(),
      hosts: z.array(z.object({ ip: z.string(), hostnames: z.array(z.string()).default([]) })).optional(),
      txts: z.array(z.object({ name: z.string(), value: z.string().optional() })).optional(),
      srvs: z.array(AttrMap).optional(),
    })
    .optional(),
  routes: z
    .array(
      z.object({
        family: z.enum(['ipv4', 'ipv6']).optional(),
        address: z.string(),
        prefix: z.number().int().min(0).max(128).optional(),
        netmask: z.string().optional(),
        gateway: z.string(),
        metric: z.number().int().positive().optional(),
      }),
    )
    .optional(),
  /** `<virtualport type='openvswitch'/>` and its parameters. */
  virtualport: z.object({ type: z.string().optional(), parameters: AttrMap.optional() }).optional(),
  /** The document as virtplane stores it (formatted libvirt XML), when it came from XML. */
  xml: z.string().optional(),
});
export type NetworkDefinition = z.infer<typeof NetworkDefinition>;
